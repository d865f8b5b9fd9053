//! Pure statistics over latency samples.
//!
//! Kept free of I/O and clocks so the numbers every mode reports (closed loop, open loop,
//! in-process ceiling) are computed the same way and can be unit-tested exactly.
//! Samples are nanoseconds: the in-process ceiling runs take microseconds, so a coarser
//! unit would quantise its percentiles away.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Outcome tally of one load level, filled by each client task and merged at the end.
///
/// Latencies are kept only for successful requests: a fast 429 or a connection refusal
/// would otherwise pull the percentiles down and make an overloaded server look quick.
#[derive(Debug, Default)]
pub struct Recorder {
    pub ok_latencies_ns: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn record(&mut self, latency: Duration, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self
                .ok_latencies_ns
                .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)),
            Err(kind) => *self.errors.entry(kind).or_insert(0) += 1,
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.ok_latencies_ns.extend(other.ok_latencies_ns);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_insert(0) += n;
        }
    }

    pub fn ok(&self) -> u64 {
        self.ok_latencies_ns.len() as u64
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

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

    #[test]
    fn recorder_keeps_ok_latencies_and_counts_errors() {
        let mut a = Recorder::default();
        a.record(Duration::from_micros(5), Ok(()));
        a.record(Duration::from_micros(1), Err("http_429".into()));
        let mut b = Recorder::default();
        b.record(Duration::from_micros(7), Ok(()));
        b.record(Duration::from_micros(2), Err("http_429".into()));
        b.record(Duration::from_micros(3), Err("timeout".into()));
        a.merge(b);
        assert_eq!(a.ok(), 2);
        assert_eq!(a.ok_latencies_ns, vec![5_000, 7_000]);
        assert_eq!(a.error_total(), 3);
        assert_eq!(a.errors["http_429"], 2);
        assert_eq!(format_errors(&a.errors), "http_429=2, timeout=1");
    }
}
