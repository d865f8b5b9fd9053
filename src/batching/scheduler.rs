//! The actor around a model's queue: a scheduler thread forms batches with the pure
//! policy, worker threads run them on a [`Backend`], one session each.
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

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::admission::Calibration;
use super::batch::{split, stack};
use super::company::{Company, Probe};
use super::cost::{BatchCost, CostFit};
use super::policy::{decide, expired, predicted_latency, Decision, Pending, HANDOVER};
use super::queue::{whole_seconds, Queue};
use super::stats::ModelStats;
use super::{Entry, Reply, SchedulerError};
use crate::backend::Backend;
use crate::metrics::{self, BusyMeter, ModelMetrics};
use crate::repository::config::BatchingConfig;
use crate::tensor::Tensor;

/// State shared by the handle, the scheduler thread and the workers of one model.
struct Shared {
    model: String,
    cfg: BatchingConfig,
    /// `cfg` without a window: used while draining at shutdown (nobody else is coming).
    drain_cfg: BatchingConfig,
    /// The learned cost of a batch; workers teach it, the policy reads it.
    cost: Mutex<BatchCost>,
    /// Whether an idle worker's wait catches company; the scheduler teaches and reads it
    /// (the lock is for the stats endpoint).
    company: Mutex<Company>,
    /// Waiting requests. Held only for admission and for one decision, never across I/O.
    queue: Mutex<Queue>,
    /// Signalled on admission and on shutdown; the scheduler waits on it.
    arrived: Condvar,
    /// Per worker: when its running batch started and its work (`None` while idle); the
    /// policy learns from it how long a batch formed now would wait for the device.
    running: Mutex<Vec<Option<(Instant, f64)>>>,
    /// Work of the batches handed over that no worker has started yet.
    handed: Mutex<f64>,
    /// How far admission's predictions run short (`shed_beyond_target`).
    calibration: Mutex<Calibration>,
    /// Hand-over slots free (see the module doc), and the condvar the scheduler waits on.
    slots: Mutex<usize>,
    slot_freed: Condvar,
    stats: Arc<ModelStats>,
    metrics: Arc<ModelMetrics>,
}

/// `shed_beyond_target`'s counts, for the stats endpoint.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Shedding {
    /// Requests refused as predicted to finish past the target.
    pub shed: u64,
    /// What predictions are multiplied by (see [`Calibration`]).
    pub margin: f64,
    /// Admitted requests the margin has learned from.
    pub samples: u64,
}

/// A handle on one model's batcher. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
}

/// A formed batch on its way to a worker.
struct Batch {
    inputs: Vec<Tensor>,
    members: Vec<Member>,
    /// Units of work (rows × elements per row), what the cost model learns from.
    work: f64,
}

/// One request inside a batch.
struct Member {
    rows: usize,
    request_id: Option<Arc<str>>,
    enqueued: Instant,
    /// See [`Entry::predicted`].
    predicted: Option<Duration>,
    reply: tokio::sync::oneshot::Sender<Result<Reply, SchedulerError>>,
}

