//! Statistics (Triton's format), model control (Triton's repository extension) and the
//! Prometheus metrics.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::bodies::*;
use super::error::{body_error, json_error};
use super::openapi::{error_kinds, ModelPath, VersionPath};
use super::v2_models::{AuthErrors, ModelErrors};
use super::AppState;
use crate::error::{Error, Result};
use crate::repository::{Model, ModelState};

fn duration(t: crate::batching::stats::TimedCount) -> StatDuration {
    StatDuration {
        count: t.count,
        ns: t.ns,
    }
}

/// Finite, or `None` (JSON has no spelling for NaN or infinity).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// One model's entry in Triton's statistics format, plus Convoy's own fields.
fn model_statistics(m: &Model) -> ModelStatistics {
    let s = m.batcher.stats().snapshot();
    let (share, samples) = m.batcher.company();
    let shedding = m.batcher.shedding();
    // Input and output copies are timed inside compute_infer; their counts must still
    // equal its count (perf_analyzer refuses the statistics otherwise).
    let untimed = |count| StatDuration { count, ns: 0 };
    ModelStatistics {
        name: m.config.name.clone(),
        version: m.config.version.clone(),
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: untimed(s.compute_infer.count),
            compute_infer: duration(s.compute_infer),
            compute_output: untimed(s.compute_infer.count),
        },
        batch_stats: s
            .batch_sizes
            .iter()
            .map(|(&size, &d)| BatchStatistics {
                batch_size: size as u64,
                compute_input: untimed(d.count),
                compute_infer: duration(d),
                compute_output: untimed(d.count),
            })
            .collect(),
        convoy: ConvoyStatistics {
            cancelled: s.cancelled,
            queued_rows: m.batcher.queued_rows() as u64,
            batch_cost: m.batcher.cost().map(|c| BatchCost {
                fixed_seconds: finite(c.fixed_seconds),
                per_unit_seconds: finite(c.per_unit_seconds),
                samples: c.samples,
            }),
            company: Company { share, samples },
            shedding: Shedding {
                shed: shedding.shed,
                margin: shedding.margin,
                samples: shedding.samples,
            },
        },
    }
}

#[utoipa::path(get, path = "/v2/models/{model}/stats",
    summary = "Model statistics (Triton's format)",
    tag = "statistics",
    params(ModelPath),
    responses((status = 200, description = "The model's statistics in Triton's format",
        body = ModelStatsResponse), ModelErrors))]
pub async fn model_stats(
    State(st): State<AppState>,
    Path(p): Path<ModelPath>,
) -> Result<Json<ModelStatsResponse>> {
    let m = st.core.model(&p.model, None)?;
    Ok(Json(ModelStatsResponse {
        model_stats: vec![model_statistics(&m)],
    }))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/stats",
    summary = "Model statistics (Triton's format), one version",
    tag = "statistics",
    params(VersionPath),
    responses((status = 200, description = "The model's statistics in Triton's format",
        body = ModelStatsResponse), ModelErrors))]
pub async fn version_stats(
    State(st): State<AppState>,
    Path(p): Path<VersionPath>,
) -> Result<Json<ModelStatsResponse>> {
    let m = st.core.model(&p.model, Some(&p.version))?;
    Ok(Json(ModelStatsResponse {
        model_stats: vec![model_statistics(&m)],
    }))
}

#[utoipa::path(get, path = "/v2/models/stats",
    summary = "Statistics of every model (Triton's format)",
    tag = "statistics",
    responses((status = 200, description = "Every serving model's statistics in Triton's \
        format", body = ModelStatsResponse), AuthErrors))]
pub async fn all_stats(State(st): State<AppState>) -> Json<ModelStatsResponse> {
    let model_stats = st
        .core
        .repository()
        .snapshot()
        .into_iter()
        .filter_map(|(_, s)| match s {
            ModelState::Ready(m) => Some(model_statistics(&m)),
            ModelState::Failed { .. } => None,
        })
        .collect();
    Json(ModelStatsResponse { model_stats })
}

/// The body of `POST /v2/repository/index` (optional): `ready: true` lists only the
/// models that serve.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexRequest {
    #[serde(default)]
    pub ready: Option<bool>,
}

/// The body of model load and unload (optional): Triton's `parameters`, none of which
/// Convoy needs; a body that is not this JSON is refused.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

