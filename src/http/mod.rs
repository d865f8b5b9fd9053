//! HTTP: `router(state)` and its handlers. HTTP types stop here.

pub mod decode;
pub mod dto;
mod encode;
mod request_id;
mod v2;

pub use request_id::RequestId;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::error::ApiError;
use crate::repository::Repository;

/// What every handler can see.
#[derive(Clone)]
pub struct AppState {
    pub repo: Arc<Repository>,
    pub metrics: PrometheusHandle,
    /// Set when draining starts: readiness turns false, new requests get 503.
    pub shutting_down: Arc<AtomicBool>,
    /// The `--device` asked for, for `/v2`.
    pub device_requested: String,
    pub ort_library: String,
    pub cuda_available: bool,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/models/stats", get(v2::all_stats))
        .route("/v2/models/{model}", get(v2::model_metadata))
        .route("/v2/models/{model}/ready", get(v2::model_ready))
        .route("/v2/models/{model}/config", get(v2::model_config))
        .route("/v2/models/{model}/stats", get(v2::model_stats))
        .route("/v2/models/{model}/infer", post(v2::infer))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(v2::version_metadata),
        )
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(v2::version_ready),
        )
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(v2::version_config),
        )
        .route(
            "/v2/models/{model}/versions/{version}/stats",
            get(v2::version_stats),
        )
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(v2::version_infer),
        )
        .route("/v2/repository/index", post(v2::repository_index))
        .route(
            "/v2/repository/models/{model}/load",
            post(v2::repository_load),
        )
        .route(
            "/v2/repository/models/{model}/unload",
            post(v2::repository_unload),
        )
        .route("/metrics", get(v2::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}
