//! Device workers: each takes formed batches off the hand-over channel and runs them on
//! its own [`Backend`] (one session per worker), then splits the outputs back into each
//! request's rows. A failing or panicking run fails only that batch's requests, and a
//! batch that failed is retried request by request, so one poisoned request fails alone.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::batch::split;
use super::state::Shared;
use super::{Reply, SchedulerError};
use crate::backend::Backend;
use crate::metrics::BusyMeter;
use crate::tensor::Tensor;

/// A formed batch on its way to a worker.
pub(super) struct Batch {
    pub(super) inputs: Vec<Tensor>,
    pub(super) members: Vec<Member>,
    /// Units of work (rows × elements per row), what the cost model learns from.
    pub(super) work: f64,
}

/// One request inside a batch.
pub(super) struct Member {
    pub(super) rows: usize,
    pub(super) request_id: Option<Arc<str>>,
    pub(super) enqueued: Instant,
    /// See [`super::Entry::predicted`].
    pub(super) predicted: Option<Duration>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Reply, SchedulerError>>,
}

/// A device worker: takes batches until the channel closes.
pub(super) fn worker_loop<B: Backend>(
    mut backend: B,
    instance: usize,
    rx: Arc<Mutex<Receiver<Batch>>>,
    shared: Arc<Shared>,
    meter: Arc<BusyMeter>,
) {
    loop {
        let next = rx.lock().expect("worker channel lock").recv();
        let Ok(batch) = next else {
            return;
        };
        run_batch(&mut backend, instance, &shared, &meter, batch);
    }
}

/// Runs one batch and answers its requests.
fn run_batch<B: Backend>(
    backend: &mut B,
    instance: usize,
    shared: &Shared,
    meter: &BusyMeter,
    batch: Batch,
) {
    let work = batch.work;
    let started = Instant::now();
    // Queue time runs until the batch starts, so a batch that waited in the hand-over
    // slot for this worker counts that wait too.
    let waits: Vec<Duration> = batch
        .members
        .iter()
        .map(|m| started.saturating_duration_since(m.enqueued))
        .collect();
    // Marked running before the slot is freed: the next decision sees this batch.
    if shared.lock().start(instance, started, work) {
        shared.notify();
    }
    let rows: Vec<usize> = batch.members.iter().map(|m| m.rows).collect();
    let total: usize = rows.iter().sum();
    let result = run_guarded(backend, &batch.inputs);
    let compute = started.elapsed();
    // A batch may be held back until this worker frees up: let the scheduler look.
    let fit = shared.lock().finish(instance, work, compute);
    shared.notify();
    meter.add(compute);
    if let Some(f) = fit {
        shared.metrics.cost_fixed.set(f.fixed_seconds);
        shared.metrics.cost_per_unit.set(f.per_unit_seconds);
    }
    let pieces = result.and_then(|outputs| split(outputs, &rows).map_err(|e| e.to_string()));
    shared
        .stats
        .record_batch(total, batch.members.len(), compute, &waits);
    shared.metrics.batch_rows.record(total as f64);
    shared.metrics.inference.record(compute.as_secs_f64());
    for w in &waits {
        shared.metrics.queue.record(w.as_secs_f64());
    }
    calibrate(shared, &batch.members);
    match pieces {
        Ok(pieces) => {
            for ((member, outputs), queue) in batch.members.into_iter().zip(pieces).zip(waits) {
                let _ = member.reply.send(Ok(Reply {
                    outputs,
                    queue,
                    compute,
                    batch_rows: total,
                }));
            }
        }
        Err(reason) => {
            let ids: Vec<&str> = batch
                .members
                .iter()
                .filter_map(|m| m.request_id.as_deref())
                .collect();
            tracing::error!(model = %shared.model, rows = total, error = %reason, request_ids = ?ids, "batch failed");
            isolate(backend, shared, batch, &rows, &waits);
        }
    }
}

/// Teaches admission's margin how long the members admitted on an estimate took.
fn calibrate(shared: &Shared, members: &[Member]) {
    if members.iter().all(|m| m.predicted.is_none()) {
        return;
    }
    let done = Instant::now();
    let mut st = shared.lock();
    for m in members {
        if let Some(predicted) = m.predicted {
            st.calibration
                .observe(predicted, done.saturating_duration_since(m.enqueued));
        }
    }
}

/// Runs one batch; a panic in the backend becomes an error like any other.
fn run_guarded<B: Backend>(backend: &mut B, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| backend.run(inputs))) {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the backend panicked".to_string()),
    }
}

/// After a batch failed: runs each of its requests alone, so one poisoned request (an
/// index out of range, a value the model chokes on) fails alone and its batch mates
/// are still answered. A batch of one is simply answered 500.
fn isolate<B: Backend>(
    backend: &mut B,
    shared: &Shared,
    batch: Batch,
    rows: &[usize],
    waits: &[Duration],
) {
    let alone = if batch.members.len() > 1 {
        split(batch.inputs, rows).ok()
    } else {
        None
    };
    let Some(alone) = alone else {
        for member in batch.members {
            let _ = member.reply.send(Err(SchedulerError::Internal));
        }
        return;
    };
    for ((member, inputs), &queue) in batch.members.into_iter().zip(alone).zip(waits) {
        let started = Instant::now();
        let answer = run_guarded(backend, &inputs)
            .and_then(|outputs| split(outputs, &[member.rows]).map_err(|e| e.to_string()));
        let compute = started.elapsed();
        match answer {
            Ok(mut pieces) => {
                let _ = member.reply.send(Ok(Reply {
                    outputs: pieces.pop().unwrap_or_default(),
                    queue,
                    compute,
                    batch_rows: member.rows,
                }));
            }
            Err(reason) => {
                tracing::error!(model = %shared.model, request_id = ?member.request_id, error = %reason, "request failed on its own");
                let _ = member.reply.send(Err(SchedulerError::Internal));
            }
        }
    }
}
