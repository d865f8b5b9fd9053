//! The OpenAPI document, Swagger UI at `/docs` and the spec at `/openapi.json`.
//!
//! Handlers carry `#[utoipa::path]` annotations and the router is built from them
//! (`utoipa_axum::routes!`), so a route is served on exactly the path and method its
//! documentation gives. Each handler declares the error kinds it can return with
//! [`error_kinds!`]; its error responses are made from those kinds and
//! [`STATUS_TABLE`], and a test checks every operation's statuses against the
//! declarations. `openapi/openapi.json` is this document, committed; `tests/openapi.rs`
//! fails when the two differ.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Router;
use serde_json::json;
use utoipa::openapi::header::Header;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{AnyOf, Array, Object, Schema, SchemaType, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ErrorResponse, STATUS_TABLE};
use crate::tensor::DataType;

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

/// Declares the error kinds (rows of [`STATUS_TABLE`]) a group of handlers can return, as
/// a type that their `#[utoipa::path]` lists in `responses(...)` and that the status test
/// reads back through its `KINDS`.
macro_rules! error_kinds {
    ($(#[$doc:meta])* $name:ident = [$($kind:literal),* $(,)?]) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            pub const KINDS: &'static [&'static str] = &[$($kind),*];
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

/// What a client should read into each kind's status, for the document.
fn kind_description(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "bad_request" => (
            "The body is not a well-formed request: bad JSON, wrong JSON types, `data` absent, \
             binary lengths that do not add up.",
            "invalid request body: missing field `inputs` at line 1 column 2",
        ),
        "not_found" => (
            "No such model or version.",
            "model \"resnet\" not found (models: mlp)",
        ),
        "unauthorized" => (
            "API keys are configured and the request carries none: send `Authorization: Bearer <key>`.",
            "authorization: this server needs an API key: send `Authorization: Bearer <key>`",
        ),
        "forbidden" => (
            "The request's API key is not one of the configured keys.",
            "authorization: the API key is not valid",
        ),
        "method_not_allowed" => (
            "The route exists, the method does not; `Allow` lists the methods that do.",
            "method POST not allowed on /v2 (allowed: GET,HEAD)",
        ),
        "payload_too_large" => (
            "The body exceeds `--max-body-bytes`.",
            "request body exceeds the limit of 33554432 bytes (--max-body-bytes)",
        ),
        "unprocessable" => (
            "Well-formed, but not what the model takes: unknown input or output name, missing \
             input, wrong datatype, shape or data length, more rows than `max_batch_size`. \
             The message names the field, the expected and the given value.",
            "inputs[0].shape: input \"input\" expects [-1, 10] (batch first), got [1, 3] \
             (dimension 1 should be 10)",
        ),
        "too_many_requests" => (
            "The model's queue is full; retry after `Retry-After` seconds.",
            "model \"mlp\" queue is full (4096 rows queued, limit 4096)",
        ),
        "internal" => (
            "A batch failed on the device; the detail is in the server log, not here.",
            "internal error; see the server log",
        ),
        "unavailable" => (
            "The model failed to load, or the server is draining.",
            "server is shutting down",
        ),
        "timeout" => (
            "The request's deadline passed before it ran.",
            "deadline passed while queued",
        ),
        _ => ("", ""),
    }
}

/// The error responses of `kinds`: status from [`STATUS_TABLE`], body
/// [`ErrorResponse`], and `Retry-After` on 429. Kinds sharing a status share a response.
pub fn error_responses(kinds: &[&str]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for kind in kinds {
        let status =
            status_of(kind).unwrap_or_else(|| panic!("error kind {kind:?} is not in STATUS_TABLE"));
        by_status.entry(status).or_default().push(kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let descriptions: Vec<&str> = kinds.iter().map(|k| kind_description(k).0).collect();
            let example = kind_description(kinds[0]).1;
            let content = Content::builder()
                .schema(Some(Ref::from_schema_name(ErrorResponse::name())))
                .example(Some(json!({ "error": example })))
                .build();
            let mut response = Response::builder()
                .description(descriptions.join(" "))
                .content("application/json", content);
            if kinds.contains(&"unauthorized") {
                response = response.header(
                    "WWW-Authenticate",
                    Header::builder()
                        .schema(String::schema())
                        .description(Some("`Bearer`"))
                        .build(),
                );
            }
            if kinds.contains(&"too_many_requests") {
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

/// The status of an error kind, from [`STATUS_TABLE`].
pub fn status_of(kind: &str) -> Option<u16> {
    STATUS_TABLE
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| s.as_u16())
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
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ModelPath {
    /// Model name (its folder in the model repository).
    #[param(example = "mlp")]
    model: String,
}

/// `{model}` in the path of a classification.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ClassifierPath {
    /// An image classification model (the shipped `digits` or `efficientnet_lite0`).
    #[param(example = "digits")]
    model: String,
}

/// `{model}` in the path of a tabular prediction.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct TabularPath {
    /// A tabular model (the shipped `diabetes`).
    #[param(example = "diabetes")]
    model: String,
}

/// `{model}` and `{version}` in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct VersionPath {
    /// Model name (its folder in the model repository).
    #[param(example = "mlp")]
    model: String,
    /// Model version (the one a model.toml declares; `1` by default).
    #[param(example = "1")]
    version: String,
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

// ---- Schemas of values that have no Rust type of their own ----

fn typed(t: Type) -> Object {
    Object::with_type(t)
}

/// A tensor element type the server serves: the names in [`DataType::ALL`].
pub struct Datatype;

impl PartialSchema for Datatype {
    fn schema() -> RefOr<Schema> {
        Object::builder()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(
                "Tensor element type. `BYTES` only for the input of a pipeline model (text \
                 or image models: `data` holds texts, or base64-encoded images).",
            ))
            .enum_values(Some(
                DataType::ALL
                    .iter()
                    .map(|d| d.as_str())
                    .chain(std::iter::once("BYTES")),
            ))
            .into()
    }
}

impl ToSchema for Datatype {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Datatype")
    }
}

/// An input tensor's `data`: row-major values, flat or nested by the shape.
pub struct InputValues;

impl PartialSchema for InputValues {
    fn schema() -> RefOr<Schema> {
        // Nesting is spelled out in words, not as a recursive schema: client generators
        // (openapi-python-client) cannot follow a recursive array.
        let nested = Array::builder()
            .items(Object::builder().schema_type(SchemaType::AnyValue))
            .description(Some(
                "A nested row: arrays of the same values, nested by the shape.",
            ));
        let element = AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Boolean))
            .item(typed(Type::String))
            .item(nested);
        Array::builder()
            .items(element)
            .description(Some(
                "Row-major values, flat (`[1, 2, 3, 4]`) or nested by the shape \
                 (`[[1, 2], [3, 4]]`, any depth up to 32): numbers for numeric datatypes, \
                 `true`/`false` for BOOL, strings for BYTES (texts, or base64 images). \
                 Their count must equal the product of `shape`.",
            ))
            .examples([json!([1.0, 2.0, 3.0, 4.0]), json!([[1.0, 2.0], [3.0, 4.0]])])
            .into()
    }
}

