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
use crate::prom::{window_figures, MetricFigure, Scraper};
use crate::stats::{format_errors, per_second, LatencySummary, Recorder, ValueSummary};

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
    /// Latency of every outcome, by status (`http_200`, `http_429`, `timeout`, ...).
    #[serde(default)]
    pub latency_by_status: BTreeMap<String, LatencySummary>,
    /// Convoy's timing headers of the successful requests (`queue_us`, `compute_us`,
    /// `pre_us`, `infer_us`, `post_us`, their sum `server_us`, and `batch_rows`).
    #[serde(default)]
    pub server_timing: BTreeMap<String, ValueSummary>,
    /// Server metrics over the measured window (with `--metrics-url`).
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricFigure>,
    /// Requests/s of each interleaved slice (with `--rounds` > 1), in run order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slice_rps: Vec<f64>,
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

/// The raw outcome of one slice of a level, mergeable with the level's other slices (the
/// interleaved comparisons measure each server in several slices).
#[derive(Default)]
pub struct Slice {
    rec: Recorder,
    measured: Duration,
    /// Client CPU × wall seconds, so slices average by their length.
    cpu_pct_s: Option<f64>,
    wall: Duration,
    /// Requests/s of each slice, in run order.
    slice_rps: Vec<f64>,
    metrics: BTreeMap<String, MetricFigure>,
}

impl Slice {
    pub fn merge(&mut self, other: Slice) {
        self.rec.merge(other.rec);
        self.measured += other.measured;
        self.cpu_pct_s = match (self.cpu_pct_s, other.cpu_pct_s) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.wall += other.wall;
        self.slice_rps.extend(other.slice_rps);
        for (series, f) in other.metrics {
            match self.metrics.get_mut(&series) {
                Some(mine) => mine.merge(&f),
                None => {
                    self.metrics.insert(series, f);
                }
            }
        }
    }

    /// The level's figures over all merged slices.
    pub fn summarise(
        mut self,
        concurrency: usize,
        warmup: Duration,
        rows_per_request: usize,
    ) -> ClosedLevel {
        let ok = self.rec.ok();
        let requests_per_s = per_second(ok, self.measured);
        let wall = self.wall.as_secs_f64();
        ClosedLevel {
            concurrency,
            warmup_s: warmup.as_secs_f64(),
            duration_s: self.measured.as_secs_f64(),
            ok,
            error_total: self.rec.error_total(),
            requests_per_s,
            rows_per_s: requests_per_s * rows_per_request as f64,
            latency: LatencySummary::from_nanos(&mut self.rec.ok_latencies_ns),
            latency_by_status: self.rec.take_by_status(),
            server_timing: self.rec.take_server(),
            errors: std::mem::take(&mut self.rec.errors),
            client_cpu_pct: self
                .cpu_pct_s
                .filter(|_| wall > 0.0)
                .map(|pct_s| pct_s / wall),
            metrics: self.metrics,
            slice_rps: if self.slice_rps.len() > 1 {
                self.slice_rps
            } else {
                Vec::new()
            },
        }
    }
}

/// Runs one slice of a level: `warmup` unmeasured, then `duration` measured.
///
/// A request counts when it *completes* inside the measured window, the usual definition
/// of throughput; requests still in flight at the end are awaited (so the next slice starts
/// clean) but not counted.
pub async fn run_slice(
    client: &Client,
    target: &Arc<Target>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    scraper: Option<&Scraper>,
) -> Slice {
    let cpu = CpuMeter::start();
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let scrape = async {
        match scraper {
            Some(s) => s.window(client, measure_from, end).await,
            None => Vec::new(),
        }
    };
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
                let reply = send_one(&client, &target).await;
                let done = Instant::now();
                if done >= measure_from && done <= end {
                    rec.record(done - sent, &reply);
                }
            }
            rec
        });
    }
    let collect = async {
        let mut total = Recorder::default();
        while let Some(rec) = tasks.join_next().await {
            // A panicking task is a bug in this tool, not a server error: surface it.
            total.merge(rec.expect("closed-loop task panicked"));
        }
        total
    };
    let (rec, pages) = tokio::join!(collect, scrape);
    let wall = start.elapsed();
    Slice {
        slice_rps: vec![per_second(rec.ok(), duration)],
        rec,
        measured: duration,
        cpu_pct_s: cpu
            .percent_of_one_core()
            .map(|pct| pct * wall.as_secs_f64()),
        wall,
        metrics: scraper.map_or_else(Default::default, |s| window_figures(&s.names, &pages)),
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
    print_server_side(&l.server_timing, &l.metrics);
}

/// The server-side figures of a level, when there are any: mean timing headers (µs) and
/// the scraped metrics.
pub fn print_server_side(
    timing: &BTreeMap<String, ValueSummary>,
    metrics: &BTreeMap<String, MetricFigure>,
) {
    if !timing.is_empty() {
        let parts: Vec<String> = timing
            .iter()
            .map(|(k, v)| format!("{k}={:.0}", v.mean))
            .collect();
        println!("         server (mean): {}", parts.join("  "));
    }
    for (series, f) in metrics {
        println!(
            "         {series}: mean={:.4} over {} {}",
            f.mean,
            f.samples,
            if f.kind == "gauge" {
                "samples"
            } else {
                "observations"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Reply;

    #[test]
    fn slices_merge_into_one_level() {
        let slice = |n: u64| {
            let mut rec = Recorder::default();
            for _ in 0..n {
                rec.record(
                    Duration::from_millis(2),
                    &Reply {
                        result: Ok(()),
                        status: "http_200".into(),
                        timing: Default::default(),
                    },
                );
            }
            Slice {
                rec,
                measured: Duration::from_secs(1),
                cpu_pct_s: Some(30.0),
                wall: Duration::from_secs(1),
                slice_rps: vec![n as f64],
                metrics: BTreeMap::new(),
            }
        };
        let mut a = slice(10);
        a.merge(slice(30));
        let l = a.summarise(4, Duration::from_secs(1), 2);
        assert_eq!((l.ok, l.duration_s), (40, 2.0));
        assert_eq!((l.requests_per_s, l.rows_per_s), (20.0, 40.0));
        assert_eq!(l.slice_rps, vec![10.0, 30.0]);
        assert_eq!(l.client_cpu_pct, Some(30.0));
        // A single slice keeps no per-slice list.
        assert!(slice(5)
            .summarise(1, Duration::ZERO, 1)
            .slice_rps
            .is_empty());
    }
}
