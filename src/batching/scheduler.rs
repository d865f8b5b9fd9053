//! The handle on a model's batcher: a scheduler thread (`dispatch.rs`) forms batches
//! with the pure policy, worker threads (`worker.rs`) run them on a [`Backend`], one
//! session each. Their shared state has one owner, one lock and one condvar
//! (`state.rs`).
//!
//! The scheduler is a thread rather than a tokio task because batch windows are often
//! below a millisecond, and tokio's timer rounds up to whole milliseconds; a condvar
//! wait is precise to tens of microseconds.
//!
//! Prefetch: a worker slot is reserved *before* the scheduler decides. There are as many
//! slots as batches that can be handed over without a worker taking them (one per
//! instance), so while every worker is busy one batch per instance is formed and
//! waiting, and the queue keeps growing into the next (larger) batch instead of being
//! cut early.

use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::BatchingConfig;
use super::cost::CostFit;
use super::dispatch::scheduler_loop;
use super::queue::whole_seconds;
use super::state::{Shared, State};
use super::stats::ModelStats;
use super::worker::{worker_loop, Batch};
use super::{Entry, SchedulerError};
use crate::backend::Backend;
use crate::metrics::{self, BusyMeter, ModelMetrics};

/// `shed_beyond_target`'s counts, for the stats endpoint.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Shedding {
    /// Requests refused as predicted to finish past the target.
    pub shed: u64,
    /// What predictions are multiplied by (see [`super::admission::Calibration`]).
    pub margin: f64,
    /// Admitted requests the margin has learned from.
    pub samples: u64,
}

/// A handle on one model's batcher. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
}

impl Batcher {
    /// Starts the scheduler thread and one worker thread per backend.
    pub fn start<B: Backend>(model: &str, cfg: BatchingConfig, backends: Vec<B>) -> Batcher {
        let instances = backends.len().max(1);
        let shared = Arc::new(Shared::new(model, cfg, instances));
        metrics::queue_capacity(model, shared.cfg.max_queue_rows);
        let (tx, rx) = sync_channel::<Batch>(instances);
        let rx = Arc::new(Mutex::new(rx));
        for (instance, backend) in backends.into_iter().enumerate() {
            let rx = rx.clone();
            let shared = shared.clone();
            let meter = BusyMeter::new(model, instance);
            std::thread::Builder::new()
                .name(format!("convoy-{model}-{instance}"))
                .spawn(move || worker_loop(backend, instance, rx, shared, meter))
                .expect("spawning a worker thread");
        }
        let sched = shared.clone();
        std::thread::Builder::new()
            .name(format!("convoy-{model}-sched"))
            .spawn(move || scheduler_loop(sched, tx))
            .expect("spawning the scheduler thread");
        shared.metrics.queue_depth.set(0.0);
        Batcher { shared }
    }

    /// Queues `entry`; its answer arrives on the receiver made with it.
    pub fn submit(&self, entry: Entry) -> Result<(), SchedulerError> {
        self.submit_all(vec![entry])
    }

    /// Queues every entry of one request, or none: admission (shutdown, the queue's row
    /// and token bounds, `shed_beyond_target`) judges the request as a whole, under one
    /// acquisition of the lock, so no other request slips in between its entries'
    /// checks. On refusal nothing is queued, the entries are dropped (their receivers
    /// see the sender gone) and nothing reaches the device. Each admitted entry's answer
    /// arrives on the receiver made with it; entries may run in different batches. An
    /// empty request is admitted as it is.
    pub fn submit_all(&self, mut entries: Vec<Entry>) -> Result<(), SchedulerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let per_row = shared.stats.time_per_row();
        let rows = {
            let mut st = shared.lock();
            if !st.queue.is_closed() {
                match self.shed(&st, &entries) {
                    Ok(Some(estimates)) => {
                        for (entry, estimate) in entries.iter_mut().zip(estimates) {
                            entry.predicted = Some(estimate);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        drop(st);
                        shared.metrics.shed.increment(1);
                        shared.stats.record_shed();
                        return Err(e);
                    }
                }
            }
            if let Err((reason, refused)) = st.queue.push_all(entries, per_row) {
                drop(st);
                drop(refused);
                return Err(reason);
            }
            st.queue.rows()
        };
        shared.metrics.queue_depth.set(rows as f64);
        shared.notify();
        Ok(())
    }

    /// `shed_beyond_target`: refuses a request when the queue ahead of it and its own
    /// rows are predicted, with the calibrated margin, to take it past the latency
    /// target; else returns, per entry, the estimate it is admitted on (prediction ×
    /// margin; `None` where nothing is predicted), which its actual time is later
    /// compared with. Called under the lock (so the prediction sees the queue the
    /// request would join).
    fn shed(&self, st: &State, entries: &[Entry]) -> Result<Option<Vec<Duration>>, SchedulerError> {
        let shared = &self.shared;
        if !shared.cfg.shed_beyond_target {
            return Ok(None);
        }
        let pending: Vec<_> = entries.iter().map(|e| &e.pending).collect();
        let Some(estimates) = st.estimates(&shared.cfg, &pending, Instant::now()) else {
            return Ok(None);
        };
        // The last entry's estimate is the whole request's, and the largest.
        let (Some(&whole), Some(target)) = (estimates.last(), shared.cfg.latency_target) else {
            return Ok(None);
        };
        if whole <= target {
            return Ok(Some(estimates));
        }
        Err(SchedulerError::BeyondTarget {
            model: shared.model.clone(),
            predicted_ms: whole.as_millis() as u64,
            target_ms: target.as_millis() as u64,
            retry_after: whole_seconds(whole - target),
        })
    }

    /// Refuses new requests; what is queued still runs, then the threads stop.
    pub fn shutdown(&self) {
        self.shared.lock().queue.close();
        self.shared.notify();
    }

    pub fn stats(&self) -> &ModelStats {
        &self.shared.stats
    }

    /// This model's metric handles (the handler records request-level ones).
    pub fn metrics(&self) -> &Arc<ModelMetrics> {
        &self.shared.metrics
    }

    /// The learned batch cost (`None` before the first batch).
    pub fn cost(&self) -> Option<CostFit> {
        self.shared.lock().cost.fit()
    }

    /// Share of the requests that found a worker idle whom another joined within the
    /// batch's fixed cost (see [`super::company::Company`]), and how many such requests
    /// were seen.
    pub fn company(&self) -> (f64, u64) {
        let st = self.shared.lock();
        (st.company.share(), st.company.samples())
    }

    /// Requests refused by `shed_beyond_target`, and the calibrated margin.
    pub fn shedding(&self) -> Shedding {
        let shed = self.shared.stats.snapshot().shed;
        let st = self.shared.lock();
        Shedding {
            shed,
            margin: st.calibration.margin(),
            samples: st.calibration.samples(),
        }
    }

    /// Rows waiting right now.
    pub fn queued_rows(&self) -> usize {
        self.shared.lock().queue.rows()
    }
}

#[cfg(test)]
mod tests;
