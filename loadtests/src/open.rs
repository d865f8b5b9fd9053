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
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep_until, Instant};

use crate::arrivals::PoissonArrivals;
use crate::cpu::{format_cpu, CpuMeter};
use crate::http::Reply;
use crate::http::{send_one, Target};
use crate::stats::{format_errors, per_second, LatencySummary, Recorder, ValueSummary};

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
    /// Intended send time to the request's task starting: the client's own scheduling delay.
    pub send_lag: LatencySummary,
    /// Time waiting for one of the `connections` to be free (server slower than the
    /// arrivals): part of the latency, shown apart.
    #[serde(default)]
    pub connection_wait: LatencySummary,
    /// CPU used by this load generator during the level, in % of one core.
    #[serde(default)]
    pub client_cpu_pct: Option<f64>,
    /// Intended send time to response, by outcome (`http_200`, `http_429`, `timeout`, ...).
    #[serde(default)]
    pub latency_by_status: BTreeMap<String, LatencySummary>,
    /// Actual send time to response, by outcome: the server's part, without the client's
    /// scheduling lag nor the wait for a free connection.
    #[serde(default)]
    pub service_by_status: BTreeMap<String, LatencySummary>,
    /// Convoy's timing headers of the successful requests (see the closed loop).
    #[serde(default)]
    pub server_timing: BTreeMap<String, ValueSummary>,
}

/// A whole open-loop run, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenReport {
    pub mode: String,
    pub url: String,
    pub rows_per_request: usize,
    pub client_threads: usize,
    pub max_in_flight: usize,
    #[serde(default)]
    pub connections: usize,
    pub levels: Vec<OpenLevel>,
}

/// What each request reports back to the collector.
struct Sample {
    /// Intended send time to response.
    latency: Duration,
    /// Intended send time to the task starting (the client's scheduling delay).
    lag: Duration,
    /// Task start to holding a connection (all `connections` were busy meanwhile).
    wait: Duration,
    done: Instant,
    reply: Reply,
}

/// Settings of one open-loop level.
pub struct OpenParams {
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_in_flight: usize,
    /// Connections on the wire: an arrival finding all of them busy waits for one (and
    /// the wait counts in its latency, which starts at the intended send time).
    pub connections: usize,
    pub seed: u64,
}

/// The raw outcome of one slice of a level, mergeable with other slices of the same
/// level (the interleaved comparison measures each config in several slices).
#[derive(Default)]
pub struct Slice {
    rec: Recorder,
    /// The same outcomes timed from the actual send (only `by_status_ns` is used).
    service: Recorder,
    lags: Vec<u64>,
    waits: Vec<u64>,
    scheduled: u64,
    dropped: u64,
    measured: Duration,
    elapsed: Duration,
    /// Client CPU × wall seconds, so slices average by their length.
    cpu_pct_s: Option<f64>,
    wall: Duration,
}

impl Slice {
    pub fn merge(&mut self, other: Slice) {
        self.rec.merge(other.rec);
        self.service.merge(other.service);
        self.lags.extend(other.lags);
        self.waits.extend(other.waits);
        self.scheduled += other.scheduled;
        self.dropped += other.dropped;
        self.measured += other.measured;
        self.elapsed += other.elapsed;
        self.cpu_pct_s = match (self.cpu_pct_s, other.cpu_pct_s) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.wall += other.wall;
    }

    /// The level's figures over all merged slices.
    pub fn summarise(mut self, p: &OpenParams, rows_per_request: usize) -> OpenLevel {
        let ok = self.rec.ok();
        let sent = self.scheduled - self.dropped;
        let requests_per_s = per_second(ok, self.elapsed);
        let wall = self.wall.as_secs_f64();
        OpenLevel {
            target_rate: p.rate,
            warmup_s: p.warmup.as_secs_f64(),
            duration_s: self.measured.as_secs_f64(),
            scheduled: self.scheduled,
            dropped: self.dropped,
            sent,
            achieved_rate: per_second(sent, self.measured),
            ok,
            error_total: self.rec.error_total(),
            elapsed_s: self.elapsed.as_secs_f64(),
            requests_per_s,
            rows_per_s: requests_per_s * rows_per_request as f64,
            latency: LatencySummary::from_nanos(&mut self.rec.ok_latencies_ns),
            send_lag: LatencySummary::from_nanos(&mut self.lags),
            connection_wait: LatencySummary::from_nanos(&mut self.waits),
            latency_by_status: self.rec.take_by_status(),
            service_by_status: self.service.take_by_status(),
            server_timing: self.rec.take_server(),
            errors: std::mem::take(&mut self.rec.errors),
            client_cpu_pct: self
                .cpu_pct_s
                .filter(|_| wall > 0.0)
                .map(|pct_s| pct_s / wall),
        }
    }
}