impl ToSchema for InputValues {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("InputValues")
    }
}

/// An output tensor's `data`: always flat, row-major.
pub struct OutputValues;

impl PartialSchema for OutputValues {
    fn schema() -> RefOr<Schema> {
        let element = AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Boolean))
            .item(typed(Type::Null));
        Array::builder()
            .items(element)
            .description(Some(
                "Flat row-major values (shape gives the layout): numbers, or `true`/`false` \
                 for BOOL. A NaN or infinite float, which JSON cannot carry, is `null`.",
            ))
            .examples([json!([202.71085])])
            .into()
    }
}

impl ToSchema for OutputValues {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OutputValues")
    }
}

/// A number, or `null` for a NaN or infinite value (JSON has no spelling for them).
pub struct NumberOrNull;

impl PartialSchema for NumberOrNull {
    fn schema() -> RefOr<Schema> {
        // anyOf rather than `type: [number, null]`: schemathesis 4.32 cannot analyse a
        // type list as array items.
        AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Null))
            .into()
    }
}

impl ToSchema for NumberOrNull {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("NumberOrNull")
    }
}

/// A body of raw bytes (the binary tensor extension).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        Object::builder()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .description(Some("Raw bytes; the operation says what they hold."))
            .into()
    }
}

impl ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

// ---- Bodies that handlers build with `json!` (Triton's formats). These types only
// ---- describe them; tests/openapi.rs checks live responses against the document.

