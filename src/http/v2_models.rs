//! Server and model metadata, health, and Triton's model configuration. Metadata and
//! configuration both describe the tensors a model serves (`Model::served`), so a client
//! that builds its requests from either gets the same answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::bodies::{
    ConfigTensor, DynamicBatching, InstanceGroup, LatestVersions, ModelConfigResponse, QueuePolicy,
    VersionPolicy,
};
use super::dto::*;
use super::openapi::{error_kinds, ModelPath, VersionPath};
use super::AppState;
use crate::backend::Device;
use crate::error::{ErrorKind, Result};
use crate::repository::{Model, ModelState};
use crate::tensor::ServedSpec;

error_kinds!(
    /// With API keys configured (`--api-key`), the auth layer refuses a request without a
    /// key (401) or with a wrong one (403): on every route but the API description, and on
    /// health and metrics only with `--auth-health` / `--auth-metrics`.
    AuthErrors = [Unauthorized, Forbidden]
);

error_kinds!(
    /// What the routes that look up one model can return: unknown model or version, or a
    /// model that failed to load.
    ModelErrors = [Unauthorized, Forbidden, NotFound, Unavailable]
);

error_kinds!(
    /// Model readiness: a model that failed to load is a `{"ready": false}` 503, not an error.
    ReadyErrors = [Unauthorized, Forbidden, NotFound]
);

#[utoipa::path(get, path = "/v2",
    summary = "Server metadata",
    tag = "metadata",
    responses((status = 200, description = "Server metadata, with the device each model \
        really runs on", body = ServerMetadataResponse), AuthErrors))]
pub async fn server_metadata(State(st): State<AppState>) -> Json<ServerMetadataResponse> {
    let models = st
        .core
        .repository()
        .snapshot()
        .into_iter()
        .map(|(name, state)| {
            let device = match state {
                ModelState::Ready(m) => m.device.to_string(),
                ModelState::Failed { .. } => "unavailable".to_string(),
            };
            (name, device)
        })
        .collect();
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
            requested: st.server.device_requested.clone(),
            cuda_available: st.server.cuda_available,
            ort_library: st.server.ort_library.clone(),
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
    ready_response(!st.core.is_draining() && st.core.repository().all_ready())
}

fn ready_response(ready: bool) -> Response {
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ReadyResponse { ready })).into_response()
}

fn tensor_metadata(specs: &[ServedSpec]) -> Vec<TensorMetadata> {
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
    let served = &m.served;
    ModelMetadataResponse {
        name: m.config.name.clone(),
        versions: vec![m.config.version.clone()],
        platform: m.config.platform.clone(),
        inputs: tensor_metadata(&served.inputs),
        outputs: tensor_metadata(&served.outputs),
    }
}

#[utoipa::path(get, path = "/v2/models/{model}",
    summary = "Model metadata",
    tag = "metadata",
    params(ModelPath),
    responses((status = 200, description = "Model metadata; `-1` marks a dynamic dimension",
        body = ModelMetadataResponse), ModelErrors))]
pub async fn model_metadata(
    State(st): State<AppState>,
    Path(p): Path<ModelPath>,
) -> Result<Json<ModelMetadataResponse>> {
    Ok(Json(metadata(&*st.core.model(&p.model, None)?)))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}",
    summary = "Model metadata, one version",
    tag = "metadata",
    params(VersionPath),
    responses((status = 200, description = "Model metadata; `-1` marks a dynamic dimension",
        body = ModelMetadataResponse), ModelErrors))]
pub async fn version_metadata(
    State(st): State<AppState>,
    Path(p): Path<VersionPath>,
) -> Result<Json<ModelMetadataResponse>> {
    Ok(Json(metadata(&*st.core.model(&p.model, Some(&p.version))?)))
}

fn readiness(st: &AppState, model: &str, version: Option<&str>) -> Result<Response> {
    match st.core.model(model, version) {
        Ok(_) => Ok(ready_response(!st.core.is_draining())),
        Err(e) if e.kind == ErrorKind::Unavailable => Ok(ready_response(false)),
        Err(e) => Err(e),
    }
}

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
pub async fn model_ready(State(st): State<AppState>, Path(p): Path<ModelPath>) -> Result<Response> {
    readiness(&st, &p.model, None)
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
    Path(p): Path<VersionPath>,
) -> Result<Response> {
    readiness(&st, &p.model, Some(&p.version))
}

/// Triton's model configuration (int64 fields as strings, as Triton writes them).
fn triton_config(m: &Model) -> ModelConfigResponse {
    let c = &m.config;
    let served = &m.served;
    let tensors = |specs: &[ServedSpec]| -> Vec<ConfigTensor> {
        specs
            .iter()
            .map(|s| ConfigTensor {
                name: s.name.clone(),
                data_type: s.datatype.triton_name(),
                dims: s.dims.iter().map(|d| d.to_string()).collect(),
            })
            .collect()
    };
    let kind = match m.device {
        Device::Cuda(_) => "KIND_GPU",
        _ => "KIND_CPU",
    };
    let b = &c.batching;
    ModelConfigResponse {
        name: c.name.clone(),
        platform: c.platform.clone(),
        backend: "onnxruntime",
        version_policy: VersionPolicy {
            latest: LatestVersions { num_versions: 1 },
        },
        max_batch_size: b.max_batch_size as u64,
        input: tensors(&served.inputs),
        output: tensors(&served.outputs),
        instance_group: vec![InstanceGroup {
            name: c.name.clone(),
            kind,
            count: m.instances as u64,
        }],
        dynamic_batching: b.dynamic.then(|| DynamicBatching {
            preferred_batch_size: b.preferred_batch_sizes.iter().map(|&n| n as u64).collect(),
            max_queue_delay_microseconds: b.max_queue_delay.as_micros().to_string(),
            default_queue_policy: QueuePolicy {
                max_queue_size: b.max_queue_rows as u64,
            },
        }),
    }
}

#[utoipa::path(get, path = "/v2/models/{model}/config",
    summary = "Model configuration (Triton's format)",
    tag = "metadata",
    params(ModelPath),
    responses((status = 200, description = "Triton's model configuration",
        body = ModelConfigResponse), ModelErrors))]
pub async fn model_config(
    State(st): State<AppState>,
    Path(p): Path<ModelPath>,
) -> Result<Json<ModelConfigResponse>> {
    Ok(Json(triton_config(&*st.core.model(&p.model, None)?)))
}

#[utoipa::path(get, path = "/v2/models/{model}/versions/{version}/config",
    summary = "Model configuration (Triton's format), one version",
    tag = "metadata",
    params(VersionPath),
    responses((status = 200, description = "Triton's model configuration",
        body = ModelConfigResponse), ModelErrors))]
pub async fn version_config(
    State(st): State<AppState>,
    Path(p): Path<VersionPath>,
) -> Result<Json<ModelConfigResponse>> {
    Ok(Json(triton_config(
        &*st.core.model(&p.model, Some(&p.version))?,
    )))
}
