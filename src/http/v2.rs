//! Open Inference Protocol (KServe v2) handlers, with Triton's `config` and `stats`
//! extensions that its clients and perf_analyzer read.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::decode::{decode_inputs, schedule, TIMEOUT_HEADER};
use super::dto::*;
use super::encode::{self, Selected, HEADER_LENGTH};
use super::openapi::{
    error_kinds, Binary, Empty, InferHeaders, ModelConfigResponse, ModelPath, ModelStatsResponse,
    RepositoryIndexEntry, VersionPath,
};
use super::run::submit_and_wait;
use super::{AppState, RequestId};
use crate::batching::Entry;
use crate::error::ApiError;
use crate::metrics;
use crate::repository::{Model, ModelState, TensorSpec};

error_kinds!(
    /// With API keys configured (`--api-key`), the auth layer refuses a request without a
    /// key (401) or with a wrong one (403): on every route but the API description, and on
    /// health and metrics only with `--auth-health` / `--auth-metrics`.
    AuthErrors = ["unauthorized", "forbidden"]
);

#[utoipa::path(get, path = "/v2",
    summary = "Server metadata",
    tag = "metadata",
    responses((status = 200, description = "Server metadata, with the device each model \
        really runs on", body = ServerMetadataResponse), AuthErrors))]
pub async fn server_metadata(State(st): State<AppState>) -> Json<ServerMetadataResponse> {
    let mut models = Map::new();
    for (name, state) in st.repo.snapshot() {
        let device = match state {
            ModelState::Ready(m) => m.device.to_string(),
            ModelState::Failed { .. } => "unavailable".to_string(),
        };
        models.insert(name, Value::from(device));
    }
    Json(ServerMetadataResponse {
        name: "convoy",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec![
            "binary_tensor_data",
            "statistics",
            "model_configuration",
            "model_repository",
        ],
        device: DeviceInfo {
            requested: st.device_requested.clone(),
            cuda_available: st.cuda_available,
            ort_library: st.ort_library.clone(),
            models,
        },
    })
}

#[utoipa::path(get, path = "/v2/health/live",
    summary = "Liveness",
    tag = "health",
    responses((status = 200, description = "The process serves HTTP", body = LiveResponse,
        example = json!({"live": true})), AuthErrors))]
pub async fn live() -> Json<LiveResponse> {
    Json(LiveResponse { live: true })
}

#[utoipa::path(get, path = "/v2/health/ready",
    summary = "Readiness: every model loaded and not draining",
    tag = "health",
    responses(
        (status = 200, description = "Every model is loaded", body = ReadyResponse,
            example = json!({"ready": true})),
        (status = 503, description = "A model failed to load, or the server is draining",
            body = ReadyResponse, example = json!({"ready": false})),
        AuthErrors,
    ))]
pub async fn ready(State(st): State<AppState>) -> Response {
    let ready = !st.is_shutting_down() && st.repo.all_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ReadyResponse { ready })).into_response()
}

/// Finds a model by name (and version when given): 404 when unknown, 503 when it failed
/// to load.
fn lookup(st: &AppState, name: &str, version: Option<&str>) -> Result<Arc<Model>, ApiError> {
    let state = st.repo.get(name).ok_or_else(|| {
        let known: Vec<String> = st.repo.snapshot().into_iter().map(|(n, _)| n).collect();
        ApiError::NotFound(format!(
            "model {name:?} not found (models: {})",
            known.join(", ")
        ))
    })?;
    let config = match &state {
        ModelState::Ready(m) => &m.config,
        ModelState::Failed { config, .. } => config.as_ref(),
    };
    if let Some(v) = version {
        if v != config.version {
            return Err(ApiError::NotFound(format!(
                "model {name:?} has no version {v:?} (versions: {:?})",
                config.version
            )));
        }
    }
    match state {
        ModelState::Ready(m) => Ok(m),
        ModelState::Failed { .. } => Err(ApiError::Unavailable(format!(
            "model {name:?} failed to load and is not serving; see the server log"
        ))),
    }
}

fn tensor_metadata(specs: &[TensorSpec]) -> Vec<TensorMetadata> {
    specs
        .iter()
        .map(|s| TensorMetadata {
            name: s.name.clone(),
            datatype: s.datatype.as_str(),
            shape: std::iter::once(-1).chain(s.dims.iter().copied()).collect(),
        })
        .collect()
}

