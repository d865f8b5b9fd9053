//! The OpenAPI document, Swagger UI at `/docs` and the spec at `/openapi.json`.
//!
//! Handlers carry `#[utoipa::path]` annotations and the router is built from them
//! (`utoipa_axum::routes!`), so a route is served on exactly the path and method its
//! documentation gives. Each handler declares the error kinds it can return with
//! [`error_kinds!`]; its error responses are made from those kinds and
//! their [`ErrorKind`]s' statuses, and a test checks every operation's statuses against the
//! declarations. `openapi/openapi.json` is this document, committed; `tests/openapi.rs`
//! fails when the two differ.

use std::collections::BTreeMap;

use axum::Router;
use serde_json::json;
use utoipa::openapi::header::Header;
use utoipa::openapi::response::Response;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use super::error::ErrorResponse;
use crate::error::ErrorKind;

/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";
/// Where the document is served as JSON.
pub const SPEC_PATH: &str = "/openapi.json";

/// Top-level fields of the document; the paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Convoy",
        description = "HTTP/JSON model server: the KServe v2 (Open Inference) protocol with \
Triton's statistics, model-configuration and binary-tensor extensions, over a dynamic \
batcher and ONNX Runtime. Errors are `{\"error\": \"...\"}`; 400 means the body is not a \
well-formed request, 422 a well-formed request that does not fit the model.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorResponse)),
    modifiers(&BearerAuth),
    // A key is needed only where the server is started with API keys: `{}` (none) is
    // a valid alternative.
    security((), ("bearer" = [])),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "metadata", description = "Server and model metadata, Triton's model configuration"),
        (name = "inference", description = "Inference on a model"),
        (name = "statistics", description = "Triton's statistics format and Prometheus metrics"),
        (name = "repository", description = "Model control: Triton's model repository extension"),
        (name = "tasks", description = "Task routes over the same batching: embeddings, classification"),
    )
)]
pub struct ApiDoc;

/// The bearer API keys of `--api-key` (`src/http/auth.rs`), as a security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key given to `convoy serve --api-key` (or `--api-key-file`); \
                 needed only when the server has keys.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Declares the error kinds ([`ErrorKind`]s) a group of handlers can return, as
/// a type that their `#[utoipa::path]` lists in `responses(...)` and that the status test
/// reads back through its `KINDS`.
macro_rules! error_kinds {
    ($(#[$doc:meta])* $name:ident = [$($kind:ident),* $(,)?]) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            pub const KINDS: &'static [$crate::error::ErrorKind] =
                &[$($crate::error::ErrorKind::$kind),*];
        }

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::http::openapi::error_responses(Self::KINDS)
            }
        }
    };
}
pub(crate) use error_kinds;

/// What a client should read into each kind's status, for the document, and an example
/// message. The examples of the core's own refusals are made by the code that makes the
/// real ones, so they cannot drift.
fn kind_description(kind: ErrorKind) -> (&'static str, String) {
    use crate::batching::SchedulerError;
    let real = |e: SchedulerError| crate::error::Error::from(e).message;
    match kind {
        ErrorKind::BadRequest => (
            "The body is not a well-formed request: bad JSON, wrong JSON types, `data` absent, \
             `data` together with `binary_data_size`, binary lengths that do not add up.",
            "invalid request body: missing field `inputs` at line 1 column 2".into(),
        ),
        ErrorKind::NotFound => (
            "No such model or version.",
            crate::service::model_not_found("resnet").message,
        ),
        ErrorKind::Unauthorized => (
            "API keys are configured and the request carries none: send `Authorization: Bearer <key>`.",
            "authorization: this server needs an API key: send `Authorization: Bearer <key>`".into(),
        ),
        ErrorKind::Forbidden => (
            "The request's API key is not one of the configured keys.",
            "authorization: the API key is not valid".into(),
        ),
        ErrorKind::MethodNotAllowed => (
            "The route exists, the method does not; `Allow` lists the methods that do.",
            "method POST not allowed on /v2".into(),
        ),
        ErrorKind::PayloadTooLarge => (
            "The body exceeds `--max-body-bytes`, or an image or text exceeds its model's limit.",
            "request body exceeds the limit of 33554432 bytes (--max-body-bytes)".into(),
        ),
        ErrorKind::Unprocessable => (
            "Well-formed, but not what the model takes: unknown input or output name, missing \
             input, wrong datatype, shape or data length, `data` nested other than the shape, \
             more rows than `max_batch_size`, an image that is not a whole PNG or JPEG. \
             The message names the field, the expected and the given value.",
            "inputs[0].shape: input \"input\" expects [-1, 10] (batch first), got [1, 3] \
             (dimension 1 should be 10)"
                .into(),
        ),
        ErrorKind::TooManyRequests => (
            "The model's queue is full, or (with `shed_beyond_target`) the request is \
             predicted to finish past the latency target; retry after `Retry-After` seconds.",
            real(SchedulerError::QueueFull {
                model: "mlp".into(),
                queued: 4096,
                limit: 4096,
                unit: "rows",
                retry_after: std::time::Duration::from_secs(1),
            }),
        ),
        ErrorKind::Internal => (
            "A batch failed on the device; the detail is in the server log, not here.",
            crate::error::Error::internal().message,
        ),
        ErrorKind::Unavailable => (
            "The model failed to load, or the server is draining.",
            "server is shutting down".into(),
        ),
        ErrorKind::Timeout => (
            "The request's deadline passed before it ran.",
            real(SchedulerError::Expired {
                model: "mlp".into(),
                waited_ms: 100,
            }),
        ),
    }
}

