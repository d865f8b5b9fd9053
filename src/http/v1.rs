//! `/v1` task routes: OpenAI-compatible embeddings and image classification. Wire types
//! here; the work is in `tasks`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::openapi::{
    error_kinds, Binary, ClassifierPath, ClassifyResponse, EmbeddingsInput, EmbeddingsResponse,
    PredictResponse, TabularPath, TimeoutHeader,
};
use super::tasks::{self, f32_base64, task_schedule, Timing};
use super::{AppState, RequestId};
use crate::error::ApiError;
use crate::metrics;
use crate::repository::Model;

/// `POST /v1/embeddings` body (OpenAI's shape, plus Convoy's `truncate`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"model": "minilm", "input": ["Hello world"]}))]
pub struct EmbeddingsRequest {
    #[schema(value_type = EmbeddingsInput)]
    pub input: Value,
    pub model: String,
    /// `float` (default) or `base64` (little-endian f32 bytes).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Refused unless it equals the model's width (no Matryoshka truncation here).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Truncate over-long texts (true) or refuse them with 422 (false); default: the
    /// model's `pipeline.text.truncate`.
    #[serde(default)]
    pub truncate: Option<bool>,
}

/// `POST /v1/models/{m}/classify` JSON body (or send the image itself as the body with
/// an image content type).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"image": "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAPklEQVR42gXBAQGAIAwAsEkCG0gEIhABmxjBBkaSBkQAk9wNeY7CxtDzCXF5SYplNUnWfSQLB4i7zQI14tn9RQEQ7zqn94kAAAAASUVORK5CYII=", "top_k": 3}))]
pub struct ClassifyRequest {
    /// One base64-encoded PNG/JPEG.
    #[serde(default)]
    pub image: Option<String>,
    /// Several base64-encoded images.
    #[serde(default)]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub top_k: Option<usize>,
}

fn body_bytes(st: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
            "request body exceeds the limit of {} bytes (--max-body-bytes)",
            st.max_body_bytes
        )),
        _ => ApiError::BadRequest(format!("request body: {e}")),
    })
}

fn find(st: &AppState, name: &str) -> Result<Arc<Model>, ApiError> {
    if st.is_shutting_down() {
        return Err(ApiError::Unavailable("server is shutting down".into()));
    }
    st.repo.ready(name).ok_or_else(|| match st.repo.get(name) {
        Some(_) => {
            ApiError::Unavailable(format!("model {name:?} failed to load and is not serving"))
        }
        None => ApiError::NotFound(format!("model {name:?} not found")),
    })
}

/// Counts the outcome in the model's metrics (or "unknown") and adds timing headers.
fn finish(
    st: &AppState,
    model: &str,
    started: Instant,
    result: Result<(Value, Timing), ApiError>,
) -> Response {
    let known = st.repo.ready(model);
    let mm = known.as_ref().map_or_else(
        || metrics::unknown_model().clone(),
        |m| m.batcher.metrics().clone(),
    );
    let elapsed = started.elapsed();
    match result {
        Ok((body, timing)) => {
            mm.outcome("success");
            mm.request.record(elapsed.as_secs_f64());
            if let Some(m) = &known {
                m.batcher.stats().record_request(true, elapsed);
            }
            let mut response = Json(body).into_response();
            for (name, value) in timing.headers() {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static(name), v);
                }
            }
            response
        }
        Err(e) => {
            mm.outcome(e.kind());
            e.into_response()
        }
    }
}

fn texts_of(input: Value) -> Result<Vec<String>, ApiError> {
    match input {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                Value::Array(_) => Err(ApiError::Unprocessable(format!(
                    "input[{i}]: token arrays are not supported; send text"
                ))),
                other => Err(ApiError::Unprocessable(format!(
                    "input[{i}]: expected a string, got {other}"
                ))),
            })
            .collect(),
        other => Err(ApiError::Unprocessable(format!(
            "input: expected a string or an array of strings, got {other}"
        ))),
    }
}

error_kinds!(
    /// The task routes: every stage can refuse (body, model, queue, deadline, device).
    TaskErrors = [
        "unauthorized",
        "forbidden",
        "bad_request",
        "not_found",
        "payload_too_large",
        "unprocessable",
        "too_many_requests",
        "internal",
        "unavailable",
        "timeout",
    ]
);

#[utoipa::path(post, path = "/v1/embeddings",
    summary = "Sentence embeddings (OpenAI's shape)",
    tag = "tasks",
    params(TimeoutHeader),
    request_body(content = EmbeddingsRequest, description = "Texts to embed with a text \
        model (tokenize, pad to the longest, mean-pool, L2-normalise)."),
    responses(
        (status = 200, description = "One embedding per input text, in order",
            body = EmbeddingsResponse, headers(
                ("x-convoy-pre-us" = u64, description = "Microseconds of pre-processing"),
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until the batch started on the device"),
                ("x-convoy-infer-us" = u64, description = "Microseconds on the device"),
                ("x-convoy-post-us" = u64, description = "Microseconds of post-processing"),
            )),
        TaskErrors,
    ))]
