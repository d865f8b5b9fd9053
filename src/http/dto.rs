//! Wire types of the Open Inference Protocol (KServe v2) and Triton's extensions.
//! `*Request` come in, `*Response` go out; nothing here reaches the batcher.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tensor::TensorData;

/// `POST /v2/models/{m}/infer` body (its JSON part, with the binary extension).
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    pub inputs: Vec<InferInputRequest>,
    #[serde(default)]
    pub outputs: Option<Vec<InferOutputRequest>>,
}

#[derive(Debug, Deserialize)]
pub struct InferInputRequest {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// Flat or nested row-major values; absent when the tensor travels as binary data.
    #[serde(default)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct InferOutputRequest {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<InferOutputResponse>,
}

#[derive(Debug, Serialize)]
pub struct InferOutputResponse {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// Absent when the output travels as binary data after the JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<TensorData>,
}

impl Serialize for TensorData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::with_tensor_data!(self, v => v.serialize(s))
    }
}

/// `GET /v2` body.
#[derive(Debug, Serialize)]
pub struct ServerMetadataResponse {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
    /// Where models run: requested `--device`, and per model the device really used.
    pub device: DeviceInfo,
}

#[derive(Debug, Serialize)]
pub struct DeviceInfo {
    pub requested: String,
    pub cuda_available: bool,
    pub ort_library: String,
    pub models: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{m}` body.
#[derive(Debug, Serialize)]
pub struct ModelMetadataResponse {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// Health routes' body.
#[derive(Debug, Serialize)]
pub struct ReadyResponse {
    pub ready: bool,
}

#[derive(Debug, Serialize)]
pub struct LiveResponse {
    pub live: bool,
}