/// A count and the total nanoseconds spent on it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatDuration {
    count: u64,
    ns: u64,
}

/// Per-request outcome and time, as Triton reports them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InferStatistics {
    /// Successful requests, and their total time end to end.
    success: StatDuration,
    /// Failed requests (server-side failures).
    fail: StatDuration,
    /// Time spent queued.
    queue: StatDuration,
    compute_input: StatDuration,
    /// Device time.
    compute_infer: StatDuration,
    compute_output: StatDuration,
}

/// Executions of one batch size.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchStatistics {
    batch_size: u64,
    compute_input: StatDuration,
    compute_infer: StatDuration,
    compute_output: StatDuration,
}

/// The learned cost of a batch: `fixed_seconds + per_unit_seconds × rows × elements per
/// row`. `null` fields: not a finite number.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchCost {
    fixed_seconds: Option<f64>,
    per_unit_seconds: Option<f64>,
    /// Batches the fit has seen.
    samples: u64,
}

/// Convoy's own counters, next to Triton's.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConvoyStatistics {
    /// Requests dropped at batch time because their client had hung up.
    cancelled: u64,
    /// Rows waiting in the model's queue now.
    queued_rows: u64,
    /// `null` until enough batches have run to fit it.
    batch_cost: Option<BatchCost>,
    company: Company,
    shedding: Shedding,
}

/// Admission against the latency target (`shed_beyond_target`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Shedding {
    /// Requests refused (429) as predicted to finish past the target.
    shed: u64,
    /// What predictions are multiplied by before the check, steered online so that 99 %
    /// of admitted requests finish inside the estimate they were admitted on (1 before
    /// any).
    margin: f64,
    /// Admitted requests the margin has learned from.
    samples: u64,
}

/// Whether an idle device worker waits for company (latency-target window): of the
/// requests that found a worker idle, the share that another request of their shape
/// followed within the batch's learned fixed cost (exponentially weighted, 1 before
/// any). Below 0.5 an idle worker dispatches at once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Company {
    share: f64,
    /// Requests that found a worker idle, counted so far.
    samples: u64,
}

/// One model's statistics in Triton's format.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelStatistics {
    name: String,
    version: String,
    /// Rows inferred.
    inference_count: u64,
    /// Batches executed.
    execution_count: u64,
    inference_stats: InferStatistics,
    batch_stats: Vec<BatchStatistics>,
    convoy: ConvoyStatistics,
}

/// `GET /v2/models/stats`, `GET /v2/models/{model}/stats`.
#[derive(ToSchema)]
#[schema(example = json!({"model_stats": [{"name": "mlp", "version": "1",
    "inference_count": 16, "execution_count": 1,
    "inference_stats": {"success": {"count": 1, "ns": 412000}, "fail": {"count": 0, "ns": 0},
        "queue": {"count": 1, "ns": 61000}, "compute_input": {"count": 1, "ns": 0},
        "compute_infer": {"count": 1, "ns": 230000}, "compute_output": {"count": 1, "ns": 0}},
    "batch_stats": [{"batch_size": 16, "compute_input": {"count": 1, "ns": 0},
        "compute_infer": {"count": 1, "ns": 230000}, "compute_output": {"count": 1, "ns": 0}}],
    "convoy": {"cancelled": 0, "queued_rows": 0, "batch_cost": null,
        "company": {"share": 1.0, "samples": 0},
        "shedding": {"shed": 0, "margin": 1.0, "samples": 0}}}]}))]
