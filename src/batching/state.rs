//! The one owner of a model's scheduler state: everything the submitting handlers, the
//! scheduler thread and the workers share lives in one [`State`] behind one mutex, and
//! one condvar says "something changed". Only the scheduler thread waits on it (for a
//! free hand-over slot, or for the policy's next look); the others change the state and
//! signal.
//!
//! The lock is held for admission, for one decision, and for a worker's bookkeeping at
//! the start and end of a batch: never across `Backend::run`, batch assembly or the
//! sending of replies.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::admission::Calibration;
use super::company::Company;
use super::config::BatchingConfig;
use super::cost::{BatchCost, CostFit};
use super::policy::{predicted_latency, Pending, HANDOVER};
use super::queue::Queue;
use super::stats::ModelStats;
use crate::metrics::ModelMetrics;

/// A model's scheduler state, owned by the one lock in [`Shared`].
pub(super) struct State {
    /// Waiting requests.
    pub(super) queue: Queue,
    /// The learned cost of a batch; workers teach it, the policy reads it.
    pub(super) cost: BatchCost,
    /// Whether an idle worker's wait catches company; the scheduler teaches and reads it.
    pub(super) company: Company,
    /// Per worker: when its running batch started and its work (`None` while idle); the
    /// policy learns from it how long a batch formed now would wait for the device.
    pub(super) running: Vec<Option<(Instant, f64)>>,
    /// Work of the batches handed over that no worker has started yet.
    pub(super) handed: f64,
    /// How far admission's predictions run short (`shed_beyond_target`).
    pub(super) calibration: Calibration,
    /// Hand-over slots free (see the prefetch note in `scheduler`).
    pub(super) slots: usize,
}

impl State {
    pub(super) fn new(model: &str, cfg: &BatchingConfig, instances: usize) -> State {
        State {
            queue: Queue::new(model, cfg.max_queue_rows, cfg.max_queue_tokens),
            cost: BatchCost::default(),
            company: Company::default(),
            running: vec![None; instances],
            handed: 0.0,
            calibration: Calibration::default(),
            slots: instances,
        }
    }

    /// How long until a worker is free to start a batch formed at `now`.
    pub(super) fn ahead(&self, now: Instant) -> Duration {
        device_ahead(&self.running, &self.cost, now)
    }

    /// `shed_beyond_target`'s estimates for a request of `entries` joining the queue at
    /// `now`: for each entry, the queue ahead of it, the request's entries before it and
    /// its own rows run on the device (with the batches handed over spread on the
    /// workers), × the calibrated margin. The last is the whole request's. `None` where
    /// nothing is predicted (shedding off, no cost learned yet).
    pub(super) fn estimates(
        &self,
        cfg: &BatchingConfig,
        entries: &[&Pending],
        now: Instant,
    ) -> Option<Vec<Duration>> {
        if !cfg.shed_beyond_target || cfg.latency_target.is_none() {
            return None;
        }
        let fit = self.cost.fit()?;
        let instances = self.running.len();
        let ahead = self.ahead(now) + fit.estimate(self.handed).div_f64(instances.max(1) as f64);
        let (mut rows, mut units) = (self.queue.rows(), self.queue.units());
        let estimates = entries
            .iter()
            .map(|p| {
                rows += p.rows;
                units += p.units;
                let predicted = predicted_latency(
                    &fit,
                    ahead,
                    rows,
                    units as f64,
                    cfg.max_batch_size,
                    instances,
                );
                self.calibration.adjust(predicted)
            })
            .collect();
        Some(estimates)
    }

    /// A worker starts a handed-over batch of `work` at `started`: it runs, and its slot
    /// is free again. Returns whether the scheduler may be waiting for that slot.
    pub(super) fn start(&mut self, instance: usize, started: Instant, work: f64) -> bool {
        self.running[instance] = Some((started, work));
        self.handed = (self.handed - work).max(0.0);
        let was_full = self.slots == 0;
        self.slots += 1;
        was_full
    }

    /// A worker's batch of `work` took `compute`: the worker is idle, and the cost has
    /// learned from it. Returns the new fit.
    pub(super) fn finish(
        &mut self,
        instance: usize,
        work: f64,
        compute: Duration,
    ) -> Option<CostFit> {
        self.running[instance] = None;
        self.cost.observe(work, compute);
        self.cost.fit()
    }
}

