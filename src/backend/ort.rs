//! ONNX Runtime backend: loads the runtime library at run time (from the pinned PyPI
//! wheel, see `deploy/setup.sh`), creates one session per device worker, and converts
//! between Convoy tensors and ORT values.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProviderDispatch;
#[cfg(feature = "cuda")]
use ort::ep::{self, ExecutionProvider};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::SessionInputValue;
use ort::session::{IoBinding, Session};
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef, ValueType};

use super::{Backend, BackendError, Device};
use crate::repository::config::{CudaOptions, ModelConfig};
use crate::tensor::{DataType, Tensor, TensorData};

/// Whether the loaded library carries the CUDA execution provider (never, in a build
/// without the `cuda` feature).
fn cuda_in_library() -> bool {
    #[cfg(feature = "cuda")]
    return ep::CUDA::is_available().unwrap_or(false);
    #[cfg(not(feature = "cuda"))]
    false
}

/// The CUDA execution provider on device `n` with the model's `[cuda]` options, failing
/// the session if it cannot register.
fn cuda_provider(n: i32, options: &CudaOptions) -> Result<ExecutionProviderDispatch, ort::Error> {
    #[cfg(feature = "cuda")]
    {
        use crate::repository::config::{ArenaExtend, ConvAlgoSearch};
        let mut cuda = ep::CUDA::default().with_device_id(n);
        if let Some(limit) = options.gpu_mem_limit {
            cuda = cuda.with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if let Some(strategy) = options.arena_extend_strategy {
            cuda = cuda.with_arena_extend_strategy(match strategy {
                ArenaExtend::NextPowerOfTwo => ep::ArenaExtendStrategy::NextPowerOfTwo,
                ArenaExtend::SameAsRequested => ep::ArenaExtendStrategy::SameAsRequested,
            });
        }
        if let Some(search) = options.cudnn_conv_algo_search {
            cuda = cuda.with_conv_algorithm_search(match search {
                ConvAlgoSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
                ConvAlgoSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
                ConvAlgoSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
            });
        }
        if let Some(on) = options.cudnn_conv_use_max_workspace {
            cuda = cuda.with_conv_max_workspace(on);
        }
        if let Some(on) = options.use_tf32 {
            cuda = cuda.with_tf32(on);
        }
        Ok(cuda.build().error_on_failure())
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = options;
        Err(ort::Error::new(format!(
            "cuda:{n}: this convoy binary was built without the `cuda` feature"
        )))
    }
}

/// The CUDA 13 / cuDNN 9 libraries the CUDA execution provider loads by soname, in
/// dependency order: `true` = required, `false` = preloaded only when the folder has it.
/// `libonnxruntime_providers_cuda.so` has no RUNPATH, so without this they would have to
/// be on LD_LIBRARY_PATH or in the system's library path.
pub const CUDA_LIBRARIES: &[(&str, bool)] = &[
    ("libcudart.so.13", true),
    ("libcublasLt.so.13", true),
    ("libcublas.so.13", true),
    ("libcurand.so.10", true),
    ("libnvJitLink.so.13", false),
    ("libcufft.so.12", true),
    ("libnvrtc.so.13", true),
    ("libnvrtc-builtins.so.13.0", false),
    ("libcudnn.so.9", true),
    ("libcudnn_graph.so.9", true),
    ("libcudnn_ops.so.9", true),
    ("libcudnn_heuristic.so.9", true),
    ("libcudnn_cnn.so.9", true),
    ("libcudnn_adv.so.9", true),
    ("libcudnn_engines_precompiled.so.9", true),
    ("libcudnn_engines_runtime_compiled.so.9", true),
    ("libcudnn_engines_tensor_ir.so.9", false),
    ("libcudnn_ext.so.9", false),
];

/// The NVIDIA driver's library: always the host's, never a copy next to ONNX Runtime.
pub const CUDA_DRIVER: &str = "libcuda.so.1";

/// Loads (once per process, never unloaded) the CUDA libraries from `dir`, the folder of
/// the ONNX Runtime library (`deploy/setup.sh gpu` puts them there), falling back to the
/// system's search path for a library the folder does not hold; then the driver. Once a
/// library is loaded, the CUDA provider's own lookup by soname finds it. The error names
/// the first library that cannot be loaded.
fn preload_cuda_libraries(dir: &Path) -> Result<(), String> {
    static PRELOADED: OnceLock<Result<(), String>> = OnceLock::new();
    PRELOADED
        .get_or_init(|| {
            let shown = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            for &(soname, required) in CUDA_LIBRARIES {
                let local = shown.join(soname);
                if local.is_file() {
                    load_library(local.as_os_str()).map_err(|e| {
                        format!("cannot load {soname} from {}: {e}", shown.display())
                    })?;
                } else if required {
                    load_library(std::ffi::OsStr::new(soname)).map_err(|e| {
                        format!(
                            "cannot load {soname} from {} (not there, nor in the system library path: {e}); `deploy/setup.sh gpu` puts the CUDA 13 and cuDNN 9 libraries next to libonnxruntime",
                            shown.display()
                        )
                    })?;
                }
            }
            load_library(std::ffi::OsStr::new(CUDA_DRIVER)).map_err(|e| {
                format!(
                    "cannot load {CUDA_DRIVER}, the NVIDIA driver (it comes from the host: R580 or newer for CUDA 13; in a container, the NVIDIA container toolkit): {e}"
                )
            })?;
            tracing::info!(folder = %shown.display(), "CUDA libraries loaded");
            Ok(())
        })
        .clone()
}

/// dlopen, kept loaded for the life of the process.
fn load_library(name: &std::ffi::OsStr) -> Result<(), String> {
    #[cfg(feature = "cuda")]
    return ort::util::preload_dylib(name).map_err(|e| {
        // libloading says "dlopen failed" and keeps dlerror()'s text as the source.
        match std::error::Error::source(&e) {
            Some(why) => why.to_string(),
            None => e.to_string(),
        }
    });
    #[cfg(not(feature = "cuda"))]
    Err(format!(
        "{}: this convoy binary was built without the `cuda` feature",
        name.to_string_lossy()
    ))
}

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

    /// Creates one session for `config` on `device`; returns it with the device it really
    /// runs on (`auto` resolves to CUDA or CPU here).
    pub fn session(
        &self,
        config: &ModelConfig,
        device: Device,
        intra_op_threads: usize,
    ) -> Result<(OrtBackend, Device), BackendError> {
        match device {
            Device::Cpu => Ok((self.build(config, None, intra_op_threads)?, Device::Cpu)),
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
                let backend = self.build(config, Some(n), intra_op_threads)?;
                Ok((backend, device))
            }
            Device::Auto if self.cuda_available => {
                match self.build(config, Some(0), intra_op_threads) {
                    Ok(b) => Ok((b, Device::Cuda(0))),
                    Err(e) => {
                        tracing::warn!(model = %config.name, error = %e, "CUDA unavailable, --device auto falls back to CPU");
                        Ok((self.build(config, None, intra_op_threads)?, Device::Cpu))
                    }
                }
            }
            Device::Auto => {
                tracing::info!(model = %config.name, library = %self.library.display(),
                    "no CUDA execution provider in this ONNX Runtime library, --device auto runs on CPU");
                Ok((self.build(config, None, intra_op_threads)?, Device::Cpu))
            }
        }
    }

    fn build(
        &self,
        config: &ModelConfig,
        cuda: Option<i32>,
        intra_op_threads: usize,
    ) -> Result<OrtBackend, BackendError> {
        let path = &config.model_path;
        let load_err = |e: ort::Error| match cuda {
            Some(n) => BackendError::Device {
                device: format!("cuda:{n}"),
                reason: e.to_string(),
            },
            None => BackendError::Load(format!("{}: {e}", path.display())),
        };
        let mut builder = Session::builder(&self.env).map_err(load_err)?;
        if intra_op_threads > 0 {
            builder = builder
                .with_intra_threads(intra_op_threads)
                .map_err(|e| load_err(e.into()))?;
        }
        if let Some(n) = cuda {
            let dir = self.library.parent().unwrap_or_else(|| Path::new("."));
            preload_cuda_libraries(dir).map_err(|reason| BackendError::Device {
                device: format!("cuda:{n}"),
                reason,
            })?;
            builder = builder
                .with_execution_providers([cuda_provider(n, &config.cuda).map_err(load_err)?])
                .map_err(|e| load_err(e.into()))?;
        }
        let session = builder.commit_from_file(path).map_err(load_err)?;
        let backend = OrtBackend::new(session)?;
        match cuda {
            Some(n) if config.cuda.io_binding => backend.bind_io(Staging::CudaPinned(n)),
            _ => Ok(backend),
        }
    }
}