/// The error responses of `kinds`: status from the kind, body [`ErrorResponse`], and
/// `Retry-After` on 429. Kinds sharing a status share a response.
pub fn error_responses(kinds: &[ErrorKind]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ErrorKind>> = BTreeMap::new();
    for &kind in kinds {
        by_status.entry(kind.status()).or_default().push(kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let descriptions: Vec<&str> = kinds.iter().map(|&k| kind_description(k).0).collect();
            let example = kind_description(kinds[0]).1;
            let content = Content::builder()
                .schema(Some(Ref::from_schema_name(ErrorResponse::name())))
                .example(Some(json!({ "error": example })))
                .build();
            let mut response = Response::builder()
                .description(descriptions.join(" "))
                .content("application/json", content);
            if kinds.contains(&ErrorKind::Unauthorized) {
                response = response.header(
                    "WWW-Authenticate",
                    Header::builder()
                        .schema(String::schema())
                        .description(Some("`Bearer`"))
                        .build(),
                );
            }
            if kinds.contains(&ErrorKind::TooManyRequests) {
                response = response.header(
                    "Retry-After",
                    Header::builder()
                        .schema(u64::schema())
                        .description(Some(
                            "Always present: seconds to wait, derived from the measured \
                             device time per row of the queued work (at least 1).",
                        ))
                        .build(),
                );
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// The whole document, without a running server (`convoy openapi` prints it).
pub fn document() -> OpenApi {
    super::api_routes().into_openapi()
}

/// [`document`] as the pretty JSON committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the OpenAPI document always serializes");
    text.push('\n');
    text
}

/// Swagger UI at [`DOCS_PATH`] and the document at [`SPEC_PATH`], served from the binary
/// (the UI's files are vendored into the crate at build time; nothing is downloaded).
pub fn docs_routes<S: Clone + Send + Sync + 'static>(spec: OpenApi) -> Router<S> {
    SwaggerUi::new(DOCS_PATH).url(SPEC_PATH, spec).into()
}

/// `{model}` in a path.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// Model name (its folder in the model repository).
    #[param(example = "mlp")]
    pub model: String,
}

/// `{model}` in the path of a classification.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Path)]
pub struct ClassifierPath {
    /// An image classification model (the shipped `digits` or `efficientnet_lite0`).
    #[param(example = "digits")]
    pub model: String,
}

/// `{model}` in the path of a tabular prediction.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Path)]
pub struct TabularPath {
    /// A tabular model (the shipped `diabetes`).
    #[param(example = "diabetes")]
    pub model: String,
}

/// `{model}` and `{version}` in a path.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// Model name (its folder in the model repository).
    #[param(example = "mlp")]
    pub model: String,
    /// Model version (the one a model.toml declares; `1` by default).
    #[param(example = "1")]
    pub version: String,
}

/// The request header the task routes read.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct TimeoutHeader {
    /// The request's deadline in milliseconds: still queued then, it is answered 504.
    #[param(
        rename = "x-convoy-timeout-ms",
        minimum = 1,
        nullable = false,
        format = "uint64"
    )]
    timeout_ms: Option<u64>,
}

