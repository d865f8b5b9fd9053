//! The v2 inference door (JSON, and Triton's binary tensor extension): a thin mapping
//! from the wire onto [`Core::infer`](crate::service::Core::infer) and back.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::decode::{self, TIMEOUT_HEADER};
use super::dto::InferRequest;
use super::encode::{self, HEADER_LENGTH};
use super::error::{body_error, json_error};
use super::openapi::{error_kinds, InferHeaders, ModelPath, VersionPath};
use super::schemas::Binary;
use super::{AppState, RequestId};
use crate::error::{Error, Result};
use crate::service::{Request, Schedule};

error_kinds!(
    /// Inference, on v2 and the task routes alike: every stage can refuse (body, model,
    /// queue, deadline, device).
    InferErrors = [
        Unauthorized,
        Forbidden,
        BadRequest,
        NotFound,
        PayloadTooLarge,
        Unprocessable,
        TooManyRequests,
        Internal,
        Unavailable,
        Timeout,
    ]
);

#[utoipa::path(post, path = "/v2/models/{model}/infer",
    summary = "Inference",
    tag = "inference",
    params(ModelPath, InferHeaders),
    request_body(content = InferRequest, description = "Input tensors as JSON. With Triton's \
        binary tensor extension the body is this JSON (`Inference-Header-Content-Length` \
        bytes) followed by the inputs' raw little-endian bytes."),
    responses(
        (status = 200, description = "Output tensors. `application/octet-stream` when an \
            output was asked as binary data: the JSON, then the outputs' bytes.",
            headers(
                ("x-convoy-pre-us" = u64, description = "Microseconds of pre-processing (decoding, a pipeline's pre-stage)"),
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until its batch started on the device"),
                ("x-convoy-infer-us" = u64, description = "Microseconds its batch ran on the device"),
                ("x-convoy-post-us" = u64, description = "Microseconds of post-processing"),
                ("x-convoy-batch-rows" = u64, description = "Rows in the batch it ran in"),
                ("Inference-Header-Content-Length" = u64, description = "With binary outputs: \
                    bytes of JSON before the binary data"),
            ),
            content(
                (super::dto::InferResponse = "application/json"),
                (Binary = "application/octet-stream"),
            )),
        InferErrors,
    ))]
pub async fn infer(
    State(st): State<AppState>,
    Path(p): Path<ModelPath>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    door(st, p.model, None, id, headers, body).await
}

#[utoipa::path(post, path = "/v2/models/{model}/versions/{version}/infer",
    summary = "Inference, one version",
    tag = "inference",
    params(VersionPath, InferHeaders),
    request_body(content = InferRequest, description = "Input tensors as JSON. With Triton's \
        binary tensor extension the body is this JSON (`Inference-Header-Content-Length` \
        bytes) followed by the inputs' raw little-endian bytes."),
    responses(
        (status = 200, description = "Output tensors. `application/octet-stream` when an \
            output was asked as binary data: the JSON, then the outputs' bytes.",
            headers(
                ("x-convoy-pre-us" = u64, description = "Microseconds of pre-processing (decoding, a pipeline's pre-stage)"),
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until its batch started on the device"),
                ("x-convoy-infer-us" = u64, description = "Microseconds its batch ran on the device"),
                ("x-convoy-post-us" = u64, description = "Microseconds of post-processing"),
                ("x-convoy-batch-rows" = u64, description = "Rows in the batch it ran in"),
                ("Inference-Header-Content-Length" = u64, description = "With binary outputs: \
                    bytes of JSON before the binary data"),
            ),
            content(
                (super::dto::InferResponse = "application/json"),
                (Binary = "application/octet-stream"),
            )),
        InferErrors,
    ))]
pub async fn version_infer(
    State(st): State<AppState>,
    Path(p): Path<VersionPath>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    door(st, p.model, Some(p.version), id, headers, body).await
}

async fn door(
    st: AppState,
    model: String,
    version: Option<String>,
    id: Arc<str>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = Instant::now();
    let limit = st.max_body_bytes;
    let result = st
        .core
        .infer(&model, version.as_deref(), arrived, |_| {
            let body = body.map_err(|e| body_error(e, limit))?;
            decode_body(&headers, &body, arrived, id)
        })
        .await;
    match result {
        Ok(response) => encode::response(response),
        Err(e) => e.into_response(),
    }
}

/// The whole body as the core's request and schedule.
fn decode_body(
    headers: &HeaderMap,
    body: &[u8],
    arrived: Instant,
    id: Arc<str>,
) -> Result<(Request, Schedule)> {
    let (json, binary) = split_body(headers, body)?;
    let parsed: InferRequest = serde_json::from_slice(json).map_err(json_error)?;
    let header_ms = headers.get(TIMEOUT_HEADER).and_then(|v| v.to_str().ok());
    let schedule = decode::schedule(parsed.parameters.as_ref(), header_ms, arrived, id)?;
    Ok((decode::request(parsed, binary)?, schedule))
}

/// Splits a body into its JSON part and the binary data after it.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8])> {
    let Some(v) = headers.get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let n: usize = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            Error::bad_request(format!(
                "header {HEADER_LENGTH}: expected a byte count, got {v:?}"
            ))
        })?;
    if n > body.len() {
        return Err(Error::bad_request(format!(
            "header {HEADER_LENGTH}: {n} exceeds the body's {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}
