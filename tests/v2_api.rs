//! The KServe v2 API of a real server on the shipped MLP, through real ONNX Runtime.

mod common;

use common::*;
use serde_json::{json, Value};

const TOL: f32 = 1e-5;

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= TOL * y.abs().max(1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_returns_the_reference_outputs() {
    let s = TestServer::start(&shipped_models()).await;
    let (rows, want) = reference();
    // All reference rows in one request, then each row alone.
    let (status, body) = s.post("/v2/models/mlp/infer", &mlp_body(&rows)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_name"], "mlp");
    assert_eq!(body["outputs"][0]["shape"], json!([16, 1]));
    let got = output_data(&body);
    assert!(close(&got, &want), "got {got:?}\nwant {want:?}");
    for (row, w) in rows.iter().zip(&want) {
        let (status, body) = s
            .post(
                "/v2/models/mlp/versions/1/infer",
                &mlp_body(std::slice::from_ref(row)),
            )
            .await;
        assert_eq!(status, 200);
        assert!(close(&output_data(&body), &[*w]));
    }
    // Nested data and the id echo.
    let nested = json!({"id": "abc", "inputs": [{"name": "input", "shape": [2, 10], "datatype": "FP32",
        "data": [rows[0], rows[1]]}], "outputs": [{"name": "output"}]});
    let (status, body) = s.post("/v2/models/mlp/infer", &nested).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "abc");
    assert!(close(&output_data(&body), &want[..2]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_their_own_rows_and_share_batches() {
    // A 20 ms window makes batching certain even on a loaded test machine.
    let repo = mlp_repository("concurrent", &[("mlp", Some(&mlp_toml(64, 20_000, 4096)))]);
    let s = TestServer::start(&repo).await;
    let (rows, want) = reference();
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let client = s.client.clone();
        let url = s.url("/v2/models/mlp/infer");
        let row = rows[i % rows.len()].clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&mlp_body(&[row]))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let batch_rows: usize = r.headers()["x-convoy-batch-rows"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = r.json().await.unwrap();
            (i, output_data(&body), batch_rows)
        }));
    }
    let mut largest = 0;
    for t in tasks {
        let (i, got, batch_rows) = t.await.unwrap();
        assert!(close(&got, &[want[i % want.len()]]), "client {i}: {got:?}");
        largest = largest.max(batch_rows);
    }
    assert!(largest > 1, "no batch larger than 1 was formed");
    let (_, stats) = s.get("/v2/models/mlp/stats").await;
    let m = &stats["model_stats"][0];
    assert_eq!(m["inference_count"], 64);
    let executions = m["execution_count"].as_u64().unwrap();
    assert!(executions < 64, "64 requests ran in {executions} batches");
    let sizes: Vec<u64> = m["batch_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batch_size"].as_u64().unwrap())
        .collect();
    assert!(sizes.iter().any(|&b| b > 1), "{sizes:?}");
    assert!(sizes.iter().all(|&b| b <= 64), "{sizes:?}");
    // perf_analyzer requires the three compute counts to agree.
    let st = &m["inference_stats"];
    let infer = &st["compute_infer"]["count"];
    assert!(infer.as_u64().unwrap() > 0);
    assert_eq!(&st["compute_input"]["count"], infer);
    assert_eq!(&st["compute_output"]["count"], infer);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_others_are_still_served() {
    let s = TestServer::start(&shipped_models()).await;
    let (rows, want) = reference();
    let good = mlp_body(&rows[..1]);
    let row: Vec<f32> = rows[0].clone();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", b"{\"inputs\": [".to_vec(), 400, "invalid request body"),
        ("not an object", b"[1,2]".to_vec(), 400, "invalid request body"),
        ("missing inputs", b"{}".to_vec(), 400, "missing field `inputs`"),
        ("wrong datatype", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "INT64", "data": [1,2,3,4,5,6,7,8,9,10]}]})).unwrap(), 422, "inputs[0].datatype: input \"input\" expects FP32, got \"INT64\""),
        ("unknown datatype", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP8", "data": row}]})).unwrap(), 422, "got \"FP8\""),
        ("data length mismatch", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": &row[..9]}]})).unwrap(), 422, "inputs[0].data: the shape [1, 10] needs 10 values, got 9"),
        ("shape mismatch", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 9], "datatype": "FP32", "data": &row[..9]}]})).unwrap(), 422, "dimension 1 should be 10"),
        ("wrong input name", serde_json::to_vec(&json!({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP32", "data": row}]})).unwrap(), 422, "inputs[0].name: model \"mlp\" has no input \"x\" (its inputs: input)"),
        ("missing input", serde_json::to_vec(&json!({"inputs": []})).unwrap(), 422, "needs input \"input\""),
        ("unknown output", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": row}], "outputs": [{"name": "nope"}]})).unwrap(), 422, "outputs[0].name"),
        ("too many rows", serde_json::to_vec(&mlp_body(&vec![row.clone(); 65])).unwrap(), 422, "1..=64"),
        ("string in data", serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": ["a", 1]}]})).unwrap(), 422, "inputs[0].data[0]: expected a number"),
    ];
    for (what, body, status, needle) in cases {
        let r = s.post_raw("/v2/models/mlp/infer", body).await;
        assert_eq!(r.status().as_u16(), status, "{what}");
        let v: Value = r.json().await.unwrap();
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error field in {v}"));
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should contain {needle:?}"
        );
        // The server keeps serving everyone else.
        let (ok, body) = s.post("/v2/models/mlp/infer", &good).await;
        assert_eq!(ok, 200, "{what}: good request after it failed: {body}");
        assert!(close(&output_data(&body), &want[..1]));
    }
    let (status, v) = s.post("/v2/models/nope/infer", &good).await;
    assert_eq!(status, 404);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("model \"nope\" not found"));
    let (status, _) = s.post("/v2/models/mlp/versions/7/infer", &good).await;
    assert_eq!(status, 404);
    let (status, v) = s.get("/v2/nothing/here").await;
    assert_eq!(status, 404, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_pipeline_models_are_equally_strict() {
    let s = TestServer::start(&shipped_models()).await;
    let (rows, _) = reference();
    let row = rows[0].clone();
    for (model, input) in [("mlp", "input"), ("diabetes", "features")] {
        let tensor = |data: Value| json!({"name": input, "shape": [1, 10], "datatype": "FP32", "data": data});
        let path = format!("/v2/models/{model}/infer");
        let cases = [
            (
                json!({"inputs": [tensor(json!(row))], "outputs": [{"name": "nope"}]}),
                422,
            ),
            (json!({"inputs": [tensor(json!([[row]]))]}), 422),
            (
                json!({"inputs": [{"name": input, "shape": [1, 10], "datatype": "FP32",
                    "data": row, "parameters": {"binary_data_size": 40}}]}),
                400,
            ),
        ];
        for (body, status) in cases {
            let (got, v) = s.post(&path, &body).await;
            assert_eq!(got, status, "{model}: {body} -> {v}");
        }
        let (ok, v) = s
            .post(&path, &json!({"inputs": [tensor(json!(row))]}))
            .await;
        assert_eq!(ok, 200, "{model}: {v}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metadata_config_and_stats() {
    let s = TestServer::start(&shipped_models()).await;
    assert_eq!(s.get("/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(
        s.get("/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
    assert_eq!(s.get("/v2/models/mlp/ready").await.0, 200);
    assert_eq!(s.get("/v2/models/mlp/versions/1/ready").await.0, 200);
    assert_eq!(s.get("/v2/models/mlp/versions/2/ready").await.0, 404);
    let (_, server) = s.get("/v2").await;
    assert_eq!(server["name"], "convoy");
    assert_eq!(server["device"]["models"]["mlp"], "cpu");
    let (_, meta) = s.get("/v2/models/mlp").await;
    assert_eq!(
        meta,
        json!({"name": "mlp", "versions": ["1"], "platform": "onnxruntime_onnx",
               "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 10]}],
               "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 1]}]})
    );
    let (_, config) = s.get("/v2/models/mlp/config").await;
    assert_eq!(config["max_batch_size"], 64);
    assert_eq!(config["input"][0]["dims"], json!(["10"]));
    assert_eq!(
        config["dynamic_batching"]["preferred_batch_size"],
        json!([64])
    );
    let (status, stats) = s.get("/v2/models/stats").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = stats["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"mlp"), "{names:?}");
    let metrics = s.scrape().await;
    assert!(metrics.contains("convoy_model_ready"), "{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_429_with_retry_after() {
    // Batches of up to 4 rows, a queue of 4 rows, and a window no loaded machine outlasts:
    // a 3-row request waits, a 2-row one does not fit the queue, a 1-row one fills the
    // batch, which then runs.
    let repo = mlp_repository("queue", &[("mlp", Some(&mlp_toml(4, 10_000_000, 4)))]);
    let s = TestServer::start(&repo).await;
    let (rows, want) = reference();
    let first = {
        let client = s.client.clone();
        let url = s.url("/v2/models/mlp/infer");
        let body = mlp_body(&rows[..3]);
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
    };
    wait_for("the first 3 rows to be queued", || async {
        s.queued_rows("mlp").await == 3
    })
    .await;
    let r = s
        .post_raw(
            "/v2/models/mlp/infer",
            serde_json::to_vec(&mlp_body(&rows[..2])).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("queue full"), "{v}");
    let (status, last) = s.post("/v2/models/mlp/infer", &mlp_body(&rows[3..4])).await;
    assert_eq!(status, 200, "{last}");
    assert!(close(&output_data(&last), &want[3..4]));
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert!(close(&output_data(&body), &want[..3]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensor_extension_round_trips() {
    let s = TestServer::start(&shipped_models()).await;
    let (rows, want) = reference();
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "input", "shape": [2, 10], "datatype": "FP32", "parameters": {"binary_data_size": 80}}],
        "outputs": [{"name": "output", "parameters": {"binary_data": true}}]
    }))
    .unwrap();
    let mut body = header.clone();
    for x in rows[..2].iter().flatten() {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let r = s
        .client
        .post(s.url("/v2/models/mlp/infer"))
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let meta: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    assert_eq!(meta["outputs"][0]["parameters"]["binary_data_size"], 8);
    let got: Vec<f32> = bytes[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(close(&got, &want[..2]), "{got:?}");
    s.stop().await;
}
