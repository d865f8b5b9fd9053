//! The fast tier: the whole router driven with `oneshot`, on the fake backend (no ONNX
//! Runtime, no TCP, no model files: the shipped `model.toml`s in a scratch folder).
//! What must behave alike on every door and every kind of model is checked here;
//! `cargo test --test fast` runs it alone in seconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use convoy::backend::fake::FakeFactory;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A scratch repository with the shipped `model.toml` of each of `models`, under
/// `<model><tag>` names (metric series are per name, and tests run side by side).
fn repository(tag: &str, models: &[&str]) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let root = std::env::temp_dir().join(format!("convoy-fast-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for m in models {
        let dir = root.join(format!("{m}{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(shipped.join(m).join("model.toml"), dir.join("model.toml")).unwrap();
    }
    root
}

fn app(root: &Path, factory: FakeFactory) -> Router {
    let mut config = convoy::config::ServeConfig::defaults();
    config.model_repository = root.to_path_buf();
    let state = convoy::prepare_with(&config, Arc::new(factory)).expect("prepares");
    convoy::http::router(state)
}

/// One request: status, headers and body bytes.
async fn call(
    app: &Router,
    method: &str,
    path: &str,
    body: Body,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

async fn json_call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
    let (status, _, bytes) = call(app, method, path, body).await;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status.as_u16(), v)
}

fn tensor(name: &str, shape: Value, data: Value) -> Value {
    json!({"name": name, "shape": shape, "datatype": "FP32", "data": data})
}

/// The one input of the MLP (`input`, 10 values) and of diabetes (`features`, 10 raw
/// features) look alike; every rule must answer both the same way.
fn inputs_of(model: &str) -> &'static str {
    if model.starts_with("mlp") {
        "input"
    } else {
        "features"
    }
}

#[tokio::test]
async fn strictness_is_the_same_for_plain_and_pipeline_models() {
    let root = repository("strict", &["mlp", "diabetes"]);
    let app = app(&root, FakeFactory::new());
    let row: Vec<f32> = (1..=10).map(|i| i as f32).collect();
    for model in ["mlpstrict", "diabetesstrict"] {
        let input = inputs_of(model);
        let path = format!("/v2/models/{model}/infer");
        let ok = json!({"inputs": [tensor(input, json!([1, 10]), json!(row))]});
        assert_eq!(
            json_call(&app, "POST", &path, Some(ok)).await.0,
            200,
            "{model}"
        );
        let cases = [
            (
                json!({"inputs": [tensor(input, json!([1, 10]), json!(row))],
                       "outputs": [{"name": "nope"}]}),
                422,
                "outputs[0].name",
            ),
            (
                json!({"inputs": [tensor(input, json!([1, 10]), json!([[row]]))]}),
                422,
                "nested arrays must follow the shape",
            ),
            (
                json!({"inputs": [{"name": input, "shape": [1, 10], "datatype": "FP32",
                    "data": row, "parameters": {"binary_data_size": 40}}]}),
                400,
                "not both",
            ),
        ];
        for (body, status, needle) in cases {
            let (got, v) = json_call(&app, "POST", &path, Some(body.clone())).await;
            assert_eq!(got, status, "{model} {body}: {v}");
            let msg = v["error"].as_str().unwrap_or_default();
            assert!(msg.contains(needle), "{model}: {msg:?} lacks {needle:?}");
        }
    }
}

#[tokio::test]
async fn config_and_metadata_describe_the_same_tensors() {
    // The text and image models need their tokenizer and labels files, which setup
    // builds: the real tier (tests/triton_client.py) checks every shipped model.
    let root = repository("config", &["mlp", "diabetes"]);
    let app = app(&root, FakeFactory::new());
    for model in ["mlpconfig", "diabetesconfig"] {
        let (status, meta) = json_call(&app, "GET", &format!("/v2/models/{model}"), None).await;
        assert_eq!(status, 200, "{meta}");
        let (_, config) = json_call(&app, "GET", &format!("/v2/models/{model}/config"), None).await;
        for (side, list) in [("inputs", "input"), ("outputs", "output")] {
            let from_config: Vec<Value> = config[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let mut shape = vec![json!(-1)];
                    for d in t["dims"].as_array().unwrap() {
                        shape.push(json!(d.as_str().unwrap().parse::<i64>().unwrap()));
                    }
                    let datatype = t["data_type"].as_str().unwrap().trim_start_matches("TYPE_");
                    let datatype = if datatype == "STRING" {
                        "BYTES"
                    } else {
                        datatype
                    };
                    json!({"name": t["name"], "datatype": datatype, "shape": shape})
                })
                .collect();
            assert_eq!(Value::from(from_config), meta[side], "{model} {side}");
        }
    }
}

