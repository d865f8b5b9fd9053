//! ONNX Runtime backend: loads the runtime library at run time (from the pinned PyPI
//! wheel, see `deploy/setup.sh`), creates one session per device worker, and converts
//! between Convoy tensors and ORT values.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProviderDispatch;
#[cfg(feature = "cuda")]
use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::SessionInputValue;
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};

use super::{Backend, BackendError, Device};
use crate::repository::config::ModelConfig;
use crate::tensor::{DataType, Tensor, TensorData};

/// Whether the loaded library carries the CUDA execution provider (never, in a build
/// without the `cuda` feature).
fn cuda_in_library() -> bool {
    #[cfg(feature = "cuda")]
    return ep::CUDA::is_available().unwrap_or(false);
    #[cfg(not(feature = "cuda"))]
    false
}

/// The CUDA execution provider on device `n`, failing the session if it cannot register.
fn cuda_provider(n: i32) -> Result<ExecutionProviderDispatch, ort::Error> {
    #[cfg(feature = "cuda")]
    return Ok(ep::CUDA::default()
        .with_device_id(n)
        .build()
        .error_on_failure());
    #[cfg(not(feature = "cuda"))]
    Err(ort::Error::new(format!(
        "cuda:{n}: this convoy binary was built without the `cuda` feature"
    )))
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
                            "the ONNX Runtime library {} has no CUDA execution provider; pass the library of the onnxruntime-gpu wheel with --ort-lib, or use --device auto or cpu",
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
            Device::Auto => Ok((self.build(config, None, intra_op_threads)?, Device::Cpu)),
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
            builder = builder
                .with_execution_providers([cuda_provider(n).map_err(load_err)?])
                .map_err(|e| load_err(e.into()))?;
        }
        let session = builder.commit_from_file(path).map_err(load_err)?;
        OrtBackend::new(session)
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
        })
    }
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
        self.outputs
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
}