#[allow(dead_code)]
pub struct ModelStatsResponse {
    model_stats: Vec<ModelStatistics>,
}

/// An input or output in Triton's model configuration.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConfigTensor {
    name: String,
    /// `TYPE_` and the datatype, e.g. `TYPE_FP32`.
    data_type: String,
    /// Dimensions without the batch dimension, as strings (Triton's int64 encoding);
    /// `-1` is dynamic.
    dims: Vec<String>,
}

/// Device workers in Triton's model configuration.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InstanceGroup {
    name: String,
    /// `KIND_CPU` or `KIND_GPU`.
    kind: String,
    count: u64,
}

/// Queue policy in Triton's model configuration.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct QueuePolicy {
    /// Rows that may wait; beyond: 429.
    max_queue_size: u64,
}

/// Dynamic batching settings in Triton's model configuration.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DynamicBatching {
    preferred_batch_size: Vec<u64>,
    /// Microseconds, as a string (Triton's int64 encoding).
    max_queue_delay_microseconds: String,
    default_queue_policy: QueuePolicy,
}

/// `GET /v2/models/{model}/config`: Triton's model configuration JSON.
#[derive(ToSchema)]
#[schema(example = json!({"name": "mlp", "platform": "onnxruntime_onnx",
    "backend": "onnxruntime", "version_policy": {"latest": {"num_versions": 1}},
    "max_batch_size": 64,
    "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": ["10"]}],
    "output": [{"name": "output", "data_type": "TYPE_FP32", "dims": ["1"]}],
    "instance_group": [{"name": "mlp", "kind": "KIND_CPU", "count": 1}],
    "dynamic_batching": {"preferred_batch_size": [64], "max_queue_delay_microseconds": "500",
        "default_queue_policy": {"max_queue_size": 4096}}}))]
#[allow(dead_code)]
pub struct ModelConfigResponse {
    name: String,
    platform: String,
    backend: String,
    #[schema(value_type = Object)]
    version_policy: serde_json::Value,
    /// Rows per batch (1 with no `dynamic_batching`: no batching).
    max_batch_size: u64,
    input: Vec<ConfigTensor>,
    output: Vec<ConfigTensor>,
    instance_group: Vec<InstanceGroup>,
    /// Present when the model batches dynamically.
    #[schema(nullable = false)]
    dynamic_batching: Option<DynamicBatching>,
}

/// `input` of `POST /v1/embeddings`: one text, or several.
pub struct EmbeddingsInput;

impl PartialSchema for EmbeddingsInput {
    fn schema() -> RefOr<Schema> {
        AnyOf::builder()
            .item(typed(Type::String))
            .item(Array::new(typed(Type::String)))
            .description(Some(
                "One text, or an array of texts (token arrays are refused).",
            ))
            .into()
    }
}

impl ToSchema for EmbeddingsInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EmbeddingsInput")
    }
}

/// One embedding: floats, or with `encoding_format: base64` their little-endian f32
/// bytes in base64.
pub struct EmbeddingVector;

impl PartialSchema for EmbeddingVector {
    fn schema() -> RefOr<Schema> {
        let number_or_null = AnyOf::builder()
            .item(typed(Type::Number))
            .item(typed(Type::Null));
        AnyOf::builder()
            .item(Array::new(number_or_null))
            .item(typed(Type::String))
            .description(Some(
                "Floats (`null` for a non-finite value), or a base64 string of little-endian \
                 f32 bytes with `encoding_format: base64`.",
            ))
            .into()
    }
}

impl ToSchema for EmbeddingVector {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EmbeddingVector")
    }
}

/// One item of an embeddings response.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Embedding {
    /// Always `embedding`.
    object: String,
    /// Position of its text in `input`.
    index: u64,
    #[schema(value_type = EmbeddingVector)]
    embedding: (),
}

