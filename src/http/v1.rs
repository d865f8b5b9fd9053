//! Task doors: OpenAI-compatible `/v1/embeddings`, image classification and tabular
//! prediction. Each maps its body onto the model's served input, calls the same
//! [`Core::infer`](crate::service::Core::infer) as v2, and shapes the answer.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::bodies::*;
use super::decode::TIMEOUT_HEADER;
use super::encode::timing_headers;
use super::error::{body_error, json_error};
use super::openapi::{ClassifierPath, TabularPath, TimeoutHeader};
use super::schemas::{Binary, EmbeddingsInput};
use super::v2_infer::InferErrors;
use super::{AppState, RequestId};
use crate::error::{Error, Result};
use crate::pipeline::post::top_k;
use crate::pipeline::Pipeline;
use crate::repository::Model;
use crate::service::{Input, Request, Response as CoreResponse, Schedule};
use crate::tensor::{Payload, TensorData};

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

/// The schedule of a task request: the timeout header, the model's defaults otherwise.
fn schedule(headers: &HeaderMap, arrived: Instant, id: Arc<str>) -> Result<Schedule> {
    let header_ms = headers.get(TIMEOUT_HEADER).and_then(|v| v.to_str().ok());
    super::decode::schedule(None, header_ms, arrived, id)
}

/// A request of one BYTES input, as the task doors send it.
fn bytes_request(name: &str, elements: Vec<Bytes>, field: &'static str) -> Request {
    let mut input = Input::new(name, vec![elements.len()], Payload::Bytes(elements));
    input.field = Some(field);
    Request {
        inputs: vec![input],
        ..Request::default()
    }
}

/// The first output's rows, `width` values each.
fn rows(r: &CoreResponse) -> Result<Vec<&[f32]>> {
    let out = r.outputs.first().ok_or_else(Error::internal)?;
    let TensorData::F32(v) = &out.tensor.data else {
        return Err(Error::internal());
    };
    Ok(v.chunks(out.tensor.row_len().max(1)).collect())
}

/// A task answer: its JSON body and the timing headers.
fn answer<T: serde::Serialize>(body: T, r: &CoreResponse) -> Response {
    let mut response = Json(body).into_response();
    timing_headers(response.headers_mut(), &r.timing);
    response
}

fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn texts_of(input: Value) -> Result<Vec<Bytes>> {
    let text = |i: Option<usize>, v: Value| match v {
        Value::String(s) => Ok(Bytes::from(s)),
        Value::Array(_) => Err(Error::unprocessable(format!(
            "input[{}]: token arrays are not supported; send text",
            i.unwrap_or(0)
        ))),
        other => Err(Error::unprocessable(match i {
            Some(i) => format!("input[{i}]: expected a string, got {other}"),
            None => format!("input: expected a string or an array of strings, got {other}"),
        })),
    };
    match input {
        Value::Array(items) if items.is_empty() => Err(Error::unprocessable(
            "input: expected at least one text, got an empty list",
        )),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| text(Some(i), v))
            .collect(),
        other => Ok(vec![text(None, other)?]),
    }
}

/// 422 unless `m` has the pipeline `is` accepts.
fn require(m: &Model, is: fn(&Pipeline) -> bool, what: &str) -> Result<()> {
    match &m.pipeline {
        Some(p) if is(p) => Ok(()),
        _ => Err(Error::unprocessable(format!(
            "model {:?} is not {what}",
            m.config.name
        ))),
    }
}

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
        InferErrors,
    ))]
pub async fn embeddings(
    State(st): State<AppState>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = Instant::now();
    let parsed = body
        .map_err(|e| body_error(e, st.max_body_bytes))
        .and_then(|b| serde_json::from_slice::<EmbeddingsRequest>(&b).map_err(json_error));
    let req = match parsed {
        Ok(req) => req,
        Err(e) => return st.core.refused(arrived, e).into_response(),
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(Error::unprocessable(format!(
            "encoding_format: expected \"float\" or \"base64\", got {other:?}"
        ))),
    };
    let (dimensions, truncate, input) = (req.dimensions, req.truncate, req.input);
    let result = st
        .core
        .infer(&req.model, None, arrived, |m| {
            require(
                m,
                |p| matches!(p, Pipeline::Embed { .. }),
                "a text embedding model",
            )?;
            base64.clone()?;
            if let Some(Pipeline::Embed { dim, .. }) = &m.pipeline {
                if dimensions.is_some_and(|d| d != *dim) {
                    return Err(Error::unprocessable(format!(
                        "dimensions: model {:?} gives {dim}-dimensional embeddings, got {}",
                        m.config.name,
                        dimensions.unwrap_or(0)
                    )));
                }
            }
            let mut request = bytes_request("text", texts_of(input)?, "input");
            request.truncate = truncate;
            Ok((request, schedule(&headers, arrived, id)?))
        })
        .await;
    respond(result.and_then(|r| {
        let base64 = base64?;
        let data = rows(&r)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding",
                index: i as u64,
                embedding: if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    EmbeddingData::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    EmbeddingData::Floats(v.to_vec())
                },
            })
            .collect();
        let tokens = r.tokens.unwrap_or(0) as u64;
        let body = EmbeddingsResponse {
            object: "list",
            data,
            model: req.model.clone(),
            usage: EmbeddingsUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        };
        Ok(answer(body, &r))
    }))
}

