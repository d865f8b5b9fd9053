//! ONNX Runtime backend: loads the runtime library at run time (from the pinned PyPI
//! wheel, see `deploy/setup.sh`), creates one session per device worker, and converts
//! between Convoy tensors and ORT values (`values`). The CUDA execution provider and
//! the libraries it needs are in `cuda`.

mod cuda;
mod values;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};

use self::cuda::{cuda_in_library, cuda_provider, preload_cuda_libraries};
pub use self::cuda::{CUDA_DRIVER, CUDA_LIBRARIES};
use self::values::{collect_outputs, graph_tensor, staged, to_ort_value};
use super::{
    Backend, BackendError, BackendFactory, BackendInfo, BackendSession, Device, GraphTensor,
    SessionSpec,
};
use crate::tensor::Tensor;

/// The default location `deploy/setup.sh ort` unpacks the library to.
pub const DEFAULT_ORT_LIB: &str = ".ort/cpu/libonnxruntime.so";

/// The process-wide ONNX Runtime: the library can be loaded only once per process.
static RUNTIME: OnceLock<Result<Runtime, BackendError>> = OnceLock::new();

/// A loaded ONNX Runtime library and its environment.
pub struct Runtime {
    env: Environment,
    /// The library file actually loaded.
    pub library: PathBuf,
    /// Whether this library build carries the CUDA execution provider.
    pub cuda_available: bool,
}

/// Picks the library: `--ort-lib`, then `ORT_DYLIB_PATH`, then [`DEFAULT_ORT_LIB`].
pub fn resolve_library(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ORT_LIB))
}

impl Runtime {
    /// Loads the library once per process; later calls return the same runtime (or error).
    pub fn init(library: &Path) -> Result<&'static Runtime, BackendError> {
        RUNTIME
            .get_or_init(|| Runtime::load(library))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether this process has loaded (or tried to load) the library.
    pub fn is_loaded() -> bool {
        RUNTIME.get().is_some()
    }

    fn load(library: &Path) -> Result<Runtime, BackendError> {
        // ort would panic on a missing file at first use; check up front with a clear line.
        if !library.is_file() {
            return Err(BackendError::LibraryMissing {
                path: library.display().to_string(),
                reason: "no such file".into(),
            });
        }
        let builder = ort::init_from(library).map_err(|e| BackendError::LibraryMissing {
            path: library.display().to_string(),
            reason: e.to_string(),
        })?;
        let env = builder
            .with_name("convoy")
            .with_telemetry(false)
            .build()
            .map_err(|e| BackendError::Environment(e.to_string()))?;
        let cuda_available = cuda_in_library();
        Ok(Runtime {
            env,
            library: library.to_path_buf(),
            cuda_available,
        })
    }

    /// Creates one session of `spec` on `device`; returns it with the device it really
    /// runs on (`auto` resolves to CUDA or CPU here).
    pub fn session(
        &self,
        spec: &SessionSpec,
        device: Device,
    ) -> Result<(OrtBackend, Device), BackendError> {
        if !spec.model_path.is_file() {
            return Err(BackendError::Load(format!(
                "{}: model file not found",
                spec.model_path.display()
            )));
        }
        match device {
            Device::Cpu => Ok((self.build(spec, None)?, Device::Cpu)),
            Device::Cuda(n) => {
                if !self.cuda_available {
                    return Err(BackendError::Device {
                        device: device.to_string(),
                        reason: format!(
                            "the ONNX Runtime library {} has no CUDA execution provider; run `deploy/setup.sh gpu` and pass --ort-lib .ort/gpu/libonnxruntime.so (the onnxruntime-gpu wheel's library), or use --device auto or cpu",
                            self.library.display()
                        ),
                    });
                }
                Ok((self.build(spec, Some(n))?, device))
            }
            Device::Auto if self.cuda_available => match self.build(spec, Some(0)) {
                Ok(b) => Ok((b, Device::Cuda(0))),
                Err(e) => {
                    tracing::warn!(model = %spec.name, error = %e, "CUDA unavailable, --device auto falls back to CPU");
                    Ok((self.build(spec, None)?, Device::Cpu))
                }
            },
            Device::Auto => {
                tracing::info!(model = %spec.name, library = %self.library.display(),
                    "no CUDA execution provider in this ONNX Runtime library, --device auto runs on CPU");
                Ok((self.build(spec, None)?, Device::Cpu))
            }
        }
    }

    fn build(&self, spec: &SessionSpec, cuda: Option<i32>) -> Result<OrtBackend, BackendError> {
        let path = &spec.model_path;
        let load_err = |e: ort::Error| match cuda {
            Some(n) => BackendError::Device {
                device: format!("cuda:{n}"),
                reason: e.to_string(),
            },
            None => BackendError::Load(format!("{}: {e}", path.display())),
        };
        let mut builder = Session::builder(&self.env).map_err(load_err)?;
        if spec.intra_op_threads > 0 {
            builder = builder
                .with_intra_threads(spec.intra_op_threads)
                .map_err(|e| load_err(e.into()))?;
        }
        if let Some(n) = cuda {
            let dir = self.library.parent().unwrap_or_else(|| Path::new("."));
            preload_cuda_libraries(dir).map_err(|reason| BackendError::Device {
                device: format!("cuda:{n}"),
                reason,
            })?;
            builder = builder
                .with_execution_providers([cuda_provider(n, &spec.cuda).map_err(load_err)?])
                .map_err(|e| load_err(e.into()))?;
        }
        let session = builder.commit_from_file(path).map_err(load_err)?;
        let backend = OrtBackend::new(session)?;
        match cuda {
            Some(n) if spec.cuda.io_binding => backend.bind_io(Staging::CudaPinned(n)),
            _ => Ok(backend),
        }
    }
}