#[tokio::test]
async fn a_pipeline_model_gives_binary_outputs_when_asked() {
    let root = repository("binary", &["diabetes"]);
    let app = app(&root, FakeFactory::new());
    let row: Vec<f32> = (1..=10).map(|i| i as f32 * 10.0).collect();
    let inputs = json!([tensor("features", json!([1, 10]), json!(row))]);
    let path = "/v2/models/diabetesbinary/infer";
    let (_, plain) = json_call(&app, "POST", path, Some(json!({"inputs": inputs}))).await;
    let want = plain["outputs"][0]["data"][0].as_f64().unwrap() as f32;
    for body in [
        json!({"inputs": inputs, "parameters": {"binary_data_output": true}}),
        json!({"inputs": inputs, "outputs": [{"name": "prediction",
            "parameters": {"binary_data": true}}]}),
    ] {
        let (status, headers, bytes) = call(&app, "POST", path, Body::from(body.to_string())).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/octet-stream");
        let n: usize = headers["inference-header-content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let head: Value = serde_json::from_slice(&bytes[..n]).unwrap();
        assert_eq!(
            head["outputs"][0]["parameters"]["binary_data_size"], 4,
            "{head}"
        );
        assert!(head["outputs"][0].get("data").is_none(), "{head}");
        let got = f32::from_le_bytes(bytes[n..n + 4].try_into().unwrap());
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn repository_bodies_that_are_not_json_are_refused() {
    let root = repository("control", &["mlp"]);
    let app = app(&root, FakeFactory::new());
    for path in [
        "/v2/repository/index",
        "/v2/repository/models/mlpcontrol/load",
        "/v2/repository/models/mlpcontrol/unload",
    ] {
        for bad in ["{not json", "[]", "[null]", "{\"parameters\": 3}"] {
            let (status, _, body) = call(&app, "POST", path, Body::from(bad)).await;
            assert_eq!(
                status,
                400,
                "{path} {bad}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let (status, v) = json_call(
        &app,
        "POST",
        "/v2/repository/index",
        Some(json!({"ready": true})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["name"], "mlpcontrol");
    let load = "/v2/repository/models/mlpcontrol/load";
    assert_eq!(json_call(&app, "POST", load, None).await.0, 200);
    assert_eq!(
        json_call(&app, "POST", load, Some(json!({"parameters": {}})))
            .await
            .0,
        200
    );
}

/// `convoy_requests_in_flight{model=...}` from the exposition text.
async fn in_flight(app: &Router, model: &str) -> f64 {
    let (_, _, bytes) = call(app, "GET", "/metrics", Body::empty()).await;
    let text = String::from_utf8(bytes).unwrap();
    let series = format!("convoy_requests_in_flight{{model=\"{model}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn task_routes_count_in_flight_and_failures_like_v2() {
    let root = repository("count", &["diabetes"]);
    // Each batch takes 200 ms: requests stay in flight long enough to be seen.
    let factory = FakeFactory::new()
        .with_delay(Duration::from_millis(200), Duration::ZERO)
        .failing_on(0.0);
    let app = app(&root, factory);
    let model = "diabetescount";
    let path = format!("/v1/models/{model}/predict");
    // Standardised features are never exactly 0 unless a feature equals its mean.
    let instance = json!({"age": 60, "sex": 2, "bmi": 30, "bp": 100, "s1": 150, "s2": 90,
        "s3": 40, "s4": 5, "s5": 5, "s6": 90});
    let running: Vec<_> = (0..4)
        .map(|_| {
            let (app, path, body) = (app.clone(), path.clone(), json!({"instance": instance}));
            tokio::spawn(async move { json_call(&app, "POST", &path, Some(body)).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0.0;
    while seen < 1.0 && Instant::now() < deadline {
        seen = in_flight(&app, model).await;
        tokio::task::yield_now().await;
    }
    assert!(
        seen >= 1.0,
        "the in-flight gauge never rose on a task route"
    );
    for r in running {
        assert_eq!(r.await.unwrap().0, 200);
    }
    assert_eq!(in_flight(&app, model).await, 0.0);

    // A batch the device fails is a 500 on the task route and a failure in the stats.
    let mut failing = instance.clone();
    failing["age"] = json!(48.5180995);
    let (status, v) = json_call(&app, "POST", &path, Some(json!({"instance": failing}))).await;
    assert_eq!(status, 500, "{v}");
    let (_, stats) = json_call(&app, "GET", &format!("/v2/models/{model}/stats"), None).await;
    let s = &stats["model_stats"][0]["inference_stats"];
    assert_eq!(s["fail"]["count"], 1, "{stats}");
    assert_eq!(s["success"]["count"], 4, "{stats}");
}

#[tokio::test]
async fn every_door_gives_the_same_answer() {
    let root = repository("doors", &["diabetes"]);
    let app = app(&root, FakeFactory::new());
    let names = [
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
    ];
    let raw = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0];
    let instance: serde_json::Map<String, Value> = names
        .iter()
        .zip(raw)
        .map(|(n, x)| (n.to_string(), json!(x)))
        .collect();
    let (status, v1) = json_call(
        &app,
        "POST",
        "/v1/models/diabetesdoors/predict",
        Some(json!({"instances": [instance, instance]})),
    )
    .await;
    assert_eq!(status, 200, "{v1}");
    let body = json!({"inputs": [tensor("features", json!([2, 10]), json!([raw, raw]))]});
    let (status, v2) = json_call(&app, "POST", "/v2/models/diabetesdoors/infer", Some(body)).await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v1["predictions"], v2["outputs"][0]["data"], "{v1} vs {v2}");
    // A value past the FP32 range is refused on both doors alike.
    let mut huge = instance.clone();
    huge.insert("bmi".into(), json!(1e308));
    let (status, v) = json_call(
        &app,
        "POST",
        "/v1/models/diabetesdoors/predict",
        Some(json!({"instance": huge})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let mut row = raw.to_vec();
    row[2] = 0.0;
    let mut big = json!({"inputs": [tensor("features", json!([1, 10]), json!(row))]});
    big["inputs"][0]["data"][2] = json!(1e308);
    let (status, v) = json_call(&app, "POST", "/v2/models/diabetesdoors/infer", Some(big)).await;
    assert_eq!(status, 422, "{v}");
}