impl ControlRequest {
    /// Convoy has no load or unload options: the parameters are accepted and logged.
    fn note(self, model: &str) {
        if let Some(p) = self.parameters {
            tracing::debug!(model, parameters = ?p, "model control parameters are not used");
        }
    }
}

/// An optional JSON body: empty is the default, anything else must be a JSON object
/// that parses as `T` (serde would also read a struct from an array: refused here).
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    st: &AppState,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<T> {
    let body = body.map_err(|e| body_error(e, st.max_body_bytes))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    match serde_json::from_slice::<Value>(&body).map_err(json_error)? {
        object @ Value::Object(_) => serde_json::from_value(object).map_err(json_error),
        other => Err(Error::bad_request(format!(
            "invalid request body: expected a JSON object, got {other}"
        ))),
    }
}

error_kinds!(
    /// Index: a body that is not the index request.
    IndexErrors = [Unauthorized, Forbidden, BadRequest, PayloadTooLarge]
);

/// `POST /v2/repository/index`: every model on disk or loaded, with its state.
#[utoipa::path(post, path = "/v2/repository/index",
    summary = "Repository index: every model and its state",
    tag = "repository",
    request_body(content = Option<IndexRequest>, description = "Optional; `ready: true` \
        lists only the models that serve."),
    responses((status = 200, description = "Every model on disk or loaded, with its state",
        body = Vec<RepositoryIndexEntry>), IndexErrors))]
pub async fn repository_index(
    State(st): State<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<RepositoryIndexEntry>>> {
    let request: IndexRequest = optional_json(&st, body)?;
    let repo = st.core.repository().clone();
    // Reads model.toml files: keep it off the async workers.
    let index = tokio::task::spawn_blocking(move || repo.index())
        .await
        .map_err(|_| Error::internal())?;
    let only_ready = request.ready.unwrap_or(false);
    Ok(Json(
        index
            .into_iter()
            .filter(|e| !only_ready || e.state == "READY")
            .map(|e| RepositoryIndexEntry {
                state: if e.state == "READY" {
                    IndexState::Ready
                } else {
                    IndexState::Unavailable
                },
                reason: (!e.reason.is_empty()).then_some(e.reason),
                name: e.name,
                version: e.version,
            })
            .collect(),
    ))
}

error_kinds!(
    /// Loading: a body that is not a control request, not in the repository, a bad
    /// model.toml or a model ONNX Runtime cannot load, or the loading task failing.
    LoadErrors = [Unauthorized, Forbidden, BadRequest, NotFound, PayloadTooLarge, Unprocessable, Internal]
);

/// `POST /v2/repository/models/{m}/load`: load, or reload with no request lost.
#[utoipa::path(post, path = "/v2/repository/models/{model}/load",
    summary = "Load or reload a model",
    tag = "repository",
    params(ModelPath),
    request_body(content = Option<ControlRequest>, description = "Optional"),
    responses((status = 200, description = "Loaded (or reloaded) and serving", body = Empty),
        LoadErrors))]
pub async fn repository_load(
    State(st): State<AppState>,
    Path(p): Path<ModelPath>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Empty>> {
    optional_json::<ControlRequest>(&st, body)?.note(&p.model);
    let repo = st.core.repository().clone();
    tokio::task::spawn_blocking(move || repo.load_model(&p.model))
        .await
        .map_err(|_| Error::internal())??;
    Ok(Json(Empty {}))
}

error_kinds!(
    /// Unloading: a body that is not a control request, or a model not loaded.
    UnloadErrors = [Unauthorized, Forbidden, BadRequest, NotFound, PayloadTooLarge]
);

/// `POST /v2/repository/models/{m}/unload`: new requests get 404, queued ones finish.
#[utoipa::path(post, path = "/v2/repository/models/{model}/unload",
    summary = "Unload a model",
    tag = "repository",
    params(ModelPath),
    request_body(content = Option<ControlRequest>, description = "Optional"),
    responses((status = 200, description = "Unloaded; queued requests still finish",
        body = Empty), UnloadErrors))]
pub async fn repository_unload(
    State(st): State<AppState>,
    Path(p): Path<ModelPath>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Empty>> {
    optional_json::<ControlRequest>(&st, body)?.note(&p.model);
    st.core.repository().unload_model(&p.model)?;
    Ok(Json(Empty {}))
}

#[utoipa::path(get, path = "/metrics",
    summary = "Prometheus metrics",
    tag = "statistics",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4"), AuthErrors))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        st.metrics.render(),
    )
        .into_response()
}
