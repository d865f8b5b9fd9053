//! Every metric Convoy exports, by name, with the helpers that record them.
//! Names: `convoy_<thing>_<unit>`; labels: `model` and bounded outcome kinds only.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "convoy_requests_total";
pub const REQUEST_DURATION: &str = "convoy_request_duration_seconds";
pub const QUEUE_DURATION: &str = "convoy_queue_duration_seconds";
pub const INFERENCE_DURATION: &str = "convoy_inference_duration_seconds";
pub const BATCH_SIZE: &str = "convoy_batch_size_rows";
pub const QUEUE_DEPTH: &str = "convoy_queue_depth_rows";
pub const CANCELLED_TOTAL: &str = "convoy_cancelled_requests_total";
pub const MODEL_READY: &str = "convoy_model_ready";

/// Latency buckets for inference: 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];
/// Batch sizes: powers of two up to 1024 rows.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the process-wide recorder once and returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS)
                })
                .expect("static bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed (an embedding program's): then
            // Convoy's metrics go there and `/metrics` shows what this recorder saw.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Outcome label of a finished request (bounded set).
pub fn request(model: &str, outcome: &'static str, total: Duration) {
    counter!(REQUESTS_TOTAL, "model" => model.to_string(), "outcome" => outcome).increment(1);
    if outcome == "success" {
        histogram!(REQUEST_DURATION, "model" => model.to_string()).record(total.as_secs_f64());
    }
}

pub fn batch(model: &str, rows: usize, compute: Duration, queue_waits: &[Duration]) {
    histogram!(BATCH_SIZE, "model" => model.to_string()).record(rows as f64);
    histogram!(INFERENCE_DURATION, "model" => model.to_string()).record(compute.as_secs_f64());
    let q = histogram!(QUEUE_DURATION, "model" => model.to_string());
    for w in queue_waits {
        q.record(w.as_secs_f64());
    }
}

pub fn queue_depth(model: &str, rows: usize) {
    gauge!(QUEUE_DEPTH, "model" => model.to_string()).set(rows as f64);
}

pub fn cancelled(model: &str, n: usize) {
    counter!(CANCELLED_TOTAL, "model" => model.to_string()).increment(n as u64);
}

pub fn model_ready(model: &str, ready: bool) {
    gauge!(MODEL_READY, "model" => model.to_string()).set(if ready { 1.0 } else { 0.0 });
}
