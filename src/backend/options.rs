//! What a backend needs to open a session, in the backend's own types: the repository
//! fills a [`SessionSpec`] from `model.toml`, and a backend reports its graph as
//! [`GraphTensor`]s. Nothing here knows about config files.

use std::path::PathBuf;

use crate::tensor::DataType;

/// How the CUDA arena grows (`[cuda] arena_extend_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaExtend {
    NextPowerOfTwo,
    SameAsRequested,
}

/// How cuDNN picks convolution algorithms (`[cuda] cudnn_conv_algo_search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgoSearch {
    Exhaustive,
    Heuristic,
    Default,
}

/// CUDA execution provider options from `[cuda]`; `None` leaves ONNX Runtime's default.
/// Ignored on CPU. Each session (`instances.count` of them) gets its own arena, so
/// `gpu_mem_limit` is per instance.
#[derive(Clone, Debug, PartialEq)]
pub struct CudaOptions {
    /// Bytes the session's CUDA memory arena may hold (ORT default: unlimited).
    pub gpu_mem_limit: Option<u64>,
    /// ORT default: next power of two.
    pub arena_extend_strategy: Option<ArenaExtend>,
    /// ORT default: exhaustive (benchmarks every algorithm on first use of a shape).
    pub cudnn_conv_algo_search: Option<ConvAlgoSearch>,
    /// Let cuDNN use as much workspace as the fastest algorithm wants (ORT default: on).
    pub cudnn_conv_use_max_workspace: Option<bool>,
    /// TF32 for FP32 matmuls and convolutions on Ampere and newer (ORT default: off; on
    /// changes FP32 results at about 1e-3 relative).
    pub use_tf32: Option<bool>,
    /// Stage each batch's inputs in pinned host memory and bind the outputs to pinned
    /// host memory (ONNX Runtime's IoBinding), so the copies to and from the GPU are
    /// single DMA transfers. Convoy's default: on.
    pub io_binding: bool,
}

impl Default for CudaOptions {
    fn default() -> CudaOptions {
        CudaOptions {
            gpu_mem_limit: None,
            arena_extend_strategy: None,
            cudnn_conv_algo_search: None,
            cudnn_conv_use_max_workspace: None,
            use_tf32: None,
            io_binding: true,
        }
    }
}

/// What the graph says (or, for a backend without a graph, what the model declares)
/// about one input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphTensor {
    pub name: String,
    /// `None` when the element type is one Convoy does not serve.
    pub datatype: Option<DataType>,
    /// Dimensions with -1 for dynamic ones (batch dimension included).
    pub shape: Vec<i64>,
}

/// Everything a backend needs to open one session of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSpec {
    /// The model's name (for the log).
    pub name: String,
    /// The model file, resolved against the model's directory.
    pub model_path: PathBuf,
    /// Intra-op threads per session (0 = the runtime's default: one per core).
    pub intra_op_threads: usize,
    /// Applied when the session runs on CUDA.
    pub cuda: CudaOptions,
    /// The inputs the model's config declares, batch dimension first (-1), in declared
    /// order; empty when the config leaves them to the graph. ONNX Runtime reads the
    /// graph instead; a backend without a graph (the fake) serves these.
    pub declared_inputs: Vec<GraphTensor>,
    /// The declared outputs, as `declared_inputs`.
    pub declared_outputs: Vec<GraphTensor>,
}