pub async fn embeddings(
    State(st): State<AppState>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut model = String::new();
    let result = async {
        let body = body_bytes(&st, body)?;
        let req: EmbeddingsRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
        model = req.model.clone();
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::Unprocessable(format!(
                    "encoding_format: expected \"float\" or \"base64\", got {other:?}"
                )))
            }
        };
        let m = find(&st, &req.model)?;
        let texts = texts_of(req.input)?;
        let sched = task_schedule(&m, None, &headers, id, started)?;
        let mut timing = Timing::default();
        let (vectors, tokens) =
            tasks::embed(&st, &m, texts, req.truncate, "input", &sched, &mut timing).await?;
        if let Some(d) = req.dimensions {
            let width = vectors.first().map_or(0, Vec::len);
            if d != width {
                return Err(ApiError::Unprocessable(format!(
                    "dimensions: model {:?} gives {width}-dimensional embeddings, got {d}",
                    req.model
                )));
            }
        }
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let embedding = if base64 { f32_base64(v) } else { json!(v) };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        let body = json!({
            "object": "list",
            "data": data,
            "model": req.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        });
        Ok((body, timing))
    }
    .await;
    finish(&st, &model, started, result)
}

#[utoipa::path(post, path = "/v1/models/{model}/classify",
    summary = "Image classification: top-k classes per image",
    tag = "tasks",
    params(ClassifierPath, TimeoutHeader),
    request_body(description = "Base64 images as JSON, or one PNG or JPEG image itself as \
        the body, sent as `application/octet-stream` or `image/*` (`image/png`, \
        `image/jpeg`); it is decoded, resized, centre-cropped and normalised as the model \
        says.",
        content(
            (ClassifyRequest = "application/json"),
            (Binary = "application/octet-stream"),
        )),
    responses(
        (status = 200, description = "Per image, its top-k classes, best first",
            body = ClassifyResponse, headers(
                ("x-convoy-pre-us" = u64, description = "Microseconds of pre-processing"),
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until the batch started on the device"),
                ("x-convoy-infer-us" = u64, description = "Microseconds on the device"),
                ("x-convoy-post-us" = u64, description = "Microseconds of post-processing"),
            )),
        TaskErrors,
    ))]
pub async fn classify(
    State(st): State<AppState>,
    Path(model): Path<String>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let m = find(&st, &model)?;
        let body = body_bytes(&st, body)?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let (images, top_k) = if content_type.starts_with("image/")
            || content_type.starts_with("application/octet-stream")
        {
            (vec![body], None)
        } else {
            let req: ClassifyRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
            let images =
                match (req.image, req.images) {
                    (Some(one), None) => vec![tasks::decode_base64("image", &one)?],
                    (None, Some(many)) => many
                        .iter()
                        .enumerate()
                        .map(|(i, s)| tasks::decode_base64(&format!("images[{i}]"), s))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(ApiError::Unprocessable(
                        "body: give exactly one of `image` (base64) or `images` (array of base64)"
                            .into(),
                    )),
                };
            (images, req.top_k)
        };
        let sched = task_schedule(&m, None, &headers, id, started)?;
        let mut timing = Timing::default();
        let results =
            tasks::classify(&st, &m, images, top_k, "images", &sched, &mut timing).await?;
        let predictions: Vec<Value> = results.into_iter().map(|(top, _)| json!(top)).collect();
        Ok((json!({"model": model, "predictions": predictions}), timing))
    }
    .await;
    finish(&st, &model, started, result)
}

/// `POST /v1/models/{m}/predict` body: raw named features.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"instance": {"age": 59, "sex": 2, "bmi": 32.1, "bp": 101,
    "s1": 157, "s2": 93.2, "s3": 38, "s4": 4, "s5": 4.8598, "s6": 87}}))]
pub struct PredictRequest {
    /// One object of named features, or several in `instances`.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::HashMap<String, f64>>)]
    pub instance: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<std::collections::HashMap<String, f64>>>)]
    pub instances: Option<Vec<serde_json::Map<String, Value>>>,
}

#[utoipa::path(post, path = "/v1/models/{model}/predict",
    summary = "Tabular prediction from named raw features",
    tag = "tasks",
    params(TabularPath, TimeoutHeader),
    request_body(content = PredictRequest, description = "One instance, or several, of the \
        model's named features in their raw units; standardised as the model says."),
    responses(
        (status = 200, description = "One prediction per instance, in the target's units",
            body = PredictResponse, headers(
                ("x-convoy-pre-us" = u64, description = "Microseconds of pre-processing"),
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until the batch started on the device"),
                ("x-convoy-infer-us" = u64, description = "Microseconds on the device"),
                ("x-convoy-post-us" = u64, description = "Microseconds of post-processing"),
            )),
        TaskErrors,
    ))]
pub async fn predict(
    State(st): State<AppState>,
    Path(model): Path<String>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let m = find(&st, &model)?;
        let Some(crate::pipeline::Pipeline::Tabular { params, .. }) = &m.pipeline else {
            return Err(ApiError::Unprocessable(format!("model {model:?} is not a tabular model")));
        };
        let body = body_bytes(&st, body)?;
        let req: PredictRequest =
            serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
        let instances = match (req.instance, req.instances) {
            (Some(one), None) => vec![one],
            (None, Some(many)) => many,
            _ => {
                return Err(ApiError::Unprocessable(
                    "body: give exactly one of `instance` (an object) or `instances` (an array of objects)".into(),
                ))
            }
        };
        let t0 = Instant::now();
        let rows = params.rows(&instances, "instances")?;
        let sched = task_schedule(&m, None, &headers, id, started)?;
        let mut timing = Timing {
            pre_us: t0.elapsed().as_micros() as u64,
            ..Timing::default()
        };
        let predictions = tasks::predict(&m, rows, &sched, &mut timing).await?;
        Ok((json!({"model": model, "predictions": predictions}), timing))
    }
    .await;
    finish(&st, &model, started, result)
}