/// One slice of a rate: arrivals during `p.warmup` are sent but not measured; every
/// arrival in the measured `p.duration` is awaited, however late it completes.
pub async fn run_slice(client: &Client, target: &Arc<Target>, p: &OpenParams) -> Slice {
    let cpu = CpuMeter::start();
    let wall_start = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let wire = Arc::new(Semaphore::new(p.connections.max(1)));
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
        let (client, target, tx, in_flight, wire) = (
            client.clone(),
            Arc::clone(target),
            tx.clone(),
            Arc::clone(&in_flight),
            Arc::clone(&wire),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            // Never closed, so acquiring cannot fail.
            let permit = wire.acquire_owned().await.ok();
            let sent = Instant::now();
            let reply = send_one(&client, &target).await;
            let done = Instant::now();
            drop(permit);
            in_flight.fetch_sub(1, Ordering::Relaxed);
            if measured {
                // The collector only goes away once every sender is dropped.
                let _ = tx.send(Sample {
                    latency: done - intended,
                    lag: started - intended,
                    wait: sent - started,
                    done,
                    reply,
                });
            }
        });
    }
    drop(tx);

    let mut out = Slice::default();
    let mut last_done = window_start + p.duration;
    while let Some(s) = rx.recv().await {
        last_done = last_done.max(s.done);
        out.lags
            .push(u64::try_from(s.lag.as_nanos()).unwrap_or(u64::MAX));
        out.waits
            .push(u64::try_from(s.wait.as_nanos()).unwrap_or(u64::MAX));
        out.rec.record(s.latency, &s.reply);
        let on_wire = s.latency.saturating_sub(s.lag + s.wait);
        let service_ns = u64::try_from(on_wire.as_nanos()).unwrap_or(u64::MAX);
        out.service
            .by_status_ns
            .entry(s.reply.status)
            .or_default()
            .push(service_ns);
    }
    out.scheduled = scheduled;
    out.dropped = dropped;
    out.measured = p.duration;
    out.elapsed = last_done - window_start;
    out.wall = wall_start.elapsed();
    out.cpu_pct_s = cpu
        .percent_of_one_core()
        .map(|pct| pct * out.wall.as_secs_f64());
    out
}

/// The order of the targets in interleaved round `round`: forward, then backward, ...
/// so no target always follows the same one (ABBA), which cancels a linear drift.
pub fn round_order(targets: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..targets).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// One aligned line per rate, then the error kinds if there were any.
pub fn print_level(l: &OpenLevel) {
    println!(
        "rate={:>9.1}  sent/s={:>9.1}  drop={:>6}  ok={:>9}  err={:>6}  req/s={:>10.1}  \
         rows/s={:>11.1}  p50={:>8.3}  p90={:>8.3}  p99={:>8.3}  max={:>8.3} ms  \
         (send lag p99={:.3} ms, connection wait p99={:.3} ms, client cpu={})",
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
        l.connection_wait.p99_ms,
        format_cpu(l.client_cpu_pct),
    );
    if !l.errors.is_empty() {
        println!("         errors: {}", format_errors(&l.errors));
    }
    if l.latency_by_status.len() > 1 {
        for (status, s) in &l.latency_by_status {
            let service = l.service_by_status.get(status).cloned().unwrap_or_default();
            println!(
                "         {status}: n={} p50={:.3} p99={:.3} max={:.3} ms \
                 (from send: p50={:.3} p99={:.3} ms)",
                s.count, s.p50_ms, s.p99_ms, s.max_ms, service.p50_ms, service.p99_ms
            );
        }
    }
    crate::closed::print_server_side(&l.server_timing, &Default::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_direction() {
        assert_eq!(round_order(3, 0), vec![0, 1, 2]);
        assert_eq!(round_order(3, 1), vec![2, 1, 0]);
        assert_eq!(round_order(3, 2), vec![0, 1, 2]);
    }

    #[test]
    fn slices_merge_into_one_level() {
        let reply = |status: u16| crate::http::Reply {
            result: if status == 200 {
                Ok(())
            } else {
                Err(format!("http_{status}"))
            },
            status: format!("http_{status}"),
            timing: Default::default(),
        };
        let slice = |ms: u64, status: u16| {
            let mut s = Slice::default();
            s.rec.record(Duration::from_millis(ms), &reply(status));
            s.lags.push(0);
            s.waits.push(0);
            s.scheduled = 1;
            s.measured = Duration::from_secs(1);
            s.elapsed = Duration::from_secs(1);
            s.wall = Duration::from_secs(2);
            s.cpu_pct_s = Some(20.0 * 2.0);
            s
        };
        let mut a = slice(3, 200);
        a.merge(slice(5, 429));
        a.merge(slice(7, 200));
        let p = OpenParams {
            rate: 1.0,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(1),
            max_in_flight: 8,
            connections: 8,
            seed: 1,
        };
        let l = a.summarise(&p, 2);
        assert_eq!((l.scheduled, l.sent, l.ok, l.error_total), (3, 3, 2, 1));
        assert_eq!(l.duration_s, 3.0);
        assert!((l.requests_per_s - 2.0 / 3.0).abs() < 1e-12);
        assert!((l.rows_per_s - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(l.latency.max_ms, 7.0);
        assert_eq!(l.latency_by_status["http_429"].count, 1);
        assert_eq!(l.client_cpu_pct, Some(20.0));
    }
}
