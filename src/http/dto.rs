//! Wire types of the Open Inference Protocol (KServe v2) and Triton's extensions.
//! `*Request` come in, `*Response` go out; nothing here reaches the batcher.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::schemas::{Datatype, InputValues, OutputValues};

use crate::tensor::TensorData;

/// `POST /v2/models/{m}/infer` body (its JSON part, with the binary extension).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"id": "42", "inputs": [{"name": "input", "shape": [1, 10],
    "datatype": "FP32", "data": [0.0380759, 0.0506801, 0.0616962, 0.0218724, -0.0442235,
    -0.0348208, -0.0434008, -0.00259226, 0.0199075, -0.0176461]}]}))]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// `binary_data_output` (bool): every output as binary data; `timeout`
    /// (microseconds, > 0): the request's deadline; `priority` (0 = the model's default,
    /// 1 = highest).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// One entry per model input, in any order.
    pub inputs: Vec<InferInputRequest>,
    /// Which outputs to return (default: all).
    #[serde(default)]
    pub outputs: Option<Vec<InferOutputRequest>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InferInputRequest {
    pub name: String,
    /// Batch dimension first.
    #[schema(value_type = Vec<u64>, example = json!([1, 10]))]
    pub shape: Vec<i64>,
    #[schema(value_type = Datatype)]
    pub datatype: String,
    /// `binary_data_size` (bytes): the tensor travels as raw little-endian bytes after
    /// the JSON (Triton's binary tensor extension) instead of in `data`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Flat or nested row-major values; absent when the tensor travels as binary data.
    #[serde(default)]
    #[schema(value_type = Option<InputValues>)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InferOutputRequest {
    pub name: String,
    /// `binary_data` (bool): this output as binary data.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model_name": "mlp", "model_version": "1", "id": "42",
    "outputs": [{"name": "output", "datatype": "FP32", "shape": [1, 1], "data": [202.71085]}]}))]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    /// The request's `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    pub outputs: Vec<InferOutputResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferOutputResponse {
    pub name: String,
    #[schema(value_type = Datatype)]
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    /// `binary_data_size` (bytes) when the output travels as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, required = false)]
    pub parameters: Option<Map<String, Value>>,
    /// Absent when the output travels as binary data after the JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = OutputValues, required = false)]
    pub data: Option<TensorData>,
}

impl Serialize for TensorData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::tensor::with_tensor_data!(self, v => v.serialize(s))
    }
}

/// `GET /v2` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadataResponse {
    #[schema(example = "convoy")]
    pub name: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    #[schema(example = json!(["binary_tensor_data", "statistics", "model_configuration"]))]
    pub extensions: Vec<&'static str>,
    /// Where models run: requested `--device`, and per model the device really used.
    pub device: DeviceInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfo {
    /// The `--device` asked for: auto, cpu, cuda or cuda:N.
    #[schema(example = "auto")]
    pub requested: String,
    pub cuda_available: bool,
    /// The ONNX Runtime library loaded.
    pub ort_library: String,
    /// Per model, the device it really runs on (`cpu`, `cuda:0`), or `unavailable`.
    #[schema(value_type = std::collections::HashMap<String, String>, example = json!({"mlp": "cpu"}))]
    pub models: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    #[schema(value_type = Datatype)]
    pub datatype: &'static str,
    /// Batch dimension first; `-1` is dynamic.
    #[schema(example = json!([-1, 10]))]
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{m}` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadataResponse {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// Health routes' body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveResponse {
    pub live: bool,
}
