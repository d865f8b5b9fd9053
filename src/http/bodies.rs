//! The bodies handlers send beyond inference itself: Triton's statistics, model
//! configuration and repository index, and the task routes' answers. Each is the one
//! type its handler serializes and the schema the OpenAPI document shows.

use serde::Serialize;
use utoipa::ToSchema;

use super::schemas::{EmbeddingVector, NumberOrNull};

/// A count and the total nanoseconds spent on it.
#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct StatDuration {
    pub count: u64,
    pub ns: u64,
}

/// Per-request outcome and time, as Triton reports them.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferStatistics {
    /// Successful requests, and their total time end to end.
    pub success: StatDuration,
    /// Failed requests (server-side failures).
    pub fail: StatDuration,
    /// Time spent queued.
    pub queue: StatDuration,
    pub compute_input: StatDuration,
    /// Device time.
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
}

/// Executions of one batch size.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStatistics {
    pub batch_size: u64,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
}

/// The learned cost of a batch: `fixed_seconds + per_unit_seconds × rows × elements per
/// row`. `null` fields: not a finite number.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCost {
    pub fixed_seconds: Option<f64>,
    pub per_unit_seconds: Option<f64>,
    /// Batches the fit has seen.
    pub samples: u64,
}

/// Admission against the latency target (`shed_beyond_target`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Shedding {
    /// Requests refused (429) as predicted to finish past the target.
    pub shed: u64,
    /// What predictions are multiplied by before the check, steered online so that 99 %
    /// of admitted requests finish inside the estimate they were admitted on (1 before
    /// any).
    pub margin: f64,
    /// Admitted requests the margin has learned from.
    pub samples: u64,
}

/// Whether an idle device worker waits for company (latency-target window): of the
/// requests that found a worker idle, the share that another request of their shape
/// followed within the batch's learned fixed cost (exponentially weighted, 1 before
/// any). Below 0.5 an idle worker dispatches at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Company {
    pub share: f64,
    /// Requests that found a worker idle, counted so far.
    pub samples: u64,
}

/// Convoy's own counters, next to Triton's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConvoyStatistics {
    /// Requests dropped at batch time because their client had hung up.
    pub cancelled: u64,
    /// Rows waiting in the model's queue now.
    pub queued_rows: u64,
    /// `null` until enough batches have run to fit it.
    pub batch_cost: Option<BatchCost>,
    pub company: Company,
    pub shedding: Shedding,
}

/// One model's statistics in Triton's format.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStatistics {
    pub name: String,
    pub version: String,
    /// Rows inferred.
    pub inference_count: u64,
    /// Batches executed.
    pub execution_count: u64,
    pub inference_stats: InferStatistics,
    pub batch_stats: Vec<BatchStatistics>,
    pub convoy: ConvoyStatistics,
}

/// `GET /v2/models/stats`, `GET /v2/models/{model}/stats`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model_stats": [{"name": "mlp", "version": "1",
    "inference_count": 16, "execution_count": 1,
    "inference_stats": {"success": {"count": 1, "ns": 412000}, "fail": {"count": 0, "ns": 0},
        "queue": {"count": 1, "ns": 61000}, "compute_input": {"count": 1, "ns": 0},
        "compute_infer": {"count": 1, "ns": 230000}, "compute_output": {"count": 1, "ns": 0}},
    "batch_stats": [{"batch_size": 16, "compute_input": {"count": 1, "ns": 0},
        "compute_infer": {"count": 1, "ns": 230000}, "compute_output": {"count": 1, "ns": 0}}],
    "convoy": {"cancelled": 0, "queued_rows": 0, "batch_cost": null,
        "company": {"share": 1.0, "samples": 0},
        "shedding": {"shed": 0, "margin": 1.0, "samples": 0}}}]}))]
pub struct ModelStatsResponse {
    pub model_stats: Vec<ModelStatistics>,
}

/// An input or output in Triton's model configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigTensor {
    pub name: String,
    /// `TYPE_` and the datatype, e.g. `TYPE_FP32` (`TYPE_STRING` for BYTES).
    pub data_type: String,
    /// Dimensions without the batch dimension, as strings (Triton's int64 encoding);
    /// `-1` is dynamic.
    pub dims: Vec<String>,
}

