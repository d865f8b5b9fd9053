//! Prometheus metrics and request ids on a real server. Each test serves its own model
//! name: metrics are process-wide, and tests in this file run concurrently.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::*;

/// The value of the sample `name{labels}` (labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs `poke` (load, or nothing) and scrapes until `ok` holds for the metrics text,
/// for at most 15 s; returns the last text, for the caller to assert on.
async fn scrape_until<F: Future<Output = ()>>(
    s: &TestServer,
    mut poke: impl FnMut() -> F,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        poke().await;
        let text = s.scrape().await;
        if ok(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_is_exact_under_load_and_returns_to_zero() {
    // Batches of 21 and a 10 s window: 20 single-row requests wait in the queue until
    // a 21st fills the batch, however slowly they arrive.
    let repo = mlp_repository("depth", &[("depth", Some(&mlp_toml(21, 10_000_000, 4096)))]);
    let s = TestServer::start(&repo).await;
    let (rows, _) = reference();
    let send = |i: usize| {
        let client = s.client.clone();
        let url = s.url("/v2/models/depth/infer");
        let body = mlp_body(&rows[i % 16..i % 16 + 1]);
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    };
    let mut tasks: Vec<_> = (0..20).map(send).collect();
    let depth = "convoy_queue_depth_rows{model=\"depth\"}";
    let in_flight = "convoy_requests_in_flight{model=\"depth\"}";
    let during = scrape_until(
        &s,
        || async {},
        |t| sample(t, depth) == Some(20.0) && sample(t, in_flight) == Some(20.0),
    )
    .await;
    assert_eq!(sample(&during, depth), Some(20.0), "{during}");
    assert_eq!(sample(&during, in_flight), Some(20.0), "{during}");
    tasks.push(send(20));
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let after = s.scrape().await;
    assert_eq!(
        sample(&after, "convoy_queue_depth_rows{model=\"depth\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&after, "convoy_requests_in_flight{model=\"depth\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&after, "convoy_queue_capacity_rows{model=\"depth\"}"),
        Some(4096.0)
    );
    assert_eq!(
        sample(
            &after,
            "convoy_requests_total{model=\"depth\",outcome=\"success\"}"
        ),
        Some(21.0)
    );
    assert_eq!(
        sample(&after, "convoy_batch_size_rows_count{model=\"depth\"}"),
        Some(1.0),
        "one batch of 21"
    );
    assert_eq!(
        sample(&after, "convoy_batch_size_rows_sum{model=\"depth\"}"),
        Some(21.0)
    );
    for stage in ["queue", "preprocess", "inference", "postprocess", "request"] {
        let name = format!("convoy_{stage}_duration_seconds_count{{model=\"depth\"}}");
        assert!(sample(&after, &name).is_some(), "{name} missing");
    }
    assert_eq!(
        sample(&after, "convoy_model_ready{model=\"depth\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "convoy_model_device{model=\"depth\",device=\"cpu\"}"
        ),
        Some(1.0)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_counted_by_kind_and_unknown_models_share_one_label() {
    let repo = mlp_repository("outcomes", &[("outcomes", None)]);
    let s = TestServer::start(&repo).await;
    let bad = serde_json::json!({"inputs": [{"name": "nope", "shape": [1, 10], "datatype": "FP32", "data": vec![0; 10]}]});
    assert_eq!(s.post("/v2/models/outcomes/infer", &bad).await.0, 422);
    assert_eq!(
        s.post_raw("/v2/models/outcomes/infer", "{").await.status(),
        400
    );
    assert_eq!(
        s.post("/v2/models/no-such-model-xyz/infer", &bad).await.0,
        404
    );
    let text = s.scrape().await;
    assert_eq!(
        sample(
            &text,
            "convoy_requests_total{model=\"outcomes\",outcome=\"unprocessable\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "convoy_requests_total{model=\"outcomes\",outcome=\"bad_request\"}"
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "convoy_requests_total{model=\"unknown\",outcome=\"not_found\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        !text.contains("no-such-model-xyz"),
        "an unknown name became a label value"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_busy_ratio_is_sampled_per_instance() {
    let repo = mlp_repository("busy", &[("busy", None), ("idle", None)]);
    let s = TestServer::start(&repo).await;
    let (rows, _) = reference();
    let busy = "convoy_device_busy_ratio{model=\"busy\",worker=\"0\"}";
    let idle = "convoy_device_busy_ratio{model=\"idle\",worker=\"0\"}";
    // The ratio is sampled once a second over the second before: keep the worker busy
    // until a sample saw it working.
    let text = scrape_until(
        &s,
        || async {
            for _ in 0..10 {
                assert_eq!(
                    s.post("/v2/models/busy/infer", &mlp_body(&rows)).await.0,
                    200
                );
            }
        },
        |t| sample(t, busy).is_some_and(|r| r > 0.0),
    )
    .await;
    let ratio = sample(&text, busy).expect("busy ratio");
    assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
    // The other model's worker never ran: its series exists, at zero.
    assert_eq!(sample(&text, idle), Some(0.0), "{text}");
    s.stop().await;
}

/// GPU metrics come from NVML where it is present, and are absent (no error, no zero
/// series) where it is not, as on a CPU host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_metrics_exist_exactly_where_nvml_does() {
    let repo = mlp_repository("gpu", &[("gpu", None)]);
    let s = TestServer::start(&repo).await;
    let gpus = nvml_wrapper::Nvml::init()
        .and_then(|n| n.device_count())
        .unwrap_or(0);
    // With NVML the sampler publishes at once, in its own thread: wait for it. Without,
    // it never starts, so there is nothing to wait for.
    let total_series = "convoy_gpu_memory_total_bytes{gpu=\"0\"}";
    let text = scrape_until(
        &s,
        || async {},
        |t| gpus == 0 || sample(t, total_series).is_some(),
    )
    .await;
    let total = sample(&text, total_series);
    if gpus == 0 {
        assert!(!text.contains("convoy_gpu_"), "GPU series without NVML");
    } else {
        assert!(total.is_some_and(|b| b > 0.0), "no GPU memory series");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_generated() {
    let s = TestServer::start(&shipped_models()).await;
    let r = s
        .client
        .get(s.url("/v2/health/live"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let r = s.client.get(s.url("/v2/health/live")).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(generated.len() >= 8, "{generated}");
    let r = s
        .client
        .get(s.url("/v2/health/live"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
    s.stop().await;
}
