//! Fault injection through real ONNX Runtime: a request that makes the model's run fail
//! gets a 500 with no internals; its batch mates and later requests are answered.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn body(index: i64) -> Value {
    json!({"inputs": [{"name": "index", "shape": [1, 1], "datatype": "INT64", "data": [index]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_error_fails_only_the_poisoned_request() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models");
    let s = TestServer::start(&repo).await;
    // A 50 ms window puts these five into one batch; index 9 makes the run fail.
    let mut tasks = Vec::new();
    for index in [0i64, 1, 9, 2, 3] {
        let client = s.client.clone();
        let url = s.url("/v2/models/faulty/infer");
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&body(index)).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (index, status, v)
        }));
    }
    for t in tasks {
        let (index, status, v) = t.await.unwrap();
        if index == 9 {
            assert_eq!(status, 500, "{v}");
            assert_eq!(
                v,
                json!({"error": "internal error; see the server log"}),
                "internals leaked"
            );
        } else {
            assert_eq!(status, 200, "index {index}: {v}");
            assert_eq!(v["outputs"][0]["data"], json!([10.0 * (index + 1) as f64]));
        }
    }
    // Later requests are served as usual.
    let (status, v) = s.post("/v2/models/faulty/infer", &body(3)).await;
    assert_eq!(status, 200, "{v}");
    let (_, stats) = s.get("/v2/models/faulty/stats").await;
    assert!(
        stats["model_stats"][0]["inference_stats"]["fail"]["count"]
            .as_u64()
            .unwrap()
            >= 1
    );
    s.stop().await;
}
