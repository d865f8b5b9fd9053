//! Open loop: requests arrive on a Poisson schedule at a fixed rate, whether or not earlier
//! ones have answered.
//!
//! Latency is measured from each request's *intended* send time, not from when the client
//! got round to sending it. A closed loop (or an open loop timed from the actual send)
//! stops offering load exactly while the server stalls, so the stall's queueing delay is
//! never observed ("coordinated omission"). Timing from the schedule charges that delay to
//! the server, as a real user arriving at that instant would experience it.
//!
//! The tokio timer has millisecond resolution, so requests due within the same millisecond
//! leave together; the resulting client-side lag is reported separately (`send_lag`) so it
//! can be told apart from server latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::arrivals::PoissonArrivals;
use crate::cpu::{format_cpu, CpuMeter};
use crate::http::{send_one, Target};
use crate::stats::{format_errors, per_second, LatencySummary, Recorder};

/// Results at one offered rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenLevel {
    /// Requested arrival rate (req/s).
    pub target_rate: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Arrivals scheduled inside the measured window (sent + dropped).
    pub scheduled: u64,
    /// Arrivals not sent because `max_in_flight` requests were already outstanding.
    pub dropped: u64,
    pub sent: u64,
    /// Arrivals per second actually sent in the window (the achieved offered rate).
    pub achieved_rate: f64,
    pub ok: u64,
    pub error_total: u64,
    pub errors: BTreeMap<String, u64>,
    /// Window start to the last measured completion (at least `duration_s`).
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    pub rows_per_s: f64,
    /// Intended send time to response, successful requests only.
    pub latency: LatencySummary,
    /// Intended to actual send time: the client's own scheduling delay.
    pub send_lag: LatencySummary,
    /// CPU used by this load generator during the level, in % of one core.
    #[serde(default)]
    pub client_cpu_pct: Option<f64>,
}

/// A whole open-loop run, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenReport {
    pub mode: String,
    pub url: String,
    pub rows_per_request: usize,
    pub client_threads: usize,
    pub max_in_flight: usize,
    pub levels: Vec<OpenLevel>,
}

/// What each request reports back to the collector.
struct Sample {
    latency: Duration,
    lag: Duration,
    done: Instant,
    outcome: Result<(), String>,
}

/// Settings of one open-loop level.
pub struct OpenParams {
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_in_flight: usize,
    pub seed: u64,
}

/// Runs one rate: arrivals during `warmup` are sent but not measured; every arrival in the
/// measured window is awaited, however late it completes.
pub async fn run_level(client: &Client, target: &Arc<Target>, p: &OpenParams) -> OpenLevel {
    let cpu = CpuMeter::start();
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut arrivals = PoissonArrivals::new(p.rate, p.seed);
    let horizon = p.warmup + p.duration;
    let start = Instant::now();
    let window_start = start + p.warmup;
    let (mut scheduled, mut dropped) = (0u64, 0u64);
    let mut offset = Duration::ZERO;
    loop {
        offset += arrivals.next_gap();
        if offset >= horizon {
            break;
        }
        let intended = start + offset;
        if intended > Instant::now() {
            sleep_until(intended).await;
        }
        let measured = offset >= p.warmup;
        scheduled += u64::from(measured);
        if in_flight.load(Ordering::Relaxed) >= p.max_in_flight {
            dropped += u64::from(measured);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, target, tx, in_flight) = (
            client.clone(),
            Arc::clone(target),
            tx.clone(),
            Arc::clone(&in_flight),
        );
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = send_one(&client, &target).await;
            let done = Instant::now();
            in_flight.fetch_sub(1, Ordering::Relaxed);
            if measured {
                // The collector only goes away once every sender is dropped.
                let _ = tx.send(Sample {
                    latency: done - intended,
                    lag: sent - intended,
                    done,
                    outcome,
                });
            }
        });
    }
    drop(tx);

    let mut rec = Recorder::default();
    let mut lags = Vec::new();
    let mut last_done = window_start + p.duration;
    while let Some(s) = rx.recv().await {
        last_done = last_done.max(s.done);
        lags.push(u64::try_from(s.lag.as_nanos()).unwrap_or(u64::MAX));
        rec.record(s.latency, s.outcome);
    }
    let elapsed = last_done - window_start;
    let ok = rec.ok();
    let sent = scheduled - dropped;
    let requests_per_s = per_second(ok, elapsed);
    OpenLevel {
        target_rate: p.rate,
        warmup_s: p.warmup.as_secs_f64(),
        duration_s: p.duration.as_secs_f64(),
        scheduled,
        dropped,
        sent,
        achieved_rate: per_second(sent, p.duration),
        ok,
        error_total: rec.error_total(),
        elapsed_s: elapsed.as_secs_f64(),
        requests_per_s,
        rows_per_s: requests_per_s * target.rows_per_request as f64,
        latency: LatencySummary::from_nanos(&mut rec.ok_latencies_ns),
        send_lag: LatencySummary::from_nanos(&mut lags),
        errors: rec.errors,
        client_cpu_pct: cpu.percent_of_one_core(),
    }
}

/// One aligned line per rate, then the error kinds if there were any.
pub fn print_level(l: &OpenLevel) {
    println!(
        "rate={:>9.1}  sent/s={:>9.1}  drop={:>6}  ok={:>9}  err={:>6}  req/s={:>10.1}  \
         rows/s={:>11.1}  p50={:>8.3}  p90={:>8.3}  p99={:>8.3}  max={:>8.3} ms  \
         (send lag p99={:.3} ms, client cpu={})",
        l.target_rate,
        l.achieved_rate,
        l.dropped,
        l.ok,
        l.error_total,
        l.requests_per_s,
        l.rows_per_s,
        l.latency.p50_ms,
        l.latency.p90_ms,
        l.latency.p99_ms,
        l.latency.max_ms,
        l.send_lag.p99_ms,
        format_cpu(l.client_cpu_pct),
    );
    if !l.errors.is_empty() {
        println!("         errors: {}", format_errors(&l.errors));
    }
}