impl Batcher {
    /// Starts the scheduler thread and one worker thread per backend.
    pub fn start<B: Backend>(model: &str, cfg: BatchingConfig, backends: Vec<B>) -> Batcher {
        let instances = backends.len().max(1);
        let shared = Arc::new(Shared {
            model: model.to_string(),
            queue: Mutex::new(Queue::new(model, cfg.max_queue_rows, cfg.max_queue_tokens)),
            drain_cfg: BatchingConfig {
                max_queue_delay: Duration::ZERO,
                latency_target: None,
                ..cfg.clone()
            },
            cfg,
            cost: Mutex::new(BatchCost::default()),
            company: Mutex::new(Company::default()),
            running: Mutex::new(vec![None; instances]),
            handed: Mutex::new(0.0),
            calibration: Mutex::new(Calibration::default()),
            arrived: Condvar::new(),
            slots: Mutex::new(instances),
            slot_freed: Condvar::new(),
            stats: Arc::new(ModelStats::default()),
            metrics: ModelMetrics::new(model),
        });
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
    pub fn submit(&self, mut entry: Entry) -> Result<(), SchedulerError> {
        let per_row = self.shared.stats.time_per_row();
        let rows = {
            let mut q = self.shared.queue.lock().expect("queue lock");
            if !q.is_closed() {
                match self.shed(&q, &entry.pending) {
                    Ok(predicted) => entry.predicted = predicted,
                    Err(e) => {
                        self.shared.metrics.shed.increment(1);
                        self.shared.stats.record_shed();
                        return Err(e);
                    }
                }
            }
            q.push(entry, per_row)?;
            q.rows()
        };
        self.shared.metrics.queue_depth.set(rows as f64);
        self.shared.arrived.notify_one();
        Ok(())
    }

    /// `shed_beyond_target`: refuses `pending` when the queue ahead of it and its own
    /// batch are predicted, with the calibrated margin, to take it past the latency
    /// target; else returns the estimate it is admitted on, prediction × margin (`None`
    /// where nothing is predicted), which its actual time is later compared with. Called
    /// under the queue lock (so the prediction sees the queue it would join).
    fn shed(&self, q: &Queue, pending: &Pending) -> Result<Option<Duration>, SchedulerError> {
        let shared = &self.shared;
        let (true, Some(target)) = (shared.cfg.shed_beyond_target, shared.cfg.latency_target)
        else {
            return Ok(None);
        };
        let cost = shared.cost.lock().expect("cost lock").clone();
        let Some(fit) = cost.fit() else {
            return Ok(None);
        };
        let now = Instant::now();
        let (ahead, instances) = {
            let running = shared.running.lock().expect("running lock");
            (device_ahead(&running, &cost, now), running.len())
        };
        let handed = *shared.handed.lock().expect("handed lock");
        let ahead = ahead + fit.estimate(handed).div_f64(instances.max(1) as f64);
        let predicted = predicted_latency(
            &fit,
            ahead,
            q.rows() + pending.rows,
            (q.units() + pending.units) as f64,
            shared.cfg.max_batch_size,
            instances,
        );
        let adjusted = shared
            .calibration
            .lock()
            .expect("calibration lock")
            .adjust(predicted);
        if adjusted <= target {
            return Ok(Some(adjusted));
        }
        Err(SchedulerError::BeyondTarget {
            model: shared.model.clone(),
            predicted_ms: adjusted.as_millis() as u64,
            target_ms: target.as_millis() as u64,
            retry_after: whole_seconds(adjusted - target),
        })
    }

    /// Refuses new requests; what is queued still runs, then the threads stop.
    pub fn shutdown(&self) {
        self.shared.queue.lock().expect("queue lock").close();
        self.shared.arrived.notify_one();
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
        self.shared.cost.lock().expect("cost lock").fit()
    }

    /// Share of the requests that found a worker idle whom another joined within the
    /// batch's fixed cost (see [`Company`]), and how many such requests were seen.
    pub fn company(&self) -> (f64, u64) {
        let c = self.shared.company.lock().expect("company lock");
        (c.share(), c.samples())
    }

    /// Requests refused by `shed_beyond_target`, and the calibrated margin.
    pub fn shedding(&self) -> Shedding {
        let shed = self.shared.stats.snapshot().shed;
        let c = self.shared.calibration.lock().expect("calibration lock");
        Shedding {
            shed,
            margin: c.margin(),
            samples: c.samples(),
        }
    }

    /// Rows waiting right now.
    pub fn queued_rows(&self) -> usize {
        self.shared.queue.lock().expect("queue lock").rows()
    }
}

/// Forms batches until the queue is closed and empty, then drops the channel so the
/// workers finish.
fn scheduler_loop(shared: Arc<Shared>, tx: SyncSender<Batch>) {
    let mut probe = None;
    loop {
        // Wait for a free hand-over slot first: see the module doc (prefetch).
        {
            let mut free = shared.slots.lock().expect("slots lock");
            while *free == 0 {
                free = shared.slot_freed.wait(free).expect("slots lock");
            }
            *free -= 1;
        }
        let Some(entries) = next_batch(&shared, &mut probe) else {
            return;
        };
        match assemble(&shared, entries) {
            Some(batch) => {
                *shared.handed.lock().expect("handed lock") += batch.work;
                if tx.send(batch).is_err() {
                    return;
                }
            }
            // Nothing to send (every client left): give the slot back.
            None => *shared.slots.lock().expect("slots lock") += 1,
        }
    }
}

/// Blocks until the policy dispatches; `None` once the queue is closed and empty.
/// Requests whose deadline passed are answered 504 here, before they reach a batch.
/// `probe`: the last request that left an idle worker alone, until its outcome (did
/// company follow?) is known.
fn next_batch(shared: &Shared, probe: &mut Option<Probe>) -> Option<Vec<Entry>> {
    let mut q = shared.queue.lock().expect("queue lock");
    loop {
        if q.is_closed() && q.is_empty() {
            return None;
        }
        let now = Instant::now();
        let late = expired(q.pending(), now);
        if !late.is_empty() {
            for entry in q.take(&late) {
                let waited = now.saturating_duration_since(entry.pending.enqueued);
                let _ = entry.reply.send(Err(SchedulerError::Expired {
                    model: shared.model.clone(),
                    waited_ms: waited.as_millis() as u64,
                }));
            }
            shared.metrics.expired.increment(late.len() as u64);
            shared.metrics.queue_depth.set(q.rows() as f64);
            continue;
        }
        let cfg = if q.is_closed() {
            &shared.drain_cfg
        } else {
            &shared.cfg
        };
        let cost = shared.cost.lock().expect("cost lock").clone();
        let ahead = device_ahead(&shared.running.lock().expect("running lock"), &cost, now);
        // Only this thread writes `company` (the lock is for the stats endpoint), so a
        // copy serves the decision, as for `cost`.
        let company = {
            let mut c = shared.company.lock().expect("company lock");
            if let Some(joined) = probe.as_ref().and_then(|p| p.outcome(q.pending(), now)) {
                c.observe(joined);
                *probe = None;
            }
            c.clone()
        };
        match decide(q.pending(), now, cfg, &cost, ahead, &company) {
            Decision::Dispatch(positions) => {
                if cfg.latency_target.is_some() && ahead <= HANDOVER {
                    let mut c = shared.company.lock().expect("company lock");
                    learn_company(&mut c, probe, &q, &positions, &cost);
                    shared.metrics.company.set(c.share());
                }
                let taken = q.take(&positions);
                shared.metrics.queue_depth.set(q.rows() as f64);
                return Some(taken);
            }
            Decision::Wait(d) => q = shared.arrived.wait_timeout(q, d).expect("queue lock").0,
            Decision::Idle => q = shared.arrived.wait(q).expect("queue lock"),
        }
    }
}

/// A batch leaving an idle worker: with a mate of its head's shape, company came;
/// alone, its head becomes the probe whose outcome the next arrivals tell. Before the
/// cost is learned there is no fixed cost to measure company against.
fn learn_company(
    company: &mut Company,
    probe: &mut Option<Probe>,
    queue: &Queue,
    positions: &[usize],
    cost: &BatchCost,
) {
    let Some(fit) = cost.fit() else {
        return;
    };
    // Positions are ascending and the queue is in arrival order: the first member is
    // the head; whether a second exists is all that matters.
    let mut members = queue
        .pending()
        .enumerate()
        .filter(|(i, _)| positions.binary_search(i).is_ok())
        .map(|(_, p)| p);
    let head = members.next();
    if members.next().is_some() {
        company.observe(true);
    } else if let Some(head) = head {
        *probe = Some(Probe {
            arrived: head.enqueued,
            shape: head.shape.clone(),
            within: fit.fixed(),
        });
    }
}

/// How long until a worker is free to start the next batch: zero when one is idle, else
/// the least remaining time of the running batches by the learned cost. A batch that
/// overran its estimate still holds its worker: it counts as [`OVERRUN`] away, so the
/// policy keeps the batch growing and looks again shortly (the worker also signals when
/// it finishes). Pure.
fn device_ahead(running: &[Option<(Instant, f64)>], cost: &BatchCost, now: Instant) -> Duration {
    running
        .iter()
        .map(|r| match r {
            None => Duration::ZERO,
            Some((started, work)) => {
                let Some(run) = cost.estimate(*work) else {
                    return Duration::ZERO;
                };
                let elapsed = now.saturating_duration_since(*started);
                if elapsed >= run {
                    OVERRUN
                } else {
                    run - elapsed
                }
            }
        })
        .min()
        .unwrap_or(Duration::ZERO)
}

/// What a batch running past its estimate counts as: one hand-over lead plus a short
/// poll interval.
const OVERRUN: Duration = Duration::from_micros(HANDOVER.as_micros() as u64 + 300);

/// Drops entries whose client has gone, then stacks the rest into one batch.
fn assemble(shared: &Shared, entries: Vec<Entry>) -> Option<Batch> {
    let (live, gone): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| !e.reply.is_closed());
    if !gone.is_empty() {
        shared.stats.record_cancelled(gone.len());
        shared.metrics.cancelled.increment(gone.len() as u64);
    }
    if live.is_empty() {
        return None;
    }
    let refs: Vec<&[Tensor]> = live.iter().map(|e| e.inputs.as_slice()).collect();
    let inputs = match stack(&refs, shared.cfg.ragged) {
        Ok(inputs) => inputs,
        Err(e) => {
            tracing::error!(model = %shared.model, error = %e, "batch assembly failed");
            for entry in live {
                let _ = entry.reply.send(Err(SchedulerError::Internal));
            }
            return None;
        }
    };
    // Work as the device sees it: elements of the first input, padding included.
    let padded = inputs.first().map_or(0, |t| t.data.len());
    let real: usize = live
        .iter()
        .map(|e| e.inputs.first().map_or(0, |t| t.data.len()))
        .sum();
    if padded > 0 {
        shared
            .metrics
            .padding
            .record(1.0 - real as f64 / padded as f64);
    }
    let work = padded as f64;
    let members = live
        .into_iter()
        .map(|e| Member {
            rows: e.pending.rows,
            request_id: e.request_id,
            enqueued: e.pending.enqueued,
            predicted: e.predicted,
            reply: e.reply,
        })
        .collect();
    Some(Batch {
        inputs,
        members,
        work,
    })
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

/// A device worker: takes batches until the channel closes. A failing or panicking run
/// fails only that batch's requests; the worker goes on with the next batch.
fn worker_loop<B: Backend>(
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
        // Marked running before the slot is freed: the next decision sees this batch.
        let work = batch.work;
        let started = Instant::now();
        // Queue time runs until the batch starts, so a batch that waited in the hand-over
        // slot for this worker counts that wait too.
        let waits: Vec<Duration> = batch
            .members
            .iter()
            .map(|m| started.saturating_duration_since(m.enqueued))
            .collect();
        shared.running.lock().expect("running lock")[instance] = Some((started, work));
        {
            let mut handed = shared.handed.lock().expect("handed lock");
            *handed = (*handed - work).max(0.0);
        }
        *shared.slots.lock().expect("slots lock") += 1;
        shared.slot_freed.notify_one();
        let rows: Vec<usize> = batch.members.iter().map(|m| m.rows).collect();
        let total: usize = rows.iter().sum();
        let result = run_guarded(&mut backend, &batch.inputs);
        let compute = started.elapsed();
        shared.running.lock().expect("running lock")[instance] = None;
        // A batch may be held back until this worker frees up: let the scheduler look.
        // Taking the queue lock first orders this after the scheduler's last look at
        // `running` (made under that lock), so the signal cannot fall between its look
        // and its wait.
        drop(shared.queue.lock().expect("queue lock"));
        shared.arrived.notify_one();
        meter.add(compute);
        let fit = {
            let mut cost = shared.cost.lock().expect("cost lock");
            cost.observe(work, compute);
            cost.fit()
        };
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
        if batch.members.iter().any(|m| m.predicted.is_some()) {
            let done = Instant::now();
            let mut c = shared.calibration.lock().expect("calibration lock");
            for m in &batch.members {
                if let Some(predicted) = m.predicted {
                    c.observe(predicted, done.saturating_duration_since(m.enqueued));
                }
            }
        }
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
                isolate(&mut backend, &shared, batch, &rows, &waits);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;
    use crate::tensor::TensorData;

    /// Doubles every input element; fails on a batch holding a negative element and
    /// panics on NaN — to show one bad request takes down neither the worker nor its
    /// batch mates.
    struct Doubler;

    impl Backend for Doubler {
        fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
            let t = &inputs[0];
            let TensorData::F32(v) = &t.data else {
                return Err(BackendError::Run("want FP32".into()));
            };
            if v.iter().any(|x| x.is_nan()) {
                panic!("NaN");
            }
            if v.iter().any(|&x| x < 0.0) {
                return Err(BackendError::Run("negative".into()));
            }
            Ok(vec![Tensor {
                shape: t.shape.clone(),
                data: TensorData::F32(v.iter().map(|x| x * 2.0).collect()),
            }])
        }
    }

