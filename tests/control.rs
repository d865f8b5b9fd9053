//! Model control on a real server: repository index, unload, load, and reload under load
//! with no request failing because of the swap.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_unload_and_load() {
    let repo = mlp_repository("control", &[("alpha", None), ("beta", None)]);
    let s = TestServer::start(&repo).await;
    let (rows, want) = reference();
    let (status, index) = s.post("/v2/repository/index", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        index,
        json!([{"name": "alpha", "version": "1", "state": "READY"}, {"name": "beta", "version": "1", "state": "READY"}])
    );
    assert_eq!(
        s.post("/v2/repository/models/beta/unload", &json!({}))
            .await
            .0,
        200
    );
    let (_, index) = s.post("/v2/repository/index", &json!({})).await;
    assert_eq!(
        index[1],
        json!({"name": "beta", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"})
    );
    assert_eq!(
        s.post("/v2/models/beta/infer", &mlp_body(&rows[..1]))
            .await
            .0,
        404
    );
    assert_eq!(s.get("/v2/models/beta/ready").await.0, 404);
    // Unloading what is not loaded, loading what is not there.
    assert_eq!(
        s.post("/v2/repository/models/beta/unload", &json!({}))
            .await
            .0,
        404
    );
    let (status, v) = s.post("/v2/repository/models/gamma/load", &json!({})).await;
    assert_eq!(status, 404, "{v}");
    // The others kept serving; beta comes back.
    assert_eq!(
        s.post("/v2/models/alpha/infer", &mlp_body(&rows[..1]))
            .await
            .0,
        200
    );
    assert_eq!(
        s.post("/v2/repository/models/beta/load", &json!({}))
            .await
            .0,
        200
    );
    let (status, v) = s.post("/v2/models/beta/infer", &mlp_body(&rows[..1])).await;
    assert_eq!(status, 200);
    assert!((output_data(&v)[0] - want[0]).abs() < 1e-3);
    // A config broken on disk: the load is refused with file and field, the running
    // model is untouched.
    std::fs::write(
        repo.join("beta/model.toml"),
        mlp_toml(8, 100, 64).replace("FP32", "FP99"),
    )
    .unwrap();
    let (status, v) = s.post("/v2/repository/models/beta/load", &json!({})).await;
    assert_eq!(status, 422, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("beta/model.toml") && msg.contains("datatype"),
        "{msg}"
    );
    assert_eq!(
        s.post("/v2/models/beta/infer", &mlp_body(&rows[..1]))
            .await
            .0,
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing() {
    // A window long enough that requests are always queued when a swap happens.
    let repo = mlp_repository("reload", &[("hot", Some(&mlp_toml(8, 3_000, 4096)))]);
    let s = TestServer::start(&repo).await;
    let (rows, want) = reference();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..8usize {
        let client = s.client.clone();
        let url = s.url("/v2/models/hot/infer");
        let (stop, answered) = (stop.clone(), answered.clone());
        let row = rows[c].clone();
        let expect = want[c];
        clients.push(tokio::spawn(async move {
            let mut ok = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(&url)
                    .json(&mlp_body(std::slice::from_ref(&row)))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                assert_eq!(status, 200, "client {c}: {v}");
                assert!((output_data(&v)[0] - expect).abs() < 1e-3);
                ok += 1;
                answered.fetch_add(1, Ordering::Relaxed);
            }
            ok
        }));
    }
    // Each swap happens while requests flow: 20 more answered before each, and after.
    let more_answered = |n: usize| {
        let answered = answered.clone();
        let from = answered.load(Ordering::Relaxed);
        wait_for("more requests to be answered", move || {
            std::future::ready(answered.load(Ordering::Relaxed) >= from + n)
        })
    };
    for _ in 0..6 {
        more_answered(20).await;
        let (status, v) = s.post("/v2/repository/models/hot/load", &json!({})).await;
        assert_eq!(status, 200, "{v}");
    }
    more_answered(20).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    assert!(total > 50, "only {total} requests ran");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_bodies_that_are_not_json_get_400() {
    let repo = mlp_repository("control-bodies", &[("gamma", None)]);
    let s = TestServer::start(&repo).await;
    for path in [
        "/v2/repository/index",
        "/v2/repository/models/gamma/load",
        "/v2/repository/models/gamma/unload",
    ] {
        let r = s.post_raw(path, "{\"parameters\": ").await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{path}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("invalid request body"),
            "{v}"
        );
    }
    // Still served: nothing was unloaded.
    let (status, _) = s.get("/v2/models/gamma/ready").await;
    assert_eq!(status, 200);
    s.stop().await;
}
