//! The OpenAPI document: the committed `openapi/openapi.json` is the code's, the server
//! serves it with Swagger UI, and live responses fit the schemas it documents.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const REGENERATE: &str = "cargo run -- openapi > openapi/openapi.json";

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

#[test]
fn committed_spec_is_the_codes() {
    let code = convoy::http::openapi::document_json();
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    if committed != code {
        let first = code
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| code.lines().count().min(committed.lines().count()));
        panic!(
            "openapi/openapi.json differs from the code's OpenAPI document (first at line {}).\n\
             Regenerate it with:\n\n    {REGENERATE}\n\nand commit the result.",
            first + 1
        );
    }
}

fn spec() -> Value {
    serde_json::to_value(convoy::http::openapi::document()).unwrap()
}

/// Follows a `$ref` to `#/components/schemas/...`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            resolve(root, &root["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("schema type {other} not handled"),
    }
}

/// A small JSON Schema check covering what the document uses: `$ref`, `type` (one or
/// several), `properties`/`required`, `items`, `anyOf`, `oneOf`, `enum`, `minimum`.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(root, schema);
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
            _ => false,
        };
        if !ok {
            return Err(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(v) {
            return Err(format!("{at}: {v} is not one of {values:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < min {
            return Err(format!("{at}: {x} < minimum {min}"));
        }
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        if !options.iter().any(|s| validate(root, s, v, at).is_ok()) {
            return Err(format!("{at}: {v} matches no anyOf option"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let n = options
            .iter()
            .filter(|s| validate(root, s, v, at).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{at}: {v} matches {n} oneOf options, not 1"));
        }
    }
    if let Some(obj) = v.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            if !obj.contains_key(name) {
                return Err(format!("{at}: required property {name} is missing"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, value) in obj {
                if let Some(s) = props.get(name) {
                    validate(root, s, value, &format!("{at}.{name}"))?;
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), v.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(root, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Checks one live response against what the document says `method path` answers with
/// `status`: the status is documented, and the JSON body fits its schema.
fn check(root: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &root["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which it does not document: {body}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    if let Err(e) = validate(root, schema, body, "body") {
        panic!("{method} {path} {status}: {e}\nbody: {body}");
    }
}

#[test]
fn the_validator_catches_what_it_should() {
    let root = spec();
    let infer_ok = json!({"model_name": "m", "model_version": "1",
        "outputs": [{"name": "o", "datatype": "FP32", "shape": [1], "data": [1.5, null]}]});
    let schema = json!({"$ref": "#/components/schemas/InferResponse"});
    assert!(validate(&root, &schema, &infer_ok, "b").is_ok());
    let mut bad = infer_ok.clone();
    bad["outputs"][0]["datatype"] = json!("FP16");
    assert!(validate(&root, &schema, &bad, "b").is_err());
    let mut bad = infer_ok;
    bad["outputs"][0]["data"] = json!(["x"]);
    assert!(validate(&root, &schema, &bad, "b").is_err());
    let error = json!({"$ref": "#/components/schemas/ErrorResponse"});
    assert!(validate(&root, &error, &json!({"message": "x"}), "b").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_responses_fit_the_document() {
    let root = spec();
    let repo = mlp_repository("openapi", &[("mlp", None)]);
    let s = TestServer::start(&repo).await;

    // Every GET route, for a served model and for an unknown one.
    for (path, item) in root["paths"].as_object().unwrap() {
        if item.get("get").is_none() {
            continue;
        }
        let concrete = path.replace("{model}", "mlp").replace("{version}", "1");
        if path == "/metrics" {
            let r = s.client.get(s.url(&concrete)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"));
            continue;
        }
        let (status, body) = s.get(&concrete).await;
        assert_eq!(status, 200, "GET {concrete}: {body}");
        check(&root, "get", path, status, &body);
        if path.contains("{model}") {
            let unknown = path.replace("{model}", "nope").replace("{version}", "1");
            let (status, body) = s.get(&unknown).await;
            assert_eq!(status, 404, "GET {unknown}");
            check(&root, "get", path, status, &body);
        }
        if path.contains("{version}") {
            let unknown = path.replace("{model}", "mlp").replace("{version}", "9");
            let (status, body) = s.get(&unknown).await;
            assert_eq!(status, 404, "GET {unknown}");
            check(&root, "get", path, status, &body);
        }
    }

    // Inference: the documented example, then each way a request can be refused.
    let infer = "/v2/models/{model}/infer";
    let example = root["components"]["schemas"]["InferRequest"]["example"].clone();
    let (status, body) = s.post("/v2/models/mlp/infer", &example).await;
    assert_eq!(status, 200, "{body}");
    check(&root, "post", infer, status, &body);
    let (rows, _) = reference();
    let refused: Vec<(Value, u16)> = vec![
        (json!({"inputs": 3}), 400),
        (json!({"id": 7, "inputs": []}), 400),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            422,
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP16", "data": rows[0]}]}),
            422,
        ),
    ];
    for (request, want) in refused {
        let (status, body) = s.post("/v2/models/mlp/infer", &request).await;
        assert_eq!(status, want, "{request} -> {body}");
        check(&root, "post", infer, status, &body);
    }
    let r = s.post_raw("/v2/models/mlp/infer", "{not json").await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 400);
    check(&root, "post", infer, status, &body);
    let (status, body) = s.post("/v2/models/nope/infer", &mlp_body(&rows[..1])).await;
    check(&root, "post", infer, status, &body);

    // Model control.
    let (status, body) = s.post("/v2/repository/index", &json!({})).await;
    check(&root, "post", "/v2/repository/index", status, &body);
    for (path, concrete, want) in [
        (
            "/v2/repository/models/{model}/unload",
            "/v2/repository/models/mlp/unload",
            200,
        ),
        (
            "/v2/repository/models/{model}/unload",
            "/v2/repository/models/mlp/unload",
            404,
        ),
        (
            "/v2/repository/models/{model}/load",
            "/v2/repository/models/nope/load",
            404,
        ),
        (
            "/v2/repository/models/{model}/load",
            "/v2/repository/models/mlp/load",
            200,
        ),
    ] {
        let (status, body) = s.post(concrete, &json!({})).await;
        assert_eq!(status, want, "POST {concrete}: {body}");
        check(&root, "post", path, status, &body);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_and_swagger_ui_are_served_and_axum_rejections_are_json() {
    let s = TestServer::start(&shipped_models()).await;
    let (status, served) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(served, spec());

    let r = s.client.get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let r = s
        .client
        .get(s.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("/openapi.json"));

    // A method the route lacks: 405, JSON, with Allow.
    let r = s.post_raw("/v2", "{}").await;
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("POST"), "{body}");
    let r = s
        .client
        .get(s.url("/v2/models/mlp/infer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    // A path parameter that is not UTF-8 once decoded names no model: a JSON 404 as
    // documented (axum's extractor alone answers a plain-text 400).
    let root = spec();
    for (method, documented, concrete) in [
        ("get", "/v2/models/{model}", "/v2/models/%FF"),
        ("get", "/v2/models/{model}/ready", "/v2/models/%C3/ready"),
        ("post", "/v2/models/{model}/infer", "/v2/models/%FF/infer"),
        (
            "post",
            "/v2/models/{model}/versions/{version}/infer",
            "/v2/models/mlp/versions/%FE/infer",
        ),
    ] {
        let r = if method == "get" {
            s.client.get(s.url(concrete)).send().await.unwrap()
        } else {
            s.post_raw(concrete, "{}").await
        };
        let status = r.status().as_u16();
        assert_eq!(status, 404, "{method} {concrete}");
        let body: Value = r.json().await.unwrap();
        check(&root, method, documented, status, &body);
    }
    // A method Swagger UI's routes lack: 405, JSON.
    let r = s.post_raw("/docs/", "{}").await;
    assert_eq!(r.status(), 405);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    // No route at all: 404, JSON.
    let (status, body) = s.get("/v3/nothing").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
    s.stop().await;
}