fn metadata(m: &Model) -> ModelMetadataResponse {
    // A pipeline model is seen from outside through its stages: BYTES in, FP32 out.
    let (inputs, outputs) = match &m.pipeline {
        Some(p) => {
            let sig = p.signature();
            let tensor = |name: &str, datatype, shape| TensorMetadata {
                name: name.to_string(),
                datatype,
                shape,
            };
            (
                vec![tensor(
                    sig.input,
                    sig.input_datatype,
                    match sig.input_width {
                        Some(w) => vec![-1, w as i64],
                        None => vec![-1],
                    },
                )],
                vec![tensor(sig.output, "FP32", vec![-1, sig.width as i64])],
            )
        }
        None => (
            tensor_metadata(&m.config.inputs),
            tensor_metadata(&m.config.outputs),
        ),
    };
    ModelMetadataResponse {
        name: m.config.name.clone(),
        versions: vec![m.config.version.clone()],
        platform: m.config.platform.clone(),
        inputs,
        outputs,
    }
}

error_kinds!(
    /// What the routes that look up one model can return: unknown model or version, or a
    /// model that failed to load.
    ModelErrors = ["unauthorized", "forbidden", "not_found", "unavailable"]
);

#[utoipa::path(get, path = "/v2/models/{model}",
    summary = "Model metadata",
    tag = "metadata",
    params(ModelPath),
    responses((status = 200, description = "Model metadata; `-1` marks a dynamic dimension",
        body = ModelMetadataResponse), ModelErrors))]
pub async fn model_metadata(
    State(st): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelMetadataResponse>, ApiError> {
    Ok(Json(metadata(&*lookup(&st, &model, None)?)))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}",
    summary = "Model metadata, one version",
    tag = "metadata",
    params(VersionPath),
    responses((status = 200, description = "Model metadata; `-1` marks a dynamic dimension",
        body = ModelMetadataResponse), ModelErrors))]
pub async fn version_metadata(
    State(st): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadataResponse>, ApiError> {
    Ok(Json(metadata(&*lookup(&st, &model, Some(&version))?)))
}

fn readiness(st: &AppState, model: &str, version: Option<&str>) -> Result<Response, ApiError> {
    match lookup(st, model, version) {
        Ok(_) if !st.is_shutting_down() => Ok(Json(ReadyResponse { ready: true }).into_response()),
        Ok(_) | Err(ApiError::Unavailable(_)) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ReadyResponse { ready: false }),
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

error_kinds!(
    /// Model readiness: a model that failed to load is a `{"ready": false}` 503, not an error.
    ReadyErrors = ["unauthorized", "forbidden", "not_found"]
);

#[utoipa::path(get, path = "/v2/models/{model}/ready",
    summary = "Model readiness",
    tag = "health",
    params(ModelPath),
    responses(
        (status = 200, description = "The model serves", body = ReadyResponse,
            example = json!({"ready": true})),
        (status = 503, description = "The model failed to load, or the server is draining",
            body = ReadyResponse, example = json!({"ready": false})),
        ReadyErrors,
    ))]
pub async fn model_ready(
    State(st): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    readiness(&st, &model, None)
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/ready",
    summary = "Model readiness, one version",
    tag = "health",
    params(VersionPath),
    responses(
        (status = 200, description = "The model serves", body = ReadyResponse,
            example = json!({"ready": true})),
        (status = 503, description = "The model failed to load, or the server is draining",
            body = ReadyResponse, example = json!({"ready": false})),
        ReadyErrors,
    ))]
pub async fn version_ready(
    State(st): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    readiness(&st, &model, Some(&version))
}

/// Triton's model configuration JSON (int64 fields as strings, as Triton writes them).
fn triton_config(m: &Model) -> Value {
    let c = &m.config;
    let tensors = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "data_type": s.datatype.triton_name(),
                    "dims": s.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect()
    };
    let kind = if matches!(m.device, crate::backend::Device::Cuda(_)) {
        "KIND_GPU"
    } else {
        "KIND_CPU"
    };
    let mut config = json!({
        "name": c.name,
        "platform": c.platform,
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": c.batching.max_batch_size,
        "input": tensors(&c.inputs),
        "output": tensors(&c.outputs),
        "instance_group": [{"name": c.name, "kind": kind, "count": m.instances}],
    });
    if c.batching.dynamic {
        config["dynamic_batching"] = json!({
            "preferred_batch_size": c.batching.preferred_batch_sizes,
            "max_queue_delay_microseconds": c.batching.max_queue_delay.as_micros().to_string(),
            "default_queue_policy": {"max_queue_size": c.batching.max_queue_rows},
        });
    }
    config
}