/// What the ONNX graph itself says about one input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphTensor {
    pub name: String,
    /// `None` when the element type is one Convoy does not serve.
    pub datatype: Option<DataType>,
    /// Dimensions with -1 for dynamic ones (batch dimension included).
    pub shape: Vec<i64>,
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

fn graph_tensor(name: &str, ty: &ValueType) -> GraphTensor {
    match ty {
        ValueType::Tensor { ty, shape, .. } => GraphTensor {
            name: name.to_string(),
            datatype: from_ort_type(*ty),
            shape: shape.iter().copied().collect(),
        },
        _ => GraphTensor {
            name: name.to_string(),
            datatype: None,
            shape: vec![],
        },
    }
}

fn from_ort_type(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::U8,
        TensorElementType::Int8 => DataType::I8,
        TensorElementType::Int32 => DataType::I32,
        TensorElementType::Int64 => DataType::I64,
        TensorElementType::Float32 => DataType::F32,
        TensorElementType::Float64 => DataType::F64,
        _ => return None,
    })
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

/// A copy of `data` in memory from `allocator`, as an owned ORT tensor.
fn staged<T>(allocator: &Allocator, shape: &[usize], data: &[T]) -> Result<DynValue, ort::Error>
where
    T: PrimitiveTensorElementType + Copy + std::fmt::Debug,
{
    let mut value = ort::value::Tensor::<T>::new(allocator, shape.to_vec())?;
    let (_, dst) = value.extract_tensor_mut();
    dst.copy_from_slice(data);
    Ok(value.into_dyn())
}

