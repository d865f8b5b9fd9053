//! Pure statistics over latency samples.
//!
//! Kept free of I/O and clocks so the numbers every mode reports (closed loop, open loop,
//! in-process ceiling) are computed the same way and can be unit-tested exactly.
//! Samples are nanoseconds: the in-process ceiling runs take microseconds, so a coarser
//! unit would quantise its percentiles away.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::{Reply, TIMING_HEADERS};

/// Nearest-rank percentile (`q` in 0..=100) of an ascending slice.
///
/// Nearest rank rather than interpolation: every reported figure is a latency that was
/// actually observed, and p100 is exactly the maximum.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((q.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Events per second over `elapsed`; 0 when nothing elapsed, so empty runs stay finite in JSON.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Latency distribution summary in milliseconds (the unit people read HTTP latencies in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises nanosecond samples; sorts them in place (callers are done with them).
    pub fn from_nanos(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        let pct = |q| ns_to_ms(percentile(samples, q).unwrap_or(0));
        Self {
            count: samples.len() as u64,
            mean_ms: sum as f64 / samples.len() as f64 / 1e6,
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: pct(100.0),
        }
    }
}

/// Summary of plain integer samples (microseconds, rows) in their own unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueSummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl ValueSummary {
    /// Summarises the samples; sorts them in place.
    pub fn from_values(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        let pct = |q| percentile(samples, q).unwrap_or(0) as f64;
        Self {
            count: samples.len() as u64,
            mean: sum as f64 / samples.len() as f64,
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: pct(100.0),
        }
    }
}

/// Outcome tally of one load level, filled by each client task and merged at the end.
///
/// `ok_latencies_ns` holds successful requests only: a fast 429 or a connection refusal
/// would otherwise pull the percentiles down and make an overloaded server look quick.
/// Every outcome's latency is also kept under its status (`by_status_ns`), so an overload
/// run can state how fast refusals are, and successful requests' server timing headers
/// are kept per header (`server`, in the header's unit).
#[derive(Debug, Default)]
pub struct Recorder {
    pub ok_latencies_ns: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
    pub by_status_ns: BTreeMap<String, Vec<u64>>,
    pub server: BTreeMap<&'static str, Vec<u64>>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Recorder {
    pub fn record(&mut self, latency: Duration, reply: &Reply) {
        let ns = nanos(latency);
        match &reply.result {
            Ok(()) => {
                self.ok_latencies_ns.push(ns);
                for ((_, short), v) in TIMING_HEADERS.iter().zip(reply.timing.0) {
                    if let Some(v) = v {
                        self.server.entry(short).or_default().push(v);
                    }
                }
                if let Some(total) = reply.timing.server_us() {
                    self.server.entry(SERVER_TOTAL).or_default().push(total);
                }
            }
            Err(kind) => *self.errors.entry(kind.clone()).or_insert(0) += 1,
        }
        match self.by_status_ns.get_mut(reply.status.as_str()) {
            Some(v) => v.push(ns),
            None => {
                self.by_status_ns.insert(reply.status.clone(), vec![ns]);
            }
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.ok_latencies_ns.extend(other.ok_latencies_ns);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_insert(0) += n;
        }
        for (status, v) in other.by_status_ns {
            self.by_status_ns.entry(status).or_default().extend(v);
        }
        for (name, v) in other.server {
            self.server.entry(name).or_default().extend(v);
        }
    }

    pub fn ok(&self) -> u64 {
        self.ok_latencies_ns.len() as u64
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Latency per outcome (`http_200`, `http_429`, `timeout`, ...); consumes the samples.
    pub fn take_by_status(&mut self) -> BTreeMap<String, LatencySummary> {
        std::mem::take(&mut self.by_status_ns)
            .into_iter()
            .map(|(k, mut v)| (k, LatencySummary::from_nanos(&mut v)))
            .collect()
    }

    /// Server timing per header short name (`queue_us`, ..., `server_us`); consumes them.
    pub fn take_server(&mut self) -> BTreeMap<String, ValueSummary> {
        std::mem::take(&mut self.server)
            .into_iter()
            .map(|(k, mut v)| (k.to_string(), ValueSummary::from_values(&mut v)))
            .collect()
    }
}

/// Name under which the per-request sum of the stage headers is kept.
pub const SERVER_TOTAL: &str = "server_us";

/// Renders an error tally as `kind=n, kind=n` for the one-line summaries.
pub fn format_errors(errors: &BTreeMap<String, u64>) -> String {
    errors
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ServerTiming;

    #[test]
    fn percentile_of_empty_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        // 99.5% of 100 samples rounds up to rank 100.
        assert_eq!(percentile(&v, 99.5), Some(100));
    }