/// The images of a classify body: the body itself for an image or octet-stream content
/// type, base64 strings in JSON otherwise (decoded by the core, as on v2).
fn images_of(headers: &HeaderMap, body: Bytes) -> Result<(Vec<Bytes>, Option<usize>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("image/") || content_type.starts_with("application/octet-stream") {
        return Ok((vec![body], None));
    }
    let req: ClassifyRequest = serde_json::from_slice(&body).map_err(json_error)?;
    let images = match (req.image, req.images) {
        (Some(one), None) => vec![Bytes::from(one)],
        (None, Some(many)) if !many.is_empty() => many.into_iter().map(Bytes::from).collect(),
        (None, Some(_)) => {
            return Err(Error::unprocessable(
                "images: expected at least one image, got none",
            ))
        }
        _ => {
            return Err(Error::unprocessable(
                "body: give exactly one of `image` (base64) or `images` (array of base64)",
            ))
        }
    };
    Ok((images, req.top_k))
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
        InferErrors,
    ))]
pub async fn classify(
    State(st): State<AppState>,
    Path(p): Path<ClassifierPath>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = Instant::now();
    let limit = st.max_body_bytes;
    let mut k = None;
    let result = st
        .core
        .infer(&p.model, None, arrived, |m| {
            require(
                m,
                |p| matches!(p, Pipeline::Classify { .. }),
                "an image classifier",
            )?;
            let body = body.map_err(|e| body_error(e, limit))?;
            let (images, top_k) = images_of(&headers, body)?;
            k = top_k;
            let request = bytes_request("image", images, "images");
            Ok((request, schedule(&headers, arrived, id)?))
        })
        .await;
    respond(result.and_then(|r| {
        let Some(Pipeline::Classify {
            labels, top_k: k0, ..
        }) = &r.model.pipeline
        else {
            return Err(Error::internal());
        };
        let k = k.unwrap_or(*k0).clamp(1, labels.len());
        let predictions = rows(&r)?
            .into_iter()
            .map(|probs| {
                top_k(probs, k)
                    .into_iter()
                    .map(|(index, score)| Prediction {
                        index: index as u64,
                        label: labels[index].clone(),
                        score: score.is_finite().then_some(score),
                    })
                    .collect()
            })
            .collect();
        let body = ClassifyResponse {
            model: p.model.clone(),
            predictions,
        };
        Ok(answer(body, &r))
    }))
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
        InferErrors,
    ))]
pub async fn predict(
    State(st): State<AppState>,
    Path(p): Path<TabularPath>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = Instant::now();
    let limit = st.max_body_bytes;
    let result = st
        .core
        .infer(&p.model, None, arrived, |m| {
            let Some(Pipeline::Tabular { params, .. }) = &m.pipeline else {
                return Err(Error::unprocessable(format!(
                    "model {:?} is not a tabular model",
                    p.model
                )));
            };
            let body = body.map_err(|e| body_error(e, limit))?;
            let req: PredictRequest = serde_json::from_slice(&body).map_err(json_error)?;
            let instances = match (req.instance, req.instances) {
                (Some(one), None) => vec![one],
                (None, Some(many)) if !many.is_empty() => many,
                (None, Some(_)) => {
                    return Err(Error::unprocessable(
                        "instances: expected at least one instance, got none",
                    ))
                }
                _ => return Err(Error::unprocessable(
                    "body: give exactly one of `instance` (an object) or `instances` (an array of objects)",
                )),
            };
            let raw = params.rows(&instances, "instances")?;
            let shape = vec![instances.len(), params.features.len()];
            let mut input = Input::new("features", shape, Payload::Numeric(TensorData::F32(raw)));
            input.field = Some("instances");
            let request = Request {
                inputs: vec![input],
                ..Request::default()
            };
            Ok((request, schedule(&headers, arrived, id)?))
        })
        .await;
    respond(result.and_then(|r| {
        let predictions = rows(&r)?
            .into_iter()
            .map(|row| row.first().copied().filter(|y| y.is_finite()))
            .collect();
        let body = PredictResponse {
            model: p.model.clone(),
            predictions,
        };
        Ok(answer(body, &r))
    }))
}
