//! The repository and the whole app on the fake backend: no ONNX Runtime library is
//! loaded and no model file exists, only `model.toml`s in a scratch folder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use convoy::backend::fake::{fake_outputs, FakeFactory};
use convoy::backend::ort::Runtime;
use convoy::backend::{BackendFactory, Device};
use convoy::batching::Entry;
use convoy::repository::{session_spec, LoadOptions, ModelState, Repository};
use convoy::tensor::{Tensor, TensorData};

const TABULAR: &str = "max_batch_size = 8\n[dynamic_batching]\nmax_queue_delay_us = 20000\n\
    [[input]]\nname = \"input\"\ndatatype = \"FP32\"\ndims = [3]\n\
    [[output]]\nname = \"label\"\ndatatype = \"INT64\"\ndims = []\n\
    [[output]]\nname = \"score\"\ndatatype = \"FP32\"\ndims = [2]\n";

/// A scratch repository with `models` (name, model.toml), and no model files.
fn repository(tag: &str, models: &[(&str, &str)]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("convoy-fake-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (name, toml) in models {
        std::fs::create_dir_all(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("model.toml"), toml).unwrap();
    }
    root
}

fn rows(values: &[[f32; 3]]) -> Tensor {
    Tensor {
        shape: vec![values.len(), 3],
        data: TensorData::F32(values.iter().flatten().copied().collect()),
    }
}

#[tokio::test]
async fn a_repository_loads_through_the_fake_and_batches() {
    let root = repository("load", &[("tab", TABULAR), ("broken", TABULAR)]);
    let factory = FakeFactory::new().failing_to_load("broken");
    let opts = LoadOptions {
        device: Device::Auto,
        intra_op_threads: 0,
    };
    let repo = Repository::load(&root, Arc::new(factory.clone()), &opts).expect("loads");
    assert!(matches!(
        repo.get("broken"),
        Some(ModelState::Failed { .. })
    ));
    let model = repo.ready("tab").expect("tab serves");
    assert_eq!(model.device, Device::Cpu);
    assert_eq!(model.instances, 1);

    // Two requests inside one 20 ms window: one batch of 3 rows.
    let a = rows(&[[1.0, 2.0, 3.0], [0.5, 0.5, -4.0]]);
    let b = rows(&[[10.0, 0.0, 0.25]]);
    let mut answers = vec![];
    for t in [&a, &b] {
        let (entry, rx) = Entry::new(vec![t.clone()], t.rows(), vec![3].into_boxed_slice());
        model.batcher.submit(entry).expect("admitted");
        answers.push(rx);
    }
    let got_a = answers.remove(0).await.unwrap().expect("a answered");
    let got_b = answers.remove(0).await.unwrap().expect("b answered");
    assert_eq!(got_a.batch_rows, 3);
    assert_eq!(factory.batch_sizes(), vec![3]);

    let spec = session_spec(&model.config, 0);
    assert_eq!(
        got_a.outputs,
        fake_outputs(std::slice::from_ref(&a), &spec.declared_outputs).unwrap()
    );
    assert_eq!(got_a.outputs[0].data, TensorData::I64(vec![6, -3]));
    assert_eq!(
        got_a.outputs[1].data,
        TensorData::F32(vec![12.0, 12.0, -6.0, -6.0])
    );
    assert_eq!(got_b.outputs[0].data, TensorData::I64(vec![10]));
    assert_eq!(got_b.outputs[1].shape, vec![1, 2]);
    assert!(!Runtime::is_loaded(), "the fake needs no ONNX Runtime");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_whole_app_serves_on_the_fake() {
    let root = repository("app", &[("tab", TABULAR)]);
    let mut config = convoy::config::ServeConfig::defaults();
    config.model_repository = root.clone();
    config.ort_lib = Some("/nonexistent/libonnxruntime.so".into());
    let factory = FakeFactory::new().with_delay(Duration::from_millis(1), Duration::ZERO);
    assert_eq!(factory.describe().kind, "fake");
    let state = convoy::prepare_with(&config, Arc::new(factory)).expect("prepares");
    assert!(!state.server.cuda_available);
    let app = convoy::http::router(state);

    use tower::ServiceExt;
    let body = serde_json::json!({"inputs": [
        {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 1.0, 1.5]}
    ]});
    let request = axum::http::Request::post("/v2/models/tab/infer")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let outputs = answer["outputs"].as_array().expect("outputs");
    let by_name = |n: &str| outputs.iter().find(|o| o["name"] == n).unwrap().clone();
    assert_eq!(by_name("label")["data"], serde_json::json!([3]), "{answer}");
    assert_eq!(
        by_name("score")["data"],
        serde_json::json!([7.0, 7.0]),
        "{answer}"
    );
    assert!(!Runtime::is_loaded());
    let _ = std::fs::remove_dir_all(&root);
}