    #[test]
    fn percentile_of_single_sample_is_that_sample() {
        for q in [0.0, 1.0, 50.0, 99.9, 100.0] {
            assert_eq!(percentile(&[7], q), Some(7));
        }
    }

    #[test]
    fn percentile_clamps_out_of_range_q() {
        let v = [1, 2, 3];
        assert_eq!(percentile(&v, -5.0), Some(1));
        assert_eq!(percentile(&v, 500.0), Some(3));
    }

    #[test]
    fn summary_sorts_and_converts_to_ms() {
        // 1..=10 ms, shuffled.
        let mut v: Vec<u64> = [3, 9, 1, 10, 5, 7, 2, 8, 4, 6]
            .iter()
            .map(|ms| ms * 1_000_000)
            .collect();
        let s = LatencySummary::from_nanos(&mut v);
        assert_eq!(s.count, 10);
        assert!((s.mean_ms - 5.5).abs() < 1e-9);
        assert_eq!(s.p50_ms, 5.0);
        assert_eq!(s.p90_ms, 9.0);
        assert_eq!(s.p99_ms, 10.0);
        assert_eq!(s.max_ms, 10.0);
    }

    #[test]
    fn summary_of_nothing_is_zero() {
        assert_eq!(
            LatencySummary::from_nanos(&mut []),
            LatencySummary::default()
        );
    }

    #[test]
    fn per_second_handles_zero_elapsed() {
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert_eq!(per_second(10, Duration::from_millis(500)), 20.0);
    }

    fn reply(status: u16, timing: [Option<u64>; 6]) -> Reply {
        let key = format!("http_{status}");
        Reply {
            result: if status == 200 {
                Ok(())
            } else {
                Err(key.clone())
            },
            status: key,
            timing: ServerTiming(timing),
        }
    }

    fn transport(kind: &str) -> Reply {
        Reply {
            result: Err(kind.into()),
            status: kind.into(),
            timing: ServerTiming::default(),
        }
    }

    #[test]
    fn recorder_keeps_ok_latencies_and_counts_errors() {
        let t = [None, Some(100), Some(20), None, None, Some(8)];
        let mut a = Recorder::default();
        a.record(Duration::from_micros(5), &reply(200, t));
        a.record(Duration::from_micros(1), &reply(429, [None; 6]));
        let mut b = Recorder::default();
        b.record(Duration::from_micros(7), &reply(200, t));
        b.record(Duration::from_micros(2), &reply(429, [None; 6]));
        b.record(Duration::from_micros(3), &transport("timeout"));
        a.merge(b);
        assert_eq!(a.ok(), 2);
        assert_eq!(a.ok_latencies_ns, vec![5_000, 7_000]);
        assert_eq!(a.error_total(), 3);
        assert_eq!(a.errors["http_429"], 2);
        assert_eq!(format_errors(&a.errors), "http_429=2, timeout=1");
        let by_status = a.take_by_status();
        assert_eq!(by_status["http_200"].count, 2);
        assert_eq!(by_status["http_429"].count, 2);
        assert_eq!(by_status["http_429"].max_ms, 0.002);
        assert_eq!(by_status["timeout"].count, 1);
        let server = a.take_server();
        assert_eq!(server["queue_us"].mean, 100.0);
        assert_eq!(server["batch_rows"].p99, 8.0);
        assert_eq!(server[SERVER_TOTAL].mean, 120.0);
        assert!(!server.contains_key("pre_us"));
    }

    #[test]
    fn value_summary_keeps_units() {
        let mut v = vec![30, 10, 20];
        let s = ValueSummary::from_values(&mut v);
        assert_eq!((s.count, s.mean, s.p50, s.max), (3, 20.0, 20.0, 30.0));
        assert_eq!(ValueSummary::from_values(&mut []), ValueSummary::default());
    }
}
