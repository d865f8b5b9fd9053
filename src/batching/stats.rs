//! Per-model counters and times behind `GET /v2/models/{m}/stats`, in the shape of
//! Triton's statistics extension (perf_analyzer reads it), plus a batch-size histogram.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// A count and the total time of the counted events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TimedCount {
    pub count: u64,
    pub ns: u64,
}

impl TimedCount {
    fn add(&mut self, d: Duration) {
        self.count += 1;
        self.ns += d.as_nanos() as u64;
    }
}

/// One model's statistics; updated once per batch and once per request.
#[derive(Debug, Default)]
pub struct ModelStats {
    inner: Mutex<Snapshot>,
}

/// A consistent copy of the statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Rows inferred (Triton's `inference_count`).
    pub inference_count: u64,
    /// Batches run (Triton's `execution_count`).
    pub execution_count: u64,
    /// Requests answered successfully, and their end-to-end time in the server.
    pub success: TimedCount,
    /// Requests that failed after admission (device or assembly errors, timeouts).
    pub fail: TimedCount,
    /// Time requests waited in the queue.
    pub queue: TimedCount,
    /// Device time attributed to each request (its batch's run time).
    pub compute_infer: TimedCount,
    /// Requests dropped at batch time because their client had gone.
    pub cancelled: u64,
    /// Requests refused at admission by `shed_beyond_target`.
    pub shed: u64,
    /// Batches by size in rows: how many, and their total device time.
    pub batch_sizes: BTreeMap<usize, TimedCount>,
}

impl ModelStats {
    /// Records one batch of `rows` rows, from `requests` requests, that ran for `compute`.
    pub fn record_batch(
        &self,
        rows: usize,
        requests: usize,
        compute: Duration,
        queue_waits: &[Duration],
    ) {
        let mut s = self.inner.lock().expect("stats lock");
        s.inference_count += rows as u64;
        s.execution_count += 1;
        s.batch_sizes.entry(rows).or_default().add(compute);
        for w in queue_waits {
            s.queue.add(*w);
        }
        for _ in 0..requests {
            s.compute_infer.add(compute);
        }
    }

    pub fn record_cancelled(&self, n: usize) {
        self.inner.lock().expect("stats lock").cancelled += n as u64;
    }

    pub fn record_shed(&self) {
        self.inner.lock().expect("stats lock").shed += 1;
    }

    /// Records one request's end-to-end outcome (time spent inside the server).
    pub fn record_request(&self, ok: bool, total: Duration) {
        let mut s = self.inner.lock().expect("stats lock");
        if ok {
            s.success.add(total);
        } else {
            s.fail.add(total);
        }
    }

    /// Mean device time per row so far (zero before the first batch), the drain rate
    /// that `Retry-After` is derived from.
    pub fn time_per_row(&self) -> Duration {
        let s = self.inner.lock().expect("stats lock");
        let ns: u64 = s.batch_sizes.values().map(|d| d.ns).sum();
        Duration::from_nanos(ns.checked_div(s.inference_count).unwrap_or(0))
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().expect("stats lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_requests_add_up() {
        let s = ModelStats::default();
        s.record_batch(
            8,
            2,
            Duration::from_millis(4),
            &[Duration::from_millis(1); 2],
        );
        s.record_batch(1, 1, Duration::from_millis(1), &[Duration::ZERO]);
        s.record_request(true, Duration::from_millis(5));
        let snap = s.snapshot();
        assert_eq!(snap.inference_count, 9);
        assert_eq!(snap.execution_count, 2);
        assert_eq!(snap.compute_infer.count, 3);
        assert_eq!(
            snap.batch_sizes[&8],
            TimedCount {
                count: 1,
                ns: 4_000_000
            }
        );
        assert_eq!(s.time_per_row(), Duration::from_nanos(5_000_000 / 9));
    }
}
