//! Startup: what a missing runtime or a bad repository does, through the real binary
//! (one clear line, exit status 1, no panic) or in process.

mod common;

use common::*;

#[test]
fn missing_runtime_library_names_the_setup_command() {
    let (code, err, _) = convoy_serve(&["--ort-lib", "/nonexistent/libonnxruntime.so"]);
    assert_eq!(code, 1);
    one_error_line(&err);
    assert!(
        err.contains("/nonexistent/libonnxruntime.so") && err.contains("deploy/setup.sh"),
        "{err}"
    );
}

#[test]
fn bad_config_names_file_and_field() {
    let toml = mlp_toml(8, 100, 64).replace("dims = [10]", "dims = [\"ten\"]");
    let repo = mlp_repository("badtoml", &[("mlp", Some(&toml))]);
    let lib = ort_lib();
    let (code, err, _) = convoy_serve(&[
        "--model-repository",
        repo.to_str().unwrap(),
        "--ort-lib",
        lib.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    one_error_line(&err);
    assert!(
        err.contains("mlp/model.toml") && err.contains("dims"),
        "{err}"
    );
}

#[test]
fn config_that_disagrees_with_the_graph_names_file_and_field() {
    let toml = mlp_toml(8, 100, 64).replace("dims = [10]", "dims = [9]");
    let repo = mlp_repository("mismatch", &[("mlp", Some(&toml))]);
    let lib = ort_lib();
    let (code, err, _) = convoy_serve(&[
        "--model-repository",
        repo.to_str().unwrap(),
        "--ort-lib",
        lib.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    one_error_line(&err);
    assert!(
        err.contains("mlp/model.toml") && err.contains("input[0].dims") && err.contains("[10]"),
        "{err}"
    );
}

#[test]
fn explicit_cuda_without_a_cuda_runtime_fails_fast() {
    let lib = ort_lib();
    let (code, err, _) = convoy_serve(&[
        "--device",
        "cuda",
        "--model-repository",
        shipped_models().to_str().unwrap(),
        "--ort-lib",
        lib.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    one_error_line(&err);
    assert!(err.contains("cuda:0") && err.contains("CUDA"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_fails_to_load_leaves_the_others_serving() {
    let repo = mlp_repository("broken", &[("good", None), ("broken", None)]);
    std::fs::write(repo.join("broken/model.onnx"), b"not an onnx graph").unwrap();
    let s = TestServer::start(&repo).await;
    assert_eq!(s.get("/v2/health/ready").await.0, 503);
    assert_eq!(s.get("/v2/models/broken/ready").await.0, 503);
    assert_eq!(s.get("/v2/models/good/ready").await.0, 200);
    let (rows, _) = reference();
    let (status, v) = s
        .post("/v2/models/broken/infer", &mlp_body(&rows[..1]))
        .await;
    assert_eq!(status, 503);
    assert!(
        v["error"].as_str().unwrap().contains("failed to load"),
        "{v}"
    );
    assert_eq!(
        s.post("/v2/models/good/infer", &mlp_body(&rows[..1]))
            .await
            .0,
        200
    );
    let (_, meta) = s.get("/v2").await;
    assert_eq!(meta["device"]["models"]["broken"], "unavailable");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queued_requests() {
    // A 10 s window: the request is still queued when shutdown starts, and is answered
    // (draining runs what is queued without waiting for the window).
    let repo = mlp_repository("drain", &[("mlp", Some(&mlp_toml(8, 10_000_000, 64)))]);
    let s = TestServer::start(&repo).await;
    let (rows, _) = reference();
    let pending = {
        let client = s.client.clone();
        let url = s.url("/v2/models/mlp/infer");
        let body = mlp_body(&rows[..1]);
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    };
    wait_for("the request to be queued", || async {
        s.queued_rows("mlp").await == 1
    })
    .await;
    s.stop().await;
    assert_eq!(pending.await.unwrap(), 200);
}
