//! Fault injection through real ONNX Runtime: a request that makes the model's run fail
//! gets a 500 with no internals; its batch mates and later requests are answered.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

fn body(index: i64) -> Value {
    json!({"inputs": [{"name": "index", "shape": [1, 1], "datatype": "INT64", "data": [index]}]})
}

/// A scratch repository holding the test-only `faulty` model, batched so that five
/// requests make a batch the moment the fifth arrives (preferred size 5) and nothing
/// leaves earlier (a 10 s window): sharing a batch does not depend on timing.
fn faulty_in_fives() -> PathBuf {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models");
    let root = std::env::temp_dir().join(format!("convoy-test-{}-faults", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("faulty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(models.join("faulty/model.onnx"), dir.join("model.onnx")).unwrap();
    std::fs::write(
        dir.join("model.toml"),
        "max_batch_size = 16\n[dynamic_batching]\nmax_queue_delay_us = 10000000\n\
         max_queue_size = 256\npreferred_batch_sizes = [5]\n",
    )
    .unwrap();
    root
}

/// Sends the five requests at once; returns (index, status, rows of its batch, body).
async fn five(s: &TestServer, indices: [i64; 5]) -> Vec<(i64, u16, u64, Value)> {
    let mut tasks = Vec::new();
    for index in indices {
        let client = s.client.clone();
        let url = s.url("/v2/models/faulty/infer");
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&body(index)).send().await.unwrap();
            let status = r.status().as_u16();
            let rows = r
                .headers()
                .get("x-convoy-batch-rows")
                .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
            let v: Value = r.json().await.unwrap();
            (index, status, rows, v)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_error_fails_only_the_poisoned_request() {
    let s = TestServer::start(&faulty_in_fives()).await;
    // One batch of five; index 9 makes its run fail.
    for (index, status, rows, v) in five(&s, [0, 1, 9, 2, 3]).await {
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
            // Answered from its run alone, after the shared run failed.
            assert_eq!(rows, 1, "index {index}");
        }
    }
    let (_, stats) = s.get("/v2/models/faulty/stats").await;
    let m = &stats["model_stats"][0];
    // The five did share the batch that failed: it is the one batch run so far (the
    // requests rerun alone are not batches).
    assert_eq!(m["execution_count"], 1, "{m}");
    assert_eq!(m["batch_stats"][0]["batch_size"], 5, "{m}");
    // Later requests are served as usual, again as one batch.
    for (index, status, rows, v) in five(&s, [3, 0, 2, 1, 0]).await {
        assert_eq!(status, 200, "index {index}: {v}");
        assert_eq!(v["outputs"][0]["data"], json!([10.0 * (index + 1) as f64]));
        assert_eq!(rows, 5, "index {index}");
    }
    let (_, stats) = s.get("/v2/models/faulty/stats").await;
    let m = &stats["model_stats"][0];
    assert_eq!(m["execution_count"], 2, "{m}");
    assert_eq!(m["inference_stats"]["fail"]["count"], 1, "{m}");
    assert_eq!(m["inference_stats"]["success"]["count"], 9, "{m}");
    s.stop().await;
}
