//! HTTP: `router(state)` and its handlers. HTTP types stop here.

pub mod auth;
pub mod bodies;
pub mod decode;
pub mod dto;
mod encode;
pub mod error;
pub mod openapi;
mod request_id;
pub mod schemas;
mod v1;
mod v2_admin;
mod v2_infer;
mod v2_models;

pub use request_id::RequestId;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{Error, ErrorKind};
use crate::service::Core;

/// What every handler can see.
#[derive(Clone)]
pub struct AppState {
    /// The one core every door calls.
    pub core: Arc<Core>,
    pub metrics: PrometheusHandle,
    /// What `/v2` says about the runtime.
    pub server: Arc<ServerInfo>,
    pub max_body_bytes: usize,
    /// Who may call what.
    pub auth: Arc<auth::AuthPolicy>,
    /// Origins allowed by CORS; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
}

/// The runtime as `GET /v2` describes it.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    /// The `--device` asked for.
    pub device_requested: String,
    /// The ONNX Runtime library loaded (or the backend's name).
    pub ort_library: String,
    pub cuda_available: bool,
}

/// The documented API: every handler on the path and method its `#[utoipa::path]`
/// gives, with the OpenAPI document collected from the same annotations.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(v2_models::server_metadata))
        .routes(routes!(v2_models::live))
        .routes(routes!(v2_models::ready))
        .routes(routes!(v2_admin::all_stats))
        .routes(routes!(v2_models::model_metadata))
        .routes(routes!(v2_models::model_ready))
        .routes(routes!(v2_models::model_config))
        .routes(routes!(v2_admin::model_stats))
        .routes(routes!(v2_infer::infer))
        .routes(routes!(v2_models::version_metadata))
        .routes(routes!(v2_models::version_ready))
        .routes(routes!(v2_models::version_config))
        .routes(routes!(v2_admin::version_stats))
        .routes(routes!(v2_infer::version_infer))
        .routes(routes!(v2_admin::repository_index))
        .routes(routes!(v2_admin::repository_load))
        .routes(routes!(v2_admin::repository_unload))
        .routes(routes!(v2_admin::metrics))
        .routes(routes!(v1::embeddings))
        .routes(routes!(v1::classify))
        .routes(routes!(v1::predict))
}

/// All routes: the API, Swagger UI at `/docs` and the document at `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let (api, spec) = api_routes().split_for_parts();
    api.route_layer(axum::middleware::from_fn(utf8_path))
        .merge(openapi::docs_routes(spec))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::layer,
        ))
        .layer(cors(&state.cors_origins))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// CORS for the configured origins only; none configured: the layer adds nothing.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let list: Vec<axum::http::HeaderValue> =
        origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("inference-header-content-length"),
            axum::http::HeaderName::from_static("x-request-id"),
        ])
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Error {
    Error::new(
        ErrorKind::MethodNotAllowed,
        format!("method {method} not allowed on {}", uri.path()),
    )
}

/// A path whose percent-escapes do not decode to UTF-8 names no model (names are UTF-8):
/// a JSON 404 like any unknown model, where axum's own path extractor would answer a
/// plain-text 400 that no route documents.
async fn utf8_path(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if percent_decodes_to_utf8(req.uri().path()) {
        next.run(req).await
    } else {
        Error::not_found(format!(
            "no model at {}: the path is not valid UTF-8 once percent-decoded",
            req.uri().path()
        ))
        .into_response()
    }
}

/// Whether `path`, with its `%XX` escapes decoded, is UTF-8 (a `%` not followed by two
/// hex digits stays as it is, as axum reads it).
fn percent_decodes_to_utf8(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                decoded.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

async fn not_found(uri: axum::http::Uri) -> Error {
    Error::not_found(format!("no route {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::percent_decodes_to_utf8;

    #[test]
    fn paths_are_checked_for_utf8_after_percent_decoding() {
        assert!(percent_decodes_to_utf8("/v2/models/mlp/infer"));
        assert!(percent_decodes_to_utf8("/v2/models/caf%C3%A9"));
        assert!(percent_decodes_to_utf8("/v2/models/100%"));
        assert!(percent_decodes_to_utf8("/v2/models/%zz"));
        assert!(!percent_decodes_to_utf8("/v2/models/%FF"));
        assert!(!percent_decodes_to_utf8("/v2/models/caf%C3"));
    }
}
