//! The device side: a small synchronous trait owned by a dedicated worker thread.
//!
//! The batcher hands a backend whole batches (inputs in the model's declared order) and
//! gets the outputs back in the declared order. Nothing here knows about HTTP or JSON,
//! nor about config files: the repository describes a session with a [`SessionSpec`]
//! and opens it through a [`BackendFactory`] (ONNX Runtime's [`ort::Runtime`] in the
//! server, [`fake::FakeFactory`] in tests that run without ONNX Runtime).

pub mod fake;
pub mod options;
pub mod ort;

use std::fmt;
use std::str::FromStr;

pub use options::{ArenaExtend, ConvAlgoSearch, CudaOptions, GraphTensor, SessionSpec};

use crate::tensor::Tensor;

/// Errors of the backend layer. Their text goes to the log, never to a client.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BackendError {
    #[error("ONNX Runtime library not found or not loadable at {path}: {reason}. Run `deploy/setup.sh ort` (or pass --ort-lib / set ORT_DYLIB_PATH)")]
    LibraryMissing { path: String, reason: String },
    #[error("ONNX Runtime environment: {0}")]
    Environment(String),
    #[error("device {device}: {reason}")]
    Device { device: String, reason: String },
    #[error("cannot load the model: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Run(String),
    #[error("output {name:?}: {reason}")]
    Output { name: String, reason: String },
}

/// Runs batches on one device. One instance per worker thread: `run` needs `&mut self`
/// because ONNX Runtime's `Run` is not thread-safe for a single session.
pub trait Backend: Send + 'static {
    /// Runs one batch. `inputs` follow the model's declared input order, each with the
    /// batch dimension first; the result follows the declared output order.
    /// Inputs are borrowed: the ONNX Runtime backend runs on views of them (no copy),
    /// and a failed batch can be re-run request by request.
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError>;
}

/// A boxed backend runs as the backend in it, so a batcher can be started on sessions
/// from any factory.
impl Backend for Box<dyn Backend> {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        (**self).run(inputs)
    }
}

/// One opened session and what it serves.
pub struct BackendSession {
    pub backend: Box<dyn Backend>,
    /// The device it really runs on (`auto` resolved).
    pub device: Device,
    /// The graph's inputs, in the order `run` takes them.
    pub inputs: Vec<GraphTensor>,
    /// The graph's outputs, in the order `run` returns them.
    pub outputs: Vec<GraphTensor>,
}

/// What a factory says about itself, for `GET /v2` and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Which backend: "onnxruntime", "fake".
    pub kind: &'static str,
    /// The runtime library loaded (empty when there is none).
    pub library: String,
    /// Whether sessions can run on CUDA.
    pub cuda_available: bool,
}

/// Opens sessions. One factory serves a whole repository, from any thread.
pub trait BackendFactory: Send + Sync {
    /// Opens one session of `spec` on `device` (`auto` resolves here to CUDA or CPU).
    /// Errors: [`BackendError::Load`] when the model cannot be loaded (its file missing
    /// included), [`BackendError::Device`] when the device cannot be used.
    fn session(&self, spec: &SessionSpec, device: Device) -> Result<BackendSession, BackendError>;

    fn describe(&self) -> BackendInfo;
}

/// A factory behind a `'static` reference (the process-wide ONNX Runtime) is one too.
impl<F: BackendFactory + ?Sized> BackendFactory for &'static F {
    fn session(&self, spec: &SessionSpec, device: Device) -> Result<BackendSession, BackendError> {
        (**self).session(spec, device)
    }

    fn describe(&self) -> BackendInfo {
        (**self).describe()
    }
}

/// Where models run (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// CUDA when the library and a GPU are there, CPU otherwise (said in the log and `/v2`).
    Auto,
    Cpu,
    /// CUDA device N; failing to register it is a startup error.
    Cuda(i32),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(n)) if n >= 0 => Ok(Device::Cuda(n)),
                _ => Err(format!(
                    "expected auto, cpu, cuda or cuda:N (N a device index), got {s:?}"
                )),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parses_and_prints() {
        assert_eq!("auto".parse::<Device>(), Ok(Device::Auto));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("gpu".parse::<Device>().unwrap_err().contains("gpu"));
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }
}