/// What the handle, the scheduler thread and the workers of one model share.
pub(super) struct Shared {
    pub(super) model: String,
    pub(super) cfg: BatchingConfig,
    /// `cfg` without a window: used while draining at shutdown (nobody else is coming).
    pub(super) drain_cfg: BatchingConfig,
    state: Mutex<State>,
    /// "Something changed": an admission, a slot freed, a batch finished, shutdown.
    changed: Condvar,
    pub(super) stats: ModelStats,
    pub(super) metrics: std::sync::Arc<ModelMetrics>,
}

impl Shared {
    pub(super) fn new(model: &str, cfg: BatchingConfig, instances: usize) -> Shared {
        Shared {
            model: model.to_string(),
            state: Mutex::new(State::new(model, &cfg, instances)),
            drain_cfg: BatchingConfig {
                max_queue_delay: Duration::ZERO,
                latency_target: None,
                ..cfg.clone()
            },
            cfg,
            changed: Condvar::new(),
            stats: ModelStats::default(),
            metrics: ModelMetrics::new(model),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("scheduler state lock")
    }

    /// Wakes the scheduler to look at the state again.
    pub(super) fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits for a change (or `timeout`, when given), the lock released meanwhile.
    pub(super) fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        match timeout {
            Some(d) => {
                self.changed
                    .wait_timeout(state, d)
                    .expect("scheduler state lock")
                    .0
            }
            None => self.changed.wait(state).expect("scheduler state lock"),
        }
    }
}

/// How long until a worker is free to start the next batch: zero when one is idle, else
/// the least remaining time of the running batches by the learned cost. A batch that
/// overran its estimate still holds its worker: it counts as [`OVERRUN`] away, so the
/// policy keeps the batch growing and looks again shortly (the worker also signals when
/// it finishes). Pure.
pub(super) fn device_ahead(
    running: &[Option<(Instant, f64)>],
    cost: &BatchCost,
    now: Instant,
) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_request_is_estimated_entry_by_entry_behind_the_queue() {
        let cfg = BatchingConfig {
            max_batch_size: 2,
            dynamic: true,
            latency_target: Some(Duration::from_millis(50)),
            shed_beyond_target: true,
            ..BatchingConfig::default()
        };
        let mut st = State::new("m", &cfg, 1);
        let t0 = Instant::now();
        let pending = |rows: usize| Pending {
            rows,
            units: rows,
            shape: vec![1].into_boxed_slice(),
            enqueued: t0,
            deadline: None,
            priority: 1,
        };
        // Nothing learned: nothing predicted.
        assert_eq!(st.estimates(&cfg, &[&pending(1)], t0), None);
        // 2 ms per batch, whatever its size.
        for work in [1.0, 2.0, 1.0, 2.0] {
            st.cost.observe(work, Duration::from_millis(2));
        }
        let (a, b, c) = (pending(1), pending(1), pending(2));
        let us = |d: &Duration| (d.as_secs_f64() * 1e6).round() as i64;
        let idle: Vec<i64> = st
            .estimates(&cfg, &[&a, &b, &c], t0)
            .unwrap()
            .iter()
            .map(us)
            .collect();
        // The second row joins the first's batch; the last two rows need another batch.
        assert_eq!(idle[1] - idle[0], 0, "{idle:?}");
        assert_eq!(idle[2] - idle[1], 2000, "{idle:?}");
        // The same request behind a busy worker (1 ms left) waits for it, every entry.
        st.start(0, t0, 1.0);
        let later = t0 + Duration::from_millis(1);
        let behind: Vec<i64> = st
            .estimates(&cfg, &[&a, &b, &c], later)
            .unwrap()
            .iter()
            .map(us)
            .collect();
        let waits: Vec<i64> = behind.iter().zip(&idle).map(|(b, i)| b - i).collect();
        assert_eq!(waits, vec![1000; 3]);
        // The margin scales every estimate.
        st.calibration
            .observe(Duration::from_millis(1), Duration::from_millis(2));
        let margin = st.calibration.margin();
        let scaled: Vec<i64> = st
            .estimates(&cfg, &[&a, &b, &c], later)
            .unwrap()
            .iter()
            .map(us)
            .collect();
        for (s, b) in scaled.iter().zip(&behind) {
            assert!(
                (*s as f64 - *b as f64 * margin).abs() <= 1.0,
                "{scaled:?} {behind:?}"
            );
        }
        // Shedding off: no estimates.
        let off = BatchingConfig {
            shed_beyond_target: false,
            ..cfg.clone()
        };
        assert_eq!(st.estimates(&off, &[&a], t0), None);
    }
}