    #[test]
    fn device_ahead_is_the_soonest_free_worker() {
        let t0 = Instant::now();
        // Learned: 1 ms + 0.1 ms per unit.
        let mut cost = BatchCost::default();
        for work in [10.0, 100.0, 640.0, 10.0, 100.0, 640.0] {
            cost.observe(work, Duration::from_secs_f64(1e-3 + 1e-4 * work));
        }
        let ms = |x: f64| Duration::from_secs_f64(x * 1e-3);
        let near = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()).abs() < 1e-6;
        // One worker running a 40-unit batch (5 ms) for 2 ms: 3 ms to go.
        let one = [Some((t0, 40.0))];
        assert!(near(device_ahead(&one, &cost, t0 + ms(2.0)), ms(3.0)));
        // Overdue but still running: the worker is not free, look again shortly.
        assert_eq!(device_ahead(&one, &cost, t0 + ms(9.0)), OVERRUN);
        assert!(OVERRUN > HANDOVER);
        // Two workers: the one that frees first counts; an idle one means no wait.
        let two = [Some((t0, 40.0)), Some((t0, 10.0))];
        assert!(near(device_ahead(&two, &cost, t0), ms(2.0)));
        assert_eq!(
            device_ahead(&[Some((t0, 40.0)), None], &cost, t0),
            Duration::ZERO
        );
        // Nothing learned yet: no estimate, no wait.
        assert_eq!(
            device_ahead(&one, &BatchCost::default(), t0),
            Duration::ZERO
        );
    }

    fn cfg(max: usize, delay_ms: u64) -> BatchingConfig {
        BatchingConfig {
            max_batch_size: max,
            dynamic: true,
            max_queue_delay: Duration::from_millis(delay_ms),
            max_queue_rows: 1000,
            ..BatchingConfig::default()
        }
    }

    fn request(
        b: &Batcher,
        value: f32,
    ) -> tokio::sync::oneshot::Receiver<Result<Reply, SchedulerError>> {
        let t = Tensor {
            shape: vec![1, 2],
            data: TensorData::F32(vec![value, value + 0.5]),
        };
        let (entry, rx) = Entry::new(vec![t], 1, vec![2].into_boxed_slice());
        b.submit(entry).unwrap();
        rx
    }

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_get_their_own_rows() {
        let b = Batcher::start("m", cfg(8, 20), vec![Doubler]);
        let rxs: Vec<_> = (0..8).map(|i| request(&b, i as f32)).collect();
        for (i, rx) in rxs.into_iter().enumerate() {
            let reply = rx.await.unwrap().unwrap();
            let x = i as f32;
            assert_eq!(
                reply.outputs[0].data,
                TensorData::F32(vec![2.0 * x, 2.0 * x + 1.0])
            );
            assert_eq!(reply.batch_rows, 8);
        }
        assert_eq!(b.stats().snapshot().execution_count, 1);
    }

    #[tokio::test]
    async fn a_failing_or_panicking_batch_fails_alone() {
        let b = Batcher::start("m", cfg(1, 0), vec![Doubler]);
        let bad = request(&b, -1.0);
        assert_eq!(bad.await.unwrap().unwrap_err(), SchedulerError::Internal);
        let boom = request(&b, f32::NAN);
        assert_eq!(boom.await.unwrap().unwrap_err(), SchedulerError::Internal);
        let good = request(&b, 1.0).await.unwrap().unwrap();
        assert_eq!(good.outputs[0].data, TensorData::F32(vec![2.0, 3.0]));
    }

    #[tokio::test]
    async fn a_poisoned_request_fails_alone_and_its_batch_mates_are_answered() {
        // A 30 ms window batches the three; the negative one makes the batch fail.
        let b = Batcher::start("m", cfg(8, 30), vec![Doubler]);
        let good1 = request(&b, 1.0);
        let bad = request(&b, -5.0);
        let good2 = request(&b, 2.0);
        assert_eq!(
            good1.await.unwrap().unwrap().outputs[0].data,
            TensorData::F32(vec![2.0, 3.0])
        );
        assert_eq!(bad.await.unwrap().unwrap_err(), SchedulerError::Internal);
        assert_eq!(
            good2.await.unwrap().unwrap().outputs[0].data,
            TensorData::F32(vec![4.0, 5.0])
        );
    }

    #[tokio::test]
    async fn shutdown_drains_then_refuses() {
        let b = Batcher::start("m", cfg(8, 10_000), vec![Doubler]);
        let rx = request(&b, 3.0);
        b.shutdown();
        // Queued before shutdown: still answered, without waiting out the 10 s delay.
        let reply = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply.outputs[0].data, TensorData::F32(vec![6.0, 7.0]));
        let t = Tensor {
            shape: vec![1, 2],
            data: TensorData::F32(vec![0.0, 0.0]),
        };
        let (entry, _rx) = Entry::new(vec![t], 1, vec![2].into_boxed_slice());
        assert!(matches!(
            b.submit(entry),
            Err(SchedulerError::ShuttingDown { .. })
        ));
    }

    #[tokio::test]
    async fn entries_whose_client_left_are_dropped_and_counted() {
        let b = Batcher::start("m", cfg(8, 30), vec![Doubler]);
        let gone = request(&b, 1.0);
        drop(gone);
        let kept = request(&b, 2.0);
        let reply = kept.await.unwrap().unwrap();
        assert_eq!(reply.batch_rows, 1);
        assert_eq!(b.stats().snapshot().cancelled, 1);
    }

    /// 3 ms per batch whatever its size: all fixed cost, the case where an idle worker's
    /// wait for company could pay.
    struct Fixed3ms;

    impl Backend for Fixed3ms {
        fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
            std::thread::sleep(Duration::from_millis(3));
            Ok(inputs.to_vec())
        }
    }

    /// Submits a request of `rows` rows of width 2.
    fn submit_rows(
        b: &Batcher,
        rows: usize,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Reply, SchedulerError>>, SchedulerError> {
        let t = Tensor {
            shape: vec![rows, 2],
            data: TensorData::F32(vec![1.0; rows * 2]),
        };
        let (entry, rx) = Entry::new(vec![t], rows, vec![2].into_boxed_slice());
        b.submit(entry).map(|()| rx)
    }

    #[tokio::test]
    async fn a_lone_client_stops_waiting_for_company() {
        let cfg = BatchingConfig {
            latency_target: Some(Duration::from_millis(100)),
            ..cfg(8, 0)
        };
        let b = Batcher::start("m", cfg, vec![Fixed3ms]);
        let send = |rows: usize| submit_rows(&b, rows).unwrap();
        // One request at a time, as a client that waits for each answer and takes 2 ms
        // to use it. Sizes 1 and 4 first, so the cost line learns its 3 ms fixed part.
        // (Without the 2 ms the next request arrives right as the fixed cost since the
        // last one's arrival runs out, and scheduling jitter on a loaded machine decides
        // whether it counts as company: see the closing note on the probe.)
        let mut waits = vec![];
        for i in 0..30 {
            let rows = if i < 6 && i % 2 == 1 { 4 } else { 1 };
            let reply = send(rows).await.unwrap().unwrap();
            waits.push(reply.queue);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let fixed = b.cost().unwrap().fixed();
        assert!(fixed > Duration::from_millis(2), "{fixed:?}");
        let (share, samples) = b.company();
        assert!(
            share < crate::batching::company::LIKELY,
            "share {share}, {samples} samples"
        );
        // Nobody ever came: once that is learned, requests no longer wait the fixed cost.
        let late = &waits[20..];
        assert!(
            late.iter().all(|w| *w < Duration::from_millis(1)),
            "queue waits {late:?}"
        );
        // Before it was learned they did, which is what the share turned off.
        assert!(
            waits[6..10].iter().any(|w| *w > Duration::from_millis(1)),
            "queue waits {waits:?}"
        );
    }

    #[tokio::test]
    async fn shedding_refuses_what_would_finish_past_the_target() {
        let burst = |shed: bool| async move {
            let cfg = BatchingConfig {
                latency_target: Some(Duration::from_millis(10)),
                shed_beyond_target: shed,
                ..cfg(2, 0)
            };
            let b = Batcher::start("m", cfg, vec![Fixed3ms]);
            let send = |rows: usize| submit_rows(&b, rows);
            // Learn the cost first (3 ms a batch, 1 or 2 rows), one request at a time.
            for i in 0..6 {
                send(1 + i % 2).unwrap().await.unwrap().unwrap();
            }
            // 20 at once: batches of 2 at 3 ms each, so about the first six fit in 10 ms.
            let (mut admitted, mut refused) = (vec![], vec![]);
            for _ in 0..20 {
                match send(1) {
                    Ok(rx) => admitted.push(rx),
                    Err(e) => refused.push(e),
                }
            }
            for rx in admitted.iter_mut() {
                rx.await.unwrap().unwrap();
            }
            let counts = b.shedding();
            assert_eq!(counts.shed, refused.len() as u64);
            // Every admitted request of the burst taught the margin (so did the learning
            // requests sent once the first batch had been costed).
            assert!(counts.samples >= admitted.len() as u64 * shed as u64);
            (admitted.len(), refused)
        };
        let (admitted, refused) = burst(true).await;
        assert!((1..=10).contains(&admitted), "{admitted} admitted");
        assert_eq!(admitted + refused.len(), 20);
        for e in &refused {
            let SchedulerError::BeyondTarget {
                predicted_ms,
                target_ms,
                retry_after,
                ..
            } = e
            else {
                panic!("{e:?}")
            };
            assert!(*predicted_ms >= *target_ms, "{e:?}");
            assert_eq!(*retry_after, Duration::from_secs(1));
        }
        // Without shedding the same burst is queued whole (the queue holds 1000 rows).
        let (admitted, refused) = burst(false).await;
        assert_eq!((admitted, refused.len()), (20, 0));
    }
}
