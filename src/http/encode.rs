//! Builds the infer response: JSON, or JSON followed by raw output bytes when the
//! client asked for binary outputs (Triton's binary tensor extension).

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde_json::{Map, Value};

use super::dto::{InferOutputResponse, InferResponse};
use crate::service::{Response, Timing};
use crate::tensor::TensorData;

/// Header giving the JSON part's length when binary data follows it.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Little-endian bytes of a tensor (BOOL as one byte each).
pub fn to_le_bytes(data: &TensorData) -> Vec<u8> {
    match data {
        TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&b| b as u8).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Serializes the core's response: JSON, or JSON then the binary outputs' bytes. The
/// timing headers (`x-convoy-*`) tell where time went.
pub fn response(r: Response) -> HttpResponse {
    let mut tail: Vec<u8> = Vec::new();
    let outputs: Vec<InferOutputResponse> = r
        .outputs
        .into_iter()
        .map(|s| {
            let datatype = s.tensor.data.datatype().as_str();
            if s.binary {
                let bytes = to_le_bytes(&s.tensor.data);
                let mut params = Map::new();
                params.insert("binary_data_size".into(), Value::from(bytes.len()));
                tail.extend_from_slice(&bytes);
                InferOutputResponse {
                    name: s.name,
                    datatype,
                    shape: s.tensor.shape,
                    parameters: Some(params),
                    data: None,
                }
            } else {
                InferOutputResponse {
                    name: s.name,
                    datatype,
                    shape: s.tensor.shape,
                    parameters: None,
                    data: Some(s.tensor.data),
                }
            }
        })
        .collect();
    let body = InferResponse {
        model_name: r.model.config.name.clone(),
        model_version: r.model.config.version.clone(),
        id: r.id,
        outputs,
    };
    let mut json = serde_json::to_vec(&body).expect("response types always serialize");
    let mut headers = HeaderMap::new();
    if tail.is_empty() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            HeaderName::from_static(HEADER_LENGTH),
            HeaderValue::from(json.len()),
        );
        json.extend_from_slice(&tail);
    }
    timing_headers(&mut headers, &r.timing);
    (headers, json).into_response()
}

/// The `x-convoy-*` timing headers every inference door sends.
pub fn timing_headers(headers: &mut HeaderMap, t: &Timing) {
    for (name, value) in t.headers() {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}