/// Device workers in Triton's model configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceGroup {
    pub name: String,
    /// `KIND_CPU` or `KIND_GPU`.
    pub kind: &'static str,
    pub count: u64,
}

/// Queue policy in Triton's model configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePolicy {
    /// Rows that may wait; beyond: 429.
    pub max_queue_size: u64,
}

/// Dynamic batching settings in Triton's model configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct DynamicBatching {
    pub preferred_batch_size: Vec<u64>,
    /// Microseconds, as a string (Triton's int64 encoding).
    pub max_queue_delay_microseconds: String,
    pub default_queue_policy: QueuePolicy,
}

/// Which versions serve: the latest one.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPolicy {
    pub latest: LatestVersions,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatestVersions {
    pub num_versions: u64,
}

/// `GET /v2/models/{model}/config`: Triton's model configuration JSON. Its inputs and
/// outputs are the tensors the model serves, the same as its metadata's.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "mlp", "platform": "onnxruntime_onnx",
    "backend": "onnxruntime", "version_policy": {"latest": {"num_versions": 1}},
    "max_batch_size": 64,
    "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": ["10"]}],
    "output": [{"name": "output", "data_type": "TYPE_FP32", "dims": ["1"]}],
    "instance_group": [{"name": "mlp", "kind": "KIND_CPU", "count": 1}],
    "dynamic_batching": {"preferred_batch_size": [64], "max_queue_delay_microseconds": "500",
        "default_queue_policy": {"max_queue_size": 4096}}}))]
pub struct ModelConfigResponse {
    pub name: String,
    pub platform: String,
    pub backend: &'static str,
    pub version_policy: VersionPolicy,
    /// Rows per batch (1 with no `dynamic_batching`: no batching).
    pub max_batch_size: u64,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
    pub instance_group: Vec<InstanceGroup>,
    /// Present when the model batches dynamically.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub dynamic_batching: Option<DynamicBatching>,
}

/// A model's state in the repository index.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum IndexState {
    /// Loaded and serving.
    Ready,
    /// Failed to load, or not loaded.
    Unavailable,
}

/// One model of `POST /v2/repository/index` (Triton's model repository extension).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "mlp", "version": "1", "state": "READY"}))]
pub struct RepositoryIndexEntry {
    pub name: String,
    pub version: String,
    pub state: IndexState,
    /// Why it is unavailable (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// An empty JSON object, `{}`: the answer of model control on success.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({}))]
pub struct Empty {}

/// One item of an embeddings response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: &'static str,
    /// Position of its text in `input`.
    pub index: u64,
    #[schema(value_type = EmbeddingVector)]
    pub embedding: EmbeddingData,
}

/// Floats, or their little-endian bytes in base64.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddingData {
    Floats(Vec<f32>),
    Base64(String),
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// `POST /v1/embeddings` answer (OpenAI's shape).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "model": "minilm",
    "data": [{"object": "embedding", "index": 0, "embedding": [-0.034477, 0.031023, 0.006735]}],
    "usage": {"prompt_tokens": 4, "total_tokens": 4}}))]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingsUsage,
}

/// One class of a classification.
#[derive(Debug, Serialize, ToSchema)]
pub struct Prediction {
    /// Class index in the model's output.
    pub index: u64,
    pub label: String,
    /// Probability (softmax); `null` if not finite.
    pub score: Option<f32>,
}

/// `POST /v1/models/{model}/classify` answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model": "efficientnet", "predictions": [[
    {"index": 967, "label": "espresso", "score": 0.957}]]}))]
pub struct ClassifyResponse {
    pub model: String,
    /// Per image, in order: its top-k classes, best first.
    pub predictions: Vec<Vec<Prediction>>,
}

/// `POST /v1/models/{model}/predict` answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model": "diabetes", "predictions": [202.71]}))]
pub struct PredictResponse {
    pub model: String,
    /// One per instance, in order, in the target's units; `null` if not finite.
    #[schema(value_type = Vec<NumberOrNull>)]
    pub predictions: Vec<Option<f32>>,
}