/// Token counts of an embeddings request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmbeddingsUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// `POST /v1/embeddings` answer (OpenAI's shape).
#[derive(ToSchema)]
#[schema(example = json!({"object": "list", "model": "minilm",
    "data": [{"object": "embedding", "index": 0, "embedding": [-0.034477, 0.031023, 0.006735]}],
    "usage": {"prompt_tokens": 4, "total_tokens": 4}}))]
#[allow(dead_code)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    object: String,
    data: Vec<Embedding>,
    model: String,
    usage: EmbeddingsUsage,
}

/// One class of a classification.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Prediction {
    /// Class index in the model's output.
    index: u64,
    label: String,
    /// Probability (softmax); `null` if not finite.
    score: Option<f32>,
}

/// `POST /v1/models/{model}/classify` answer.
#[derive(ToSchema)]
#[schema(example = json!({"model": "efficientnet", "predictions": [[
    {"index": 967, "label": "espresso", "score": 0.957}]]}))]
#[allow(dead_code)]
pub struct ClassifyResponse {
    model: String,
    /// Per image, in order: its top-k classes, best first.
    predictions: Vec<Vec<Prediction>>,
}

/// `POST /v1/models/{model}/predict` answer.
#[derive(ToSchema)]
#[schema(example = json!({"model": "diabetes", "predictions": [202.71]}))]
#[allow(dead_code)]
pub struct PredictResponse {
    model: String,
    /// One per instance, in order, in the target's units; `null` if not finite.
    #[schema(value_type = Vec<NumberOrNull>)]
    predictions: (),
}

/// One model of `POST /v2/repository/index` (Triton's model repository extension).
#[derive(ToSchema)]
#[schema(example = json!({"name": "mlp", "version": "1", "state": "READY"}))]
#[allow(dead_code)]
pub struct RepositoryIndexEntry {
    name: String,
    version: String,
    state: IndexState,
    /// Why it is unavailable (absent when ready).
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// A model's state in the repository index.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum IndexState {
    /// Loaded and serving.
    Ready,
    /// Failed to load, or not loaded.
    Unavailable,
}

/// An empty JSON object, `{}`: the answer of model control on success.
#[derive(ToSchema)]
#[schema(example = json!({}))]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::v1::TaskErrors;
    use crate::http::v2::{
        AuthErrors, InferErrors, LoadErrors, ModelErrors, ReadyErrors, UnloadErrors,
    };

    /// Per operation (its handler's name): the success statuses, and the error kinds the
    /// handler declares next to itself (the same lists its annotation documents).
    const ROUTES: &[(&str, &[u16], &[&str])] = &[
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
        ("repository_index", &[200], AuthErrors::KINDS),
        ("repository_load", &[200], LoadErrors::KINDS),
        ("repository_unload", &[200], UnloadErrors::KINDS),
        ("embeddings", &[200], TaskErrors::KINDS),
        ("classify", &[200], TaskErrors::KINDS),
        ("predict", &[200], TaskErrors::KINDS),
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
                    let status = status_of(kind).unwrap_or_else(|| {
                        panic!("{id} declares {kind:?}, which STATUS_TABLE lacks")
                    });
                    errors.insert(status);
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
    fn error_responses_follow_the_status_table() {
        let r = error_responses(&["unprocessable", "bad_request", "too_many_requests"]);
        let statuses: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(statuses, ["400", "422", "429"]);
        let RefOr::T(too_many) = &r["429"] else {
            panic!("inline response expected")
        };
        assert!(too_many.headers.contains_key("Retry-After"));
        for (kind, _) in STATUS_TABLE {
            assert!(
                !kind_description(kind).0.is_empty(),
                "{kind} has no description"
            );
        }
    }

    #[test]
    #[should_panic(expected = "not in STATUS_TABLE")]
    fn unknown_kinds_are_refused() {
        error_responses(&["teapot"]);
    }
}