/// Copies each output of a run out of ONNX Runtime, in `specs` order.
fn collect_outputs(
    specs: &[GraphTensor],
    outputs: &ort::session::SessionOutputs<'_>,
) -> Result<Vec<Tensor>, BackendError> {
    specs
        .iter()
        .map(|spec| {
            let value = outputs
                .get(&spec.name)
                .ok_or_else(|| BackendError::Output {
                    name: spec.name.clone(),
                    reason: "missing from the run's outputs".into(),
                })?;
            from_ort_value(&spec.name, value)
        })
        .collect()
}

/// A view of `t` for ONNX Runtime: no copy of the data.
fn to_ort_value(t: &Tensor) -> Result<SessionInputValue<'_>, ort::Error> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Ok(
        crate::with_tensor_data!(&t.data, v => SessionInputValue::from(TensorRef::from_array_view((shape, v.as_slice()))?)),
    )
}

fn from_ort_value(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    let err = |reason: String| BackendError::Output {
        name: name.to_string(),
        reason,
    };
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(err(format!("not a tensor: {other:?}"))),
    };
    macro_rules! extract {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = value
                .try_extract_tensor::<$t>()
                .map_err(|e| err(e.to_string()))?;
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            Tensor {
                shape,
                data: TensorData::$variant(data.to_vec()),
            }
        }};
    }
    Ok(match ty {
        TensorElementType::Bool => extract!(bool, Bool),
        TensorElementType::Uint8 => extract!(u8, U8),
        TensorElementType::Int8 => extract!(i8, I8),
        TensorElementType::Int32 => extract!(i32, I32),
        TensorElementType::Int64 => extract!(i64, I64),
        TensorElementType::Float32 => extract!(f32, F32),
        TensorElementType::Float64 => extract!(f64, F64),
        other => return Err(err(format!("element type {other:?} is not served"))),
    })
}

impl Backend for OrtBackend {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        if let Some(bound) = &mut self.bound {
            let run_err = |e: ort::Error| BackendError::Run(e.to_string());
            for (spec, t) in self.inputs.iter().zip(inputs) {
                let value = crate::with_tensor_data!(&t.data, v => staged(&bound.inputs, &t.shape, v.as_slice()))
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
