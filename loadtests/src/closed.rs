//! Closed loop: N tasks, each sending its next request as soon as the previous one answers.
//!
//! This measures the throughput a server sustains with exactly N requests outstanding and
//! the latency at that throughput; it is the setting where dynamic batching has N requests
//! to coalesce. It cannot show queueing under an arrival rate the server can't keep up
//! with (clients simply slow down with it): that is the open loop's job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::{format_cpu, CpuMeter};
use crate::http::{send_one, Target};
use crate::stats::{format_errors, per_second, LatencySummary, Recorder};

/// Results at one concurrency level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClosedLevel {
    pub concurrency: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub ok: u64,
    pub error_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub requests_per_s: f64,
    pub rows_per_s: f64,
    pub latency: LatencySummary,
    /// CPU used by this load generator during the level, in % of one core.
    #[serde(default)]
    pub client_cpu_pct: Option<f64>,
}

/// A whole closed-loop run, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClosedReport {
    pub mode: String,
    pub url: String,
    pub rows_per_request: usize,
    pub client_threads: usize,
    pub levels: Vec<ClosedLevel>,
}

/// Runs one level: `warmup` unmeasured, then `duration` measured.
///
/// A request counts when it *completes* inside the measured window, the usual definition
/// of throughput; requests still in flight at the end are awaited (so the next level starts
/// clean) but not counted.
pub async fn run_level(
    client: &Client,
    target: &Arc<Target>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> ClosedLevel {
    let cpu = CpuMeter::start();
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let target = Arc::clone(target);
        tasks.spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = send_one(&client, &target).await;
                let done = Instant::now();
                if done >= measure_from && done <= end {
                    rec.record(done - sent, outcome);
                }
            }
            rec
        });
    }
    let mut total = Recorder::default();
    while let Some(rec) = tasks.join_next().await {
        // A panicking task is a bug in this tool, not a server error: surface it.
        total.merge(rec.expect("closed-loop task panicked"));
    }
    let ok = total.ok();
    let error_total = total.error_total();
    let requests_per_s = per_second(ok, duration);
    ClosedLevel {
        concurrency,
        warmup_s: warmup.as_secs_f64(),
        duration_s: duration.as_secs_f64(),
        ok,
        error_total,
        requests_per_s,
        rows_per_s: requests_per_s * target.rows_per_request as f64,
        latency: LatencySummary::from_nanos(&mut total.ok_latencies_ns),
        errors: total.errors,
        client_cpu_pct: cpu.percent_of_one_core(),
    }
}

/// One aligned line per level, then the error kinds if there were any.
pub fn print_level(l: &ClosedLevel) {
    println!(
        "c={:>5}  ok={:>9}  err={:>6}  req/s={:>10.1}  rows/s={:>11.1}  \
         p50={:>8.3}  p90={:>8.3}  p99={:>8.3}  max={:>8.3} ms  client cpu={}",
        l.concurrency,
        l.ok,
        l.error_total,
        l.requests_per_s,
        l.rows_per_s,
        l.latency.p50_ms,
        l.latency.p90_ms,
        l.latency.p99_ms,
        l.latency.max_ms,
        format_cpu(l.client_cpu_pct),
    );
    if !l.errors.is_empty() {
        println!("         errors: {}", format_errors(&l.errors));
    }
}