#[utoipa::path(get, path = "/v2/models/{model}/config",
    summary = "Model configuration (Triton's format)",
    tag = "metadata",
    params(ModelPath),
    responses((status = 200, description = "Triton's model configuration",
        body = ModelConfigResponse), ModelErrors))]
pub async fn model_config(
    State(st): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(triton_config(&*lookup(&st, &model, None)?)))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/config",
    summary = "Model configuration (Triton's format), one version",
    tag = "metadata",
    params(VersionPath),
    responses((status = 200, description = "Triton's model configuration",
        body = ModelConfigResponse), ModelErrors))]
pub async fn version_config(
    State(st): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(triton_config(&*lookup(&st, &model, Some(&version))?)))
}

/// One model's entry in Triton's statistics format, plus Convoy's own fields.
fn model_stats_json(m: &Model) -> Value {
    let s = m.batcher.stats().snapshot();
    let (company_share, company_samples) = m.batcher.company();
    // Input and output copies are timed inside compute_infer; their counts must still
    // equal its count (perf_analyzer refuses the statistics otherwise).
    let untimed = json!({"count": s.compute_infer.count, "ns": 0});
    let batch_stats: Vec<Value> = s
        .batch_sizes
        .iter()
        .map(|(size, d)| {
            json!({
                "batch_size": size,
                "compute_input": {"count": d.count, "ns": 0},
                "compute_infer": d,
                "compute_output": {"count": d.count, "ns": 0},
            })
        })
        .collect();
    json!({
        "name": m.config.name,
        "version": m.config.version,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": s.success,
            "fail": s.fail,
            "queue": s.queue,
            "compute_input": untimed,
            "compute_infer": s.compute_infer,
            "compute_output": untimed,
        },
        "batch_stats": batch_stats,
        "convoy": {
            "cancelled": s.cancelled,
            "queued_rows": m.batcher.queued_rows(),
            // The learned cost of a batch: fixed + per_unit × rows × elements per row.
            "batch_cost": m.batcher.cost(),
            // Of the requests that found a worker idle, the share another followed within
            // the fixed cost; below 0.5 an idle worker no longer waits for company.
            "company": {"share": company_share, "samples": company_samples},
            // shed_beyond_target: refusals, and the margin predictions are multiplied by.
            "shedding": m.batcher.shedding(),
        },
    })
}

#[utoipa::path(get, path = "/v2/models/{model}/stats",
    summary = "Model statistics (Triton's format)",
    tag = "statistics",
    params(ModelPath),
    responses((status = 200, description = "The model's statistics in Triton's format",
        body = ModelStatsResponse), ModelErrors))]
pub async fn model_stats(
    State(st): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup(&st, &model, None)?;
    Ok(Json(json!({"model_stats": [model_stats_json(&m)]})))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/stats",
    summary = "Model statistics (Triton's format), one version",
    tag = "statistics",
    params(VersionPath),
    responses((status = 200, description = "The model's statistics in Triton's format",
        body = ModelStatsResponse), ModelErrors))]
pub async fn version_stats(
    State(st): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup(&st, &model, Some(&version))?;
    Ok(Json(json!({"model_stats": [model_stats_json(&m)]})))
}

#[utoipa::path(get, path = "/v2/models/stats",
    summary = "Statistics of every model (Triton's format)",
    tag = "statistics",
    responses((status = 200, description = "Every serving model's statistics in Triton's \
        format", body = ModelStatsResponse), AuthErrors))]
pub async fn all_stats(State(st): State<AppState>) -> Json<Value> {
    let stats: Vec<Value> = st
        .repo
        .snapshot()
        .into_iter()
        .filter_map(|(_, s)| match s {
            ModelState::Ready(m) => Some(model_stats_json(&m)),
            ModelState::Failed { .. } => None,
        })
        .collect();
    Json(json!({"model_stats": stats}))
}

/// `POST /v2/repository/index`: every model on disk or loaded, with its state.
#[utoipa::path(post, path = "/v2/repository/index",
    summary = "Repository index: every model and its state",
    tag = "repository",
    responses((status = 200, description = "Every model on disk or loaded, with its state",
        body = Vec<RepositoryIndexEntry>), AuthErrors))]