/// The server's factory: ONNX Runtime sessions, each on its own worker.
impl BackendFactory for Runtime {
    fn session(&self, spec: &SessionSpec, device: Device) -> Result<BackendSession, BackendError> {
        let (backend, device) = Runtime::session(self, spec, device)?;
        Ok(BackendSession {
            inputs: backend.inputs.clone(),
            outputs: backend.outputs.clone(),
            backend: Box::new(backend),
            device,
        })
    }

    fn describe(&self) -> BackendInfo {
        BackendInfo {
            kind: "onnxruntime",
            library: self.library.display().to_string(),
            cuda_available: self.cuda_available,
        }
    }
}

/// One ONNX Runtime session, owned by one device worker.
pub struct OrtBackend {
    session: Session,
    pub inputs: Vec<GraphTensor>,
    pub outputs: Vec<GraphTensor>,
    /// Set when the session runs through an IoBinding (see [`OrtBackend::bind_io`]).
    bound: Option<Bound>,
}

/// Host memory an IoBinding stages batches in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staging {
    /// Plain host memory from ONNX Runtime's CPU allocator: the same path as a GPU
    /// session's, runnable (and tested) without a GPU.
    Cpu,
    /// Page-locked host memory of CUDA device `n`: the GPU copies inputs from it and
    /// outputs into it by DMA, with no bounce through a driver staging buffer.
    CudaPinned(i32),
}

/// A session's IoBinding: inputs are copied once into staging memory from `inputs`
/// (ONNX Runtime then moves them to the device itself); outputs land in `outputs`.
struct Bound {
    binding: IoBinding,
    inputs: Allocator,
    /// Where outputs land; bound afresh for every run, since a binding keeps the
    /// previous run's output (and its shape) otherwise.
    outputs: MemoryInfo<'static>,
    staging: Staging,
}

impl OrtBackend {
    fn new(session: Session) -> Result<OrtBackend, BackendError> {
        let inputs = session
            .inputs()
            .iter()
            .map(|o| graph_tensor(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| graph_tensor(o.name(), o.dtype()))
            .collect();
        Ok(OrtBackend {
            session,
            inputs,
            outputs,
            bound: None,
        })
    }

    /// Runs this session through an IoBinding: every batch's inputs are staged in
    /// `staging` memory (one host copy, which for a GPU session replaces the driver's
    /// copy through its own bounce buffer), and every output is bound to the same kind of
    /// host memory, so ONNX Runtime writes device results straight into memory the
    /// host reads (one DMA, no extra device-side output allocation to copy from).
    pub fn bind_io(mut self, staging: Staging) -> Result<OrtBackend, BackendError> {
        let fail = |what: &str, e: ort::Error| BackendError::Device {
            device: match staging {
                Staging::Cpu => "cpu".to_string(),
                Staging::CudaPinned(n) => format!("cuda:{n}"),
            },
            reason: format!("IoBinding: {what}: {e}"),
        };
        let memory = |kind: MemoryType| match staging {
            Staging::Cpu => MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, kind),
            Staging::CudaPinned(n) => MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                n,
                AllocatorType::Device,
                kind,
            ),
        };
        let input_memory = memory(MemoryType::CPUInput).map_err(|e| fail("input memory", e))?;
        let output_memory = memory(MemoryType::CPUOutput).map_err(|e| fail("output memory", e))?;
        let inputs =
            Allocator::new(&self.session, input_memory).map_err(|e| fail("input allocator", e))?;
        let binding = self
            .session
            .create_binding()
            .map_err(|e| fail("binding", e))?;
        self.bound = Some(Bound {
            binding,
            inputs,
            outputs: output_memory,
            staging,
        });
        Ok(self)
    }

    /// Where this session stages its batches; `None` when it runs without an IoBinding.
    pub fn staging(&self) -> Option<Staging> {
        self.bound.as_ref().map(|b| b.staging)
    }
}

impl Backend for OrtBackend {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        if let Some(bound) = &mut self.bound {
            let run_err = |e: ort::Error| BackendError::Run(e.to_string());
            for (spec, t) in self.inputs.iter().zip(inputs) {
                let value = crate::tensor::with_tensor_data!(&t.data, v => staged(&bound.inputs, &t.shape, v.as_slice()))
                    .map_err(run_err)?;
                bound
                    .binding
                    .bind_input(spec.name.as_str(), &value)
                    .map_err(run_err)?;
            }
            bound.binding.clear_outputs();
            for spec in &self.outputs {
                bound
                    .binding
                    .bind_output_to_device(spec.name.as_str(), &bound.outputs)
                    .map_err(run_err)?;
            }
            let outputs = self.session.run_binding(&bound.binding).map_err(run_err)?;
            return collect_outputs(&self.outputs, &outputs);
        }
        let mut named = Vec::with_capacity(inputs.len());
        for (spec, t) in self.inputs.iter().zip(inputs) {
            let value = to_ort_value(t).map_err(|e| BackendError::Run(e.to_string()))?;
            named.push((spec.name.as_str(), value));
        }
        let outputs = self
            .session
            .run(named)
            .map_err(|e| BackendError::Run(e.to_string()))?;
        // Copy out before the outputs (which borrow the session) are released.
        collect_outputs(&self.outputs, &outputs)
    }
}
