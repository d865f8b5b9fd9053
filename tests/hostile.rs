//! Hostile input across every route, table-driven: each request gets the expected 4xx
//! with an `{"error"}` naming the problem, and a well-formed request right after it
//! succeeds (nothing crashed, nothing got stuck).

mod common;

use common::*;
use convoy::config::ServeConfig;
use serde_json::{json, Value};

enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Binary(Value, Vec<u8>, Option<String>),
    None,
}

struct Case {
    method: &'static str,
    path: &'static str,
    body: Body,
    status: u16,
    needle: &'static str,
}

fn case(
    method: &'static str,
    path: &'static str,
    body: Body,
    status: u16,
    needle: &'static str,
) -> Case {
    Case {
        method,
        path,
        body,
        status,
        needle,
    }
}

fn mlp(data: Value, shape: Value, datatype: &str) -> Body {
    Body::Json(
        json!({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}),
    )
}

fn deep(levels: usize) -> Value {
    let mut v = json!(1.0);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_hostile_requests_each_get_a_clear_4xx() {
    let mut config = ServeConfig::defaults();
    config.model_repository = shipped_models();
    config.ort_lib = Some(ort_lib());
    config.device = "cpu".parse().unwrap();
    config.max_body_bytes = 1 << 20;
    let s = TestServer::start_with(config).await;
    let (rows, want) = reference();
    let row = json!(rows[0]);
    let ten = |x: Value| json!([x, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let header = |inputs: Value| serde_json::to_vec(&json!({"inputs": inputs})).unwrap();
    let bin_input = |size: usize| json!([{"name": "input", "shape": [1, 10], "datatype": "FP32", "parameters": {"binary_data_size": size}}]);
    let png = std::fs::read(shipped_models().join("digits/samples/digit_3.png")).unwrap();
    let cases = vec![
        // v2 infer: body and protocol.
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Raw("application/json", b"{".to_vec()),
            400,
            "invalid request body",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Raw("application/json", b"".to_vec()),
            400,
            "invalid request body",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Raw("application/json", vec![0xff, 0xfe, 0x00]),
            400,
            "invalid request body",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(json!("a string")),
            400,
            "invalid request body",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(json!({"inputs": {}})),
            400,
            "invalid request body",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(json!({"inputs": [{"name": "input"}]})),
            400,
            "missing field",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Raw("application/json", vec![b' '; 2 << 20]),
            413,
            "exceeds the limit",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(deep(40), json!([1, 10]), "FP32"),
            422,
            "nested arrays must follow the shape",
        ),
        // v2 infer: tensors that do not fit the model.
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([1, 10]), "FP64"),
            422,
            "expects FP32",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([1, 10]), "BF16"),
            422,
            "got \"BF16\"",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([10]), "FP32"),
            422,
            "expects 2 dimensions",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([1, 10, 1]), "FP32"),
            422,
            "expects 2 dimensions",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([2, 10]), "FP32"),
            422,
            "needs 20 values, got 10",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(json!([]), json!([0, 10]), "FP32"),
            422,
            "batch dimension must be in 1..=64",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([-1, 10]), "FP32"),
            422,
            "non-negative",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(row.clone(), json!([9223372036854775807i64, 10]), "FP32"),
            422,
            "has too many elements",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(ten(json!("x")), json!([1, 10]), "FP32"),
            422,
            "expected a number",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(ten(json!(null)), json!([1, 10]), "FP32"),
            422,
            "expected a number",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(ten(json!(1e39)), json!([1, 10]), "FP32"),
            422,
            "FP32 range",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            mlp(ten(json!({"a": 1})), json!([1, 10]), "FP32"),
            422,
            "expected a number",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(
                json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": row}, {"name": "input", "shape": [1, 10], "datatype": "FP32", "data": row}]}),
            ),
            422,
            "given twice",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(
                json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": row}], "outputs": [{"name": "nope"}]}),
            ),
            422,
            "outputs[0].name",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(
                json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": row}], "parameters": {"priority": 99}}),
            ),
            422,
            "parameters.priority",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Json(
                json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": row}], "parameters": {"timeout": -5}}),
            ),
            400,
            "parameters.timeout",
        ),
        // v2 binary tensor extension: every length and offset checked.
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Binary(bin_input(40), vec![0; 8], None),
            400,
            "run past",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Binary(bin_input(8), vec![0; 8], None),
            422,
            "needs 10 FP32 values",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Binary(bin_input(40), vec![0; 48], None),
            400,
            "add up to 40 bytes",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Binary(
                bin_input(40),
                [f32::INFINITY; 10]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                None,
            ),
            422,
            "NaN or infinite",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Binary(bin_input(40), vec![0; 40], Some("999999".into())),
            400,
            "exceeds the body",
        ),
        case(
            "POST",
            "/v2/models/mlp/infer",
            Body::Binary(bin_input(40), vec![0; 40], Some("many".into())),
            400,
            "expected a byte count",
        ),
        // Names that do not exist.
        case(
            "POST",
            "/v2/models/nope/infer",
            mlp(row.clone(), json!([1, 10]), "FP32"),
            404,
            "not found",
        ),
        case(
            "POST",
            "/v2/models/mlp/versions/2/infer",
            mlp(row.clone(), json!([1, 10]), "FP32"),
            404,
            "no version",
        ),
        case("GET", "/v2/models/../../etc/passwd", Body::None, 404, ""),
        case(
            "GET",
            "/v2/models/nope/config",
            Body::None,
            404,
            "not found",
        ),
        case("GET", "/v2/models/nope/stats", Body::None, 404, "not found"),
        case(
            "POST",
            "/v2/repository/models/nope/load",
            Body::None,
            404,
            "not in the repository",
        ),
        case(
            "POST",
            "/v2/repository/models/nope/unload",
            Body::None,
            404,
            "not loaded",
        ),
        // Task routes.
        case(
            "POST",
            "/v1/embeddings",
            Body::Json(json!({"model": "minilm", "input": ""})),
            422,
            "empty",
        ),
        case(
            "POST",
            "/v1/embeddings",
            Body::Json(json!({"model": "minilm", "input": {"text": "hi"}})),
            422,
            "expected a string",
        ),
        case(
            "POST",
            "/v1/embeddings",
            Body::Json(json!({"model": "minilm", "input": "word ".repeat(600), "truncate": false})),
            422,
            "exceeds the model's maximum",
        ),
        case(
            "POST",
            "/v1/embeddings",
            Body::Json(json!({"input": "hi"})),
            400,
            "missing field `model`",
        ),
        case(
            "POST",
            "/v1/models/digits/classify",
            Body::Raw("image/png", png[..40].to_vec()),
            422,
            "images[0]",
        ),
        case(
            "POST",
            "/v1/models/digits/classify",
            Body::Raw("image/png", b"GIF89a not really".to_vec()),
            422,
            "not a PNG or JPEG",
        ),
        case(
            "POST",
            "/v1/models/digits/classify",
            Body::Json(json!({"image": "****"})),
            422,
            "base64",
        ),
        case(
            "POST",
            "/v1/models/mlp/classify",
            Body::Raw("image/png", png.clone()),
            422,
            "not an image classifier",
        ),
        case(
            "POST",
            "/v1/models/diabetes/predict",
            Body::Json(json!({"instance": {"age": "old"}})),
            422,
            "instances[0]",
        ),
        case(
            "POST",
            "/v1/models/diabetes/predict",
            Body::Json(json!({"instances": 5})),
            400,
            "invalid request body",
        ),
        case(
            "POST",
            "/v2/models/minilm/infer",
            Body::Json(
                json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [7]}]}),
            ),
            422,
            "expected a string for BYTES",
        ),
        case(
            "POST",
            "/v2/models/efficientnet_lite0/infer",
            Body::Json(
                json!({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": ["aGk="]}]}),
            ),
            422,
            "needs 2 values",
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let good = mlp_body(&rows[..1]);
    for c in cases {
        let url = s.url(c.path);
        let req = match c.method {
            "GET" => s.client.get(&url),
            _ => s.client.post(&url),
        };
        let req = match c.body {
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, bytes) => req.header("content-type", ct).body(bytes),
            Body::Binary(inputs, tail, length) => {
                let mut bytes = header(inputs);
                let n = length.unwrap_or_else(|| bytes.len().to_string());
                bytes.extend_from_slice(&tail);
                req.header("inference-header-content-length", n).body(bytes)
            }
            Body::None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        if status == 413 {
            // The unread rest of the body ends the connection, and the client is told.
            assert_eq!(
                r.headers()["connection"],
                "close",
                "{} {}",
                c.method,
                c.path
            );
        }
        let text = r.text().await.unwrap();
        assert_eq!(status, c.status, "{} {}: {text}", c.method, c.path);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{} {}: not JSON: {text}", c.method, c.path));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{} {}: no error field: {text}", c.method, c.path));
        assert!(
            msg.contains(c.needle),
            "{} {}: {msg:?} should contain {:?}",
            c.method,
            c.path,
            c.needle
        );
        let (ok, body) = s.post("/v2/models/mlp/infer", &good).await;
        assert_eq!(ok, 200, "after {} {}: {body}", c.method, c.path);
        assert!((output_data(&body)[0] - want[0]).abs() < 1e-3);
    }
    s.stop().await;
}
