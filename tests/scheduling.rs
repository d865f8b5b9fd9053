//! The scheduler under pressure on a real server: deadlines, priorities' validation, the
//! latency-target window and several instances.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// An MLP config with batches of 8, a window of `delay_us` and `extra` lines in its
/// [dynamic_batching] table.
fn with_batching(delay_us: u64, extra: &str) -> String {
    mlp_toml(8, delay_us, 64).replace(
        "max_queue_size = 64",
        &format!("max_queue_size = 64\n{extra}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_requests_get_504_at_their_deadline_and_never_run() {
    // A 1 s window: the request would wait 1 s; its deadline is 60 ms.
    let repo = mlp_repository(
        "deadline",
        &[("deadline", Some(&with_batching(1_000_000, "")))],
    );
    let s = TestServer::start(&repo).await;
    let (rows, _) = reference();
    let mut body = mlp_body(&rows[..1]);
    body["parameters"] = json!({"timeout": 60_000});
    let t0 = Instant::now();
    let (status, v) = s.post("/v2/models/deadline/infer", &body).await;
    let took = t0.elapsed();
    assert_eq!(status, 504, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("deadline passed"),
        "{v}"
    );
    assert!(took < Duration::from_millis(500), "answered after {took:?}");
    // The header form, in milliseconds.
    let r = s
        .client
        .post(s.url("/v2/models/deadline/infer"))
        .header("x-convoy-timeout-ms", "40")
        .json(&mlp_body(&rows[..1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let (_, stats) = s.get("/v2/models/deadline/stats").await;
    assert_eq!(
        stats["model_stats"][0]["execution_count"], 0,
        "an expired request reached the device"
    );
    // The handler's own timer may answer first on a loaded machine; the scheduler
    // still takes the entry out (and counts it) at its deadline, moments later.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = s.scrape().await;
        if metrics.contains("convoy_expired_requests_total{model=\"deadline\"} 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metrics.contains("convoy_expired_requests_total{model=\"deadline\"} 2"),
        "{metrics}"
    );
    let (_, stats) = s.get("/v2/models/deadline/stats").await;
    assert_eq!(stats["model_stats"][0]["execution_count"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_levels_are_validated() {
    let repo = mlp_repository(
        "prio",
        &[("prio", Some(&with_batching(0, "priority_levels = 2")))],
    );
    let s = TestServer::start(&repo).await;
    let (rows, want) = reference();
    for level in [0, 1, 2] {
        let mut body = mlp_body(&rows[..1]);
        body["parameters"] = json!({"priority": level});
        let (status, v) = s.post("/v2/models/prio/infer", &body).await;
        assert_eq!(status, 200, "{v}");
        assert!((output_data(&v)[0] - want[0]).abs() < 1e-3);
    }
    let mut body = mlp_body(&rows[..1]);
    body["parameters"] = json!({"priority": 3});
    let (status, v) = s.post("/v2/models/prio/infer", &body).await;
    assert_eq!(status, 422);
    assert!(v["error"].as_str().unwrap().contains("1..=2"), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_target_learns_the_batch_cost_and_keeps_the_target() {
    let toml = with_batching(0, "latency_target_ms = 40.0");
    let repo = mlp_repository("slo", &[("slo", Some(&toml))]);
    let s = TestServer::start(&repo).await;
    let (rows, want) = reference();
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let client = s.client.clone();
            let url = s.url("/v2/models/slo/infer");
            let body = mlp_body(&rows[i..i + 1]);
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let r = client.post(url).json(&body).send().await.unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                (i, status, v, t0.elapsed())
            }));
        }
        for t in tasks {
            let (i, status, v, took) = t.await.unwrap();
            assert_eq!(status, 200, "round {round}: {v}");
            assert!((output_data(&v)[0] - want[i]).abs() < 1e-3);
            worst = worst.max(took);
        }
    }
    // 40 ms target; generous slack for a loaded 2-core test machine.
    assert!(
        worst < Duration::from_millis(400),
        "worst latency {worst:?}"
    );
    let (_, stats) = s.get("/v2/models/slo/stats").await;
    let cost = &stats["model_stats"][0]["convoy"]["batch_cost"];
    assert!(cost["samples"].as_u64().unwrap() >= 1, "{cost}");
    assert!(cost["per_unit_seconds"].as_f64().unwrap() >= 0.0);
    let sizes = stats["model_stats"][0]["batch_stats"].as_array().unwrap();
    assert!(
        sizes.iter().any(|b| b["batch_size"].as_u64().unwrap() > 1),
        "the window never grew a batch: {sizes:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_queue() {
    let toml = format!("{}\n[instances]\ncount = 2\n", mlp_toml(4, 200, 4096));
    let repo = mlp_repository("instances", &[("inst", Some(&toml))]);
    let s = TestServer::start(&repo).await;
    let (_, config) = s.get("/v2/models/inst/config").await;
    assert_eq!(config["instance_group"][0]["count"], 2);
    let (rows, want) = reference();
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let client = s.client.clone();
        let url = s.url("/v2/models/inst/infer");
        let body = mlp_body(&rows[i % 16..i % 16 + 1]);
        tasks.push(tokio::spawn(async move {
            let v: Value = client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (i, v)
        }));
    }
    for t in tasks {
        let (i, v) = t.await.unwrap();
        assert!((output_data(&v)[0] - want[i % 16]).abs() < 1e-3, "{v}");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics = s.scrape().await;
    for instance in ["0", "1"] {
        let series = format!("convoy_device_busy_ratio{{model=\"inst\",worker=\"{instance}\"}}");
        assert!(metrics.contains(&series), "{series} missing");
    }
    s.stop().await;
}