/// The request headers `infer` reads.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct InferHeaders {
    /// Triton's binary tensor extension: the body is this many bytes of JSON, then the
    /// inputs' raw bytes (`parameters.binary_data_size` each, in order).
    #[param(
        rename = "Inference-Header-Content-Length",
        nullable = false,
        format = "uint64"
    )]
    inference_header_content_length: Option<u64>,
    /// The request's deadline in milliseconds (`parameters.timeout`, in microseconds,
    /// takes precedence): still queued then, it is answered 504.
    #[param(
        rename = "x-convoy-timeout-ms",
        minimum = 1,
        nullable = false,
        format = "uint64"
    )]
    timeout_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::v2_admin::{IndexErrors, LoadErrors, UnloadErrors};
    use crate::http::v2_infer::InferErrors;
    use crate::http::v2_models::{AuthErrors, ModelErrors, ReadyErrors};

    /// Per operation (its handler's name): the success statuses, and the error kinds the
    /// handler declares next to itself (the same lists its annotation documents).
    const ROUTES: &[(&str, &[u16], &[ErrorKind])] = &[
        ("server_metadata", &[200], AuthErrors::KINDS),
        ("live", &[200], AuthErrors::KINDS),
        ("ready", &[200, 503], AuthErrors::KINDS),
        ("all_stats", &[200], AuthErrors::KINDS),
        ("metrics", &[200], AuthErrors::KINDS),
        ("model_metadata", &[200], ModelErrors::KINDS),
        ("version_metadata", &[200], ModelErrors::KINDS),
        ("model_config", &[200], ModelErrors::KINDS),
        ("version_config", &[200], ModelErrors::KINDS),
        ("model_stats", &[200], ModelErrors::KINDS),
        ("version_stats", &[200], ModelErrors::KINDS),
        ("model_ready", &[200, 503], ReadyErrors::KINDS),
        ("version_ready", &[200, 503], ReadyErrors::KINDS),
        ("infer", &[200], InferErrors::KINDS),
        ("version_infer", &[200], InferErrors::KINDS),
        ("repository_index", &[200], IndexErrors::KINDS),
        ("repository_load", &[200], LoadErrors::KINDS),
        ("repository_unload", &[200], UnloadErrors::KINDS),
        ("embeddings", &[200], InferErrors::KINDS),
        ("classify", &[200], InferErrors::KINDS),
        ("predict", &[200], InferErrors::KINDS),
    ];

    #[test]
    fn documented_statuses_are_exactly_success_and_declared_error_kinds() {
        let doc = document();
        let mut seen = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let id = op.operation_id.clone().unwrap_or_default();
                let (_, success, kinds) = ROUTES
                    .iter()
                    .find(|(name, _, _)| *name == id)
                    .unwrap_or_else(|| panic!("{method} {path} ({id}) is not in ROUTES"));
                assert!(seen.insert(id.clone()), "{id} documented twice");
                let mut errors = BTreeSet::new();
                for kind in *kinds {
                    errors.insert(kind.status());
                }
                let success: BTreeSet<u16> = success.iter().copied().collect();
                assert!(
                    success.is_disjoint(&errors),
                    "{id}: a success status is also an error status"
                );
                let want: BTreeSet<u16> = success.union(&errors).copied().collect();
                let got: BTreeSet<u16> = op
                    .responses
                    .responses
                    .keys()
                    .map(|k| k.parse().expect("numeric status"))
                    .collect();
                assert_eq!(got, want, "{method} {path} ({id}): documented statuses");
                for status in &errors {
                    let RefOr::T(r) = &op.responses.responses[&status.to_string()] else {
                        panic!("{id} {status}: inline response expected")
                    };
                    let body = serde_json::to_value(&r.content["application/json"]).unwrap();
                    assert_eq!(
                        body["schema"]["$ref"], "#/components/schemas/ErrorResponse",
                        "{id} {status}"
                    );
                    assert_eq!(r.headers.contains_key("Retry-After"), *status == 429);
                    assert_eq!(r.headers.contains_key("WWW-Authenticate"), *status == 401);
                }
            }
        }
        let declared: BTreeSet<String> = ROUTES.iter().map(|r| r.0.to_string()).collect();
        assert_eq!(seen, declared, "ROUTES lists an operation the router lacks");
    }

    #[test]
    fn error_responses_follow_the_kinds() {
        use ErrorKind::*;
        let r = error_responses(&[Unprocessable, BadRequest, TooManyRequests]);
        let statuses: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(statuses, ["400", "422", "429"]);
        let RefOr::T(too_many) = &r["429"] else {
            panic!("inline response expected")
        };
        assert!(too_many.headers.contains_key("Retry-After"));
        for kind in ErrorKind::ALL {
            assert!(
                !kind_description(kind).0.is_empty(),
                "{kind:?} has no description"
            );
        }
    }
}