pub async fn repository_index(
    State(st): State<AppState>,
) -> Json<Vec<crate::repository::IndexEntry>> {
    let repo = st.repo.clone();
    // Reads model.toml files: keep it off the async workers.
    Json(
        tokio::task::spawn_blocking(move || repo.index())
            .await
            .unwrap_or_default(),
    )
}

error_kinds!(
    /// Loading: not in the repository, a bad model.toml or a model ONNX Runtime cannot
    /// load, or the loading task failing.
    LoadErrors = ["unauthorized", "forbidden", "not_found", "unprocessable", "internal"]
);

/// `POST /v2/repository/models/{m}/load`: load, or reload with no request lost.
#[utoipa::path(post, path = "/v2/repository/models/{model}/load",
    summary = "Load or reload a model",
    tag = "repository",
    params(ModelPath),
    responses((status = 200, description = "Loaded (or reloaded) and serving", body = Empty),
        LoadErrors))]
pub async fn repository_load(
    State(st): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let repo = st.repo.clone();
    tokio::task::spawn_blocking(move || repo.load_model(&model))
        .await
        .map_err(|_| ApiError::Internal)??;
    Ok(Json(json!({})))
}

error_kinds!(
    /// Unloading: not loaded.
    UnloadErrors = ["unauthorized", "forbidden", "not_found"]
);

/// `POST /v2/repository/models/{m}/unload`: new requests get 404, queued ones finish.
#[utoipa::path(post, path = "/v2/repository/models/{model}/unload",
    summary = "Unload a model",
    tag = "repository",
    params(ModelPath),
    responses((status = 200, description = "Unloaded; queued requests still finish",
        body = Empty), UnloadErrors))]
pub async fn repository_unload(
    State(st): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.repo.unload_model(&model)?;
    Ok(Json(json!({})))
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

error_kinds!(
    /// Inference: every stage can refuse (body, model, queue, deadline, device).
    InferErrors = [
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
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until its batch started on the device"),
                ("x-convoy-compute-us" = u64, description = "Microseconds its batch ran on the device"),
                ("x-convoy-batch-rows" = u64, description = "Rows in the batch it ran in"),
                ("Inference-Header-Content-Length" = u64, description = "With binary outputs: \
                    bytes of JSON before the binary data"),
            ),
            content(
                (InferResponse = "application/json"),
                (Binary = "application/octet-stream"),
            )),
        InferErrors,
    ))]
pub async fn infer(
    State(st): State<AppState>,
    Path(model): Path<String>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_counted(st, model, None, id, headers, body).await
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
                ("x-convoy-queue-us" = u64, description = "Microseconds from admission until its batch started on the device"),
                ("x-convoy-compute-us" = u64, description = "Microseconds its batch ran on the device"),
                ("x-convoy-batch-rows" = u64, description = "Rows in the batch it ran in"),
                ("Inference-Header-Content-Length" = u64, description = "With binary outputs: \
                    bytes of JSON before the binary data"),
            ),
            content(
                (InferResponse = "application/json"),
                (Binary = "application/octet-stream"),
            )),
        InferErrors,
    ))]
pub async fn version_infer(
    State(st): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_counted(st, model, Some(version), id, headers, body).await
}

/// Decrements the in-flight gauge however the request ends (a client that hangs up
/// drops the handler's future).
struct InFlight(Arc<metrics::ModelMetrics>);

