//! Test fixtures: results as the loops write them, from a default JSON document with the
//! fields a test cares about patched in (`json!` objects are merged key by key).

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::closed::{ClosedLevel, ClosedReport};
use crate::open::{OpenLevel, OpenReport};

/// `base` with `patch` merged into it (objects key by key, anything else replaced).
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

pub fn patched<T: DeserializeOwned>(mut base: Value, patch: Value) -> T {
    merge(&mut base, patch);
    serde_json::from_value(base).expect("fixture matches the type")
}

/// A latency summary: p50 (also the mean), p99, count; the max is twice the p99.
pub fn lat(p50: f64, p99: f64, count: u64) -> Value {
    json!({"count": count, "mean_ms": p50, "p50_ms": p50, "p90_ms": (p50 + p99) / 2.0,
        "p99_ms": p99, "max_ms": p99 * 2.0})
}

/// A value summary (server timing): mean (also the p50) and p99 (also the max).
pub fn vs(mean: f64, p99: f64) -> Value {
    json!({"count": 10, "mean": mean, "p50": mean, "p90": p99, "p99": p99, "max": p99})
}

/// A closed-loop level at c=1, 100 req/s for 10 s, p50 1 ms, p99 2 ms, then `patch`.
pub fn closed_level(patch: Value) -> ClosedLevel {
    let base = json!({"concurrency": 1, "warmup_s": 2.0, "duration_s": 10.0, "ok": 1000,
        "error_total": 0, "errors": {}, "requests_per_s": 100.0, "rows_per_s": 100.0,
        "latency": lat(1.0, 2.0, 10)});
    patched(base, patch)
}

/// An open-loop level: 1000 sent at 100 req/s over 10 s, all answered, then `patch`.
pub fn open_level(patch: Value) -> OpenLevel {
    let base = json!({"target_rate": 100.0, "warmup_s": 1.0, "duration_s": 10.0,
        "scheduled": 1000, "dropped": 0, "sent": 1000, "achieved_rate": 100.0, "ok": 1000,
        "error_total": 0, "errors": {}, "elapsed_s": 10.0, "requests_per_s": 100.0,
        "rows_per_s": 100.0, "latency": lat(1.0, 2.0, 1000), "send_lag": lat(0.0, 0.0, 0)});
    patched(base, patch)
}

pub fn closed(levels: Vec<ClosedLevel>) -> ClosedReport {
    let base = json!({"mode": "closed", "url": "http://x/", "rows_per_request": 1,
        "client_threads": 1, "levels": []});
    ClosedReport {
        levels,
        ..patched(base, json!({}))
    }
}

pub fn open(levels: Vec<OpenLevel>) -> OpenReport {
    let base = json!({"mode": "open", "url": "http://x/", "rows_per_request": 1,
        "client_threads": 1, "max_in_flight": 4096, "connections": 256, "levels": []});
    OpenReport {
        levels,
        ..patched(base, json!({}))
    }
}
