//! The scheduler under pressure on a real server: deadlines, priorities' validation, the
//! latency-target window and several instances.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The value of the sample `name{labels}` (labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `ok` holds for the metrics text, at most 15 s; returns the last text,
/// for the caller to assert on.
async fn scrape_until(s: &TestServer, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = s.scrape().await;
        if ok(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    // A 10 s window: the request would wait 10 s; its deadline is 60 ms.
    let repo = mlp_repository(
        "deadline",
        &[("deadline", Some(&with_batching(10_000_000, "")))],
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
    // Answered at its deadline, not after the window: half the window is slack enough
    // for any machine.
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
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
    // The handler's own timer may answer first on a loaded machine; the scheduler
    // still takes the entry out (and counts it) at its deadline, moments later.
    let expired = "convoy_expired_requests_total{model=\"deadline\"}";
    let metrics = scrape_until(&s, |t| sample(t, expired) == Some(2.0)).await;
    assert_eq!(sample(&metrics, expired), Some(2.0), "{metrics}");
    // Taken out of the queue, not run: the queue is empty and no batch ever ran.
    let (_, stats) = s.get("/v2/models/deadline/stats").await;
    let m = &stats["model_stats"][0];
    assert_eq!(m["convoy"]["queued_rows"], 0, "{m}");
    assert_eq!(
        m["execution_count"], 0,
        "an expired request reached the device"
    );
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
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let client = s.client.clone();
            let url = s.url("/v2/models/slo/infer");
            let body = mlp_body(&rows[i..i + 1]);
            tasks.push(tokio::spawn(async move {
                let r = client.post(url).json(&body).send().await.unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap();
                (i, status, v)
            }));
        }
        for t in tasks {
            let (i, status, v) = t.await.unwrap();
            assert_eq!(status, 200, "round {round}: {v}");
            assert!((output_data(&v)[0] - want[i]).abs() < 1e-3);
        }
    }
    // That the window keeps the target is the policy's unit tests' to show, on a
    // hand-made clock; wall-clock latency here would measure the machine's load.
    let (_, stats) = s.get("/v2/models/slo/stats").await;
    let m = &stats["model_stats"][0];
    let cost = &m["convoy"]["batch_cost"];
    // Every batch taught the cost.
    assert_eq!(cost["samples"], m["execution_count"], "{m}");
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
    // Both workers ran batches: while requests keep coming, a busy-ratio sample (once
    // a second, over the second before) sees each of them working.
    let ratio = |t: &str, w: &str| {
        sample(
            t,
            &format!("convoy_device_busy_ratio{{model=\"inst\",worker=\"{w}\"}}"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let wave: Vec<_> = (0..8usize)
            .map(|i| {
                let client = s.client.clone();
                let url = s.url("/v2/models/inst/infer");
                let body = mlp_body(&rows[i..i + 1]);
                tokio::spawn(
                    async move { client.post(url).json(&body).send().await.unwrap().status() },
                )
            })
            .collect();
        for t in wave {
            assert_eq!(t.await.unwrap(), 200);
        }
        let text = s.scrape().await;
        let both = ["0", "1"]
            .iter()
            .all(|w| ratio(&text, w).is_some_and(|r| r > 0.0));
        if both || Instant::now() > deadline {
            break text;
        }
    };
    for w in ["0", "1"] {
        let r = ratio(&metrics, w);
        assert!(
            r.is_some_and(|r| r > 0.0),
            "worker {w} never ran a batch: {r:?}"
        );
    }
    s.stop().await;
}