impl InFlight {
    fn enter(m: &Arc<metrics::ModelMetrics>) -> InFlight {
        m.in_flight.increment(1.0);
        InFlight(m.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

/// Runs one inference and records its outcome in metrics and the model's stats.
async fn infer_counted(
    st: AppState,
    model: String,
    version: Option<String>,
    request_id: Arc<str>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let known = st.repo.ready(&model);
    // Only served models get their own label value: cardinality stays bounded.
    let mm = match &known {
        Some(m) => m.batcher.metrics().clone(),
        None => metrics::unknown_model().clone(),
    };
    let _in_flight = InFlight::enter(&mm);
    let result = infer_inner(&st, &model, version.as_deref(), request_id, &headers, body).await;
    let elapsed = started.elapsed();
    match result {
        Ok(response) => {
            mm.outcome("success");
            mm.request.record(elapsed.as_secs_f64());
            if let Some(m) = known {
                m.batcher.stats().record_request(true, elapsed);
            }
            response
        }
        Err(e) => {
            mm.outcome(e.kind());
            if let (Some(m), true) = (known, e.status().is_server_error()) {
                m.batcher.stats().record_request(false, elapsed);
            }
            e.into_response()
        }
    }
}

/// Splits a body into its JSON part and the binary data after it.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(v) = headers.get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let n: usize = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "header {HEADER_LENGTH}: expected a byte count, got {v:?}"
            ))
        })?;
    if n > body.len() {
        return Err(ApiError::BadRequest(format!(
            "header {HEADER_LENGTH}: {n} exceeds the body's {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

fn flag(params: Option<&Map<String, Value>>, key: &str) -> Option<bool> {
    params.and_then(|p| p.get(key)).and_then(Value::as_bool)
}

async fn infer_inner(
    st: &AppState,
    model: &str,
    version: Option<&str>,
    request_id: Arc<str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    if st.is_shutting_down() {
        return Err(ApiError::Unavailable("server is shutting down".into()));
    }
    let m = lookup(st, model, version)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
            "request body exceeds the limit of {} bytes (--max-body-bytes)",
            st.max_body_bytes
        )),
        _ => ApiError::BadRequest(format!("request body: {e}")),
    })?;
    let (json_part, binary) = split_body(headers, &body)?;
    let request: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
    if m.pipeline.is_some() {
        let sched = super::tasks::task_schedule(
            &m,
            request.parameters.as_ref(),
            headers,
            request_id,
            started,
        )?;
        return super::tasks::v2_infer(st, &m, request, binary, &sched).await;
    }

    // Which outputs, and in which encoding: decided before queueing, so a bad name
    // costs no device time.
    let binary_default = flag(request.parameters.as_ref(), "binary_data_output").unwrap_or(false);
    let wanted: Vec<(usize, bool)> = match &request.outputs {
        None => (0..m.config.outputs.len())
            .map(|k| (k, binary_default))
            .collect(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let k = m
                    .config
                    .outputs
                    .iter()
                    .position(|s| s.name == o.name)
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            m.config.outputs.iter().map(|s| s.name.as_str()).collect();
                        ApiError::Unprocessable(format!(
                        "outputs[{i}].name: model {model:?} has no output {:?} (its outputs: {})",
                        o.name,
                        names.join(", ")
                    ))
                    })?;
                Ok((
                    k,
                    flag(o.parameters.as_ref(), "binary_data").unwrap_or(binary_default),
                ))
            })
            .collect::<Result<_, ApiError>>()?,
    };

    let valid = decode_inputs(
        model,
        request.inputs,
        &m.config.inputs,
        m.config.batching.max_batch_size,
        binary,
    )?;
    let (entry, rx) = Entry::new(valid.tensors, valid.rows, valid.shape_key);
    let mm = m.batcher.metrics();
    mm.preprocess.record(started.elapsed().as_secs_f64());
    let header_ms = headers.get(TIMEOUT_HEADER).and_then(|v| v.to_str().ok());
    let (deadline, priority) = schedule(
        request.parameters.as_ref(),
        header_ms,
        &m.config.batching,
        started,
    )?;
    let entry = entry
        .with_request_id(request_id)
        .with_schedule(deadline, priority);
    let mut reply = submit_and_wait(&m, entry, rx, deadline).await?;
    let post_started = Instant::now();

    // Move each output out at its last use; clone only for an output asked twice.
    let mut pool: Vec<Option<crate::tensor::Tensor>> = reply.outputs.drain(..).map(Some).collect();
    let mut selected = Vec::with_capacity(wanted.len());
    for (i, &(k, binary)) in wanted.iter().enumerate() {
        let used_again = wanted[i + 1..].iter().any(|&(j, _)| j == k);
        let tensor = if used_again {
            pool[k].clone()
        } else {
            pool[k].take()
        };
        selected.push(Selected {
            name: m.config.outputs[k].name.clone(),
            tensor: tensor.ok_or(ApiError::Internal)?,
            binary,
        });
    }
    let timing = [
        ("x-convoy-queue-us", reply.queue.as_micros() as u64),
        ("x-convoy-compute-us", reply.compute.as_micros() as u64),
        ("x-convoy-batch-rows", reply.batch_rows as u64),
    ];
    let response = encode::response(
        &m.config.name,
        &m.config.version,
        request.id,
        selected,
        &timing,
    );
    mm.postprocess.record(post_started.elapsed().as_secs_f64());
    tracing::debug!(
        model,
        rows = reply.batch_rows,
        queue_us = reply.queue.as_micros() as u64,
        compute_us = reply.compute.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "infer"
    );
    Ok(response)
}
