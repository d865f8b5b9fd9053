//! The dispatch decision: a pure function of the queue, the clock it is handed and the
//! learned batch cost.
//!
//! Rules, in order (Triton's dynamic batcher, without its shared cursors, plus
//! priorities, deadlines and a latency-target window):
//! 1. Order: by priority level (1 = highest), then age. A request that has waited
//!    `priority_aging` is treated as top level, so a low level cannot starve.
//! 2. The batch is the first request in that order plus the following requests *of the
//!    same shape* (requests with other non-batch dimensions are never mixed), while the
//!    rows fit in `max_batch_size`.
//! 3. Dispatch at once when that batch is full: it reached `max_batch_size`, or the next
//!    same-shape request would not fit.
//! 4. Dispatch when it reached the largest preferred batch size, trimmed to the longest
//!    prefix that lands exactly on a preferred size when one does.
//! 5. Window: with a fixed `max_queue_delay`, dispatch when the first request has waited
//!    that long. With a `latency_target`, the window follows the device instead
//!    ([`slo_window`]): while every worker is busy, the batch keeps growing until just
//!    before one frees up (a batch handed over earlier could not start earlier anyway);
//!    while a worker is idle, wait at most the learned fixed cost of a batch (waiting
//!    longer idles the device for more than merging can save), and only where such waits
//!    have been catching company ([`Company`]); never past the moment that still lets the
//!    batch finish inside the first request's target.
//! 6. Otherwise wait until rule 5 would fire or the next deadline passes (so expired
//!    requests are answered on time), or a request arrives.
//!
//! Without dynamic batching every request is dispatched alone, at once.
//! Requests whose deadline passed are taken out first ([`expired`]) and never reach the
//! device.

use std::time::{Duration, Instant};

use super::company::Company;
use super::cost::{BatchCost, CostFit};
use crate::repository::config::BatchingConfig;

/// The shape of a request's non-batch dimensions, all inputs concatenated. Two
/// requests share a batch only when their keys are equal.
pub type ShapeKey = Box<[usize]>;

/// What the policy needs to know of one waiting request.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub rows: usize,
    /// Elements of the request's first input: rows × row width, so for text the
    /// tokens it brings (padded within the request).
    pub units: usize,
    pub shape: ShapeKey,
    pub enqueued: Instant,
    /// When the request stops being worth running (answered 504 instead).
    pub deadline: Option<Instant>,
    /// Priority level, 1 = highest.
    pub priority: u32,
}

impl Pending {
    /// Units of work this request adds to a batch (see `units`).
    pub fn work(&self) -> f64 {
        self.units as f64
    }
}

/// The policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing waits.
    Idle,
    /// Check again after this long (or sooner, when a request arrives).
    Wait(Duration),
    /// Dispatch the requests at these queue positions (ascending) as one batch.
    Dispatch(Vec<usize>),
}

/// Positions (ascending) of the requests whose deadline has passed at `now`.
pub fn expired<'a, I>(queue: I, now: Instant) -> Vec<usize>
where
    I: IntoIterator<Item = &'a Pending>,
{
    queue
        .into_iter()
        .enumerate()
        .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
        .map(|(i, _)| i)
        .collect()
}

/// Decides what to do with `queue` (in arrival order) at time `now`. `ahead` is the
/// device time still owed to batches already dispatched before a batch formed now can
/// start (zero when a worker is idle): with a latency target, the window leaves room for
/// it, so the first request's target holds even behind a running batch. `company` says
/// whether an idle worker's wait has been catching other requests lately.
pub fn decide<'a, I>(
    queue: I,
    now: Instant,
    cfg: &BatchingConfig,
    cost: &BatchCost,
    ahead: Duration,
    company: &Company,
) -> Decision
where
    I: IntoIterator<Item = &'a Pending>,
{
    let mut order: Vec<(usize, &Pending)> = queue.into_iter().enumerate().collect();
    if order.is_empty() {
        return Decision::Idle;
    }
    if cfg.priority_levels > 1 {
        // Stable: equal keys keep arrival order. Cached: the level is computed once per
        // request, not once per comparison.
        order.sort_by_cached_key(|(_, p)| effective_level(p, now, cfg));
    }
    let head = order[0].1;
    if !cfg.dynamic {
        return Decision::Dispatch(vec![order[0].0]);
    }
    let max = cfg.max_batch_size;
    // (queue position, rows) of each request taken into the batch, in batch order.
    let mut picked = vec![(order[0].0, head.rows)];
    let mut rows = head.rows;
    // `full`: the batch cannot grow any more, whatever arrives later.
    let mut full = rows >= max;
    if !full {
        for &(i, p) in &order[1..] {
            if p.shape != head.shape {
                continue;
            }
            if rows + p.rows > max {
                full = true;
                break;
            }
            picked.push((i, p.rows));
            rows += p.rows;
            if rows == max {
                full = true;
                break;
            }
        }
    }
    if full {
        return Decision::Dispatch(positions(&picked));
    }
    if let Some(&largest) = cfg.preferred_batch_sizes.last() {
        if rows >= largest {
            let keep = preferred_prefix(&picked, &cfg.preferred_batch_sizes);
            return Decision::Dispatch(positions(&picked[..keep]));
        }
    }
    let waited = now.saturating_duration_since(head.enqueued);
    let window_left = match cfg.latency_target {
        None => cfg.max_queue_delay.saturating_sub(waited),
        Some(target) => {
            let work = rows as f64 * head.work() / head.rows.max(1) as f64;
            slo_window(target, waited, ahead, cost, work, company)
        }
    };
    if window_left.is_zero() {
        return Decision::Dispatch(positions(&picked));
    }
    let next_deadline = order
        .iter()
        .filter_map(|(_, p)| p.deadline)
        .min()
        .map(|d| d.saturating_duration_since(now));
    Decision::Wait(match next_deadline {
        Some(d) if d < window_left => d.max(Duration::from_micros(1)),
        _ => window_left,
    })
}

/// How long a batch may still wait before leaving, once it reached the device's head
/// time: how the `latency_target` window of rule 5 is sized.
///
/// Why not simply "the latest moment that keeps the first request inside the target":
/// measured on CPU models, that holds every request for nearly the whole target, so the
/// p99 lands beyond it, and an idle device waiting for company loses throughput where a
/// batch's cost grows with its rows. Instead:
/// - nothing learned yet: go now, and learn;
/// - every worker busy (`ahead` > [`HANDOVER`]): a batch that is already efficient (its
///   fixed cost at most [`EFFICIENT`] of its cost) is handed over now: where cost grows
///   with rows, a larger batch only makes its first requests wait for the last ones'
///   compute. Otherwise keep growing until just before the first worker frees up: a
///   batch handed over earlier would wait in the hand-over slot anyway, smaller than
///   it had to be;
/// - a worker idle: wait at most the learned *fixed* cost of a batch, counted from the
///   first request's arrival (the ski-rental bound: the device idles no longer than one
///   merged request saves it), so a GPU model with a large per-batch cost still batches
///   at moderate load, and a CPU model whose cost is per row does not wait at all; and
///   only while such waits have been catching company ([`Company::likely`]): a lone
///   client, who sends the next request only after the answer, is never made to wait;
/// - never past the moment that lets the batch, behind `ahead`, finish inside the target.
pub fn slo_window(
    target: Duration,
    waited: Duration,
    ahead: Duration,
    cost: &BatchCost,
    work: f64,
    company: &Company,
) -> Duration {
    let Some(fit) = cost.fit() else {
        return Duration::ZERO;
    };
    let run = fit.estimate(work);
    let slack = target
        .saturating_sub(run)
        .saturating_sub(ahead)
        .saturating_sub(waited);
    let fixed = fit.fixed();
    if ahead > HANDOVER {
        if fixed.as_secs_f64() <= EFFICIENT * run.as_secs_f64() {
            // Growing could cut this batch's cost per row by EFFICIENT at most, while
            // every request added makes all of its batch mates wait for it: hand it
            // over now, the next batch takes the rest.
            return Duration::ZERO;
        }
        // The batch cannot start before `ahead` anyway, and growing still pays: keep
        // it open until the hand-over. Past the target's slack it waits for the
        // device either way, so only the hand-over point counts.
        return ahead - HANDOVER;
    }
    if !company.likely() {
        return Duration::ZERO;
    }
    fixed.saturating_sub(waited).min(slack)
}

/// A batch whose learned fixed cost is at most this share of its whole cost is big
/// enough: more rows could not make it much cheaper per row.
pub const EFFICIENT: f64 = 0.125;

/// Predicted queue + compute time of a request admitted now, what `shed_beyond_target`
/// checks against the target: `ahead` (until a worker frees up, batches already handed
/// over included), then `rows` and `units` (the queue's and the request's own) run as
/// batches of `max_batch` spread over `instances` workers, at the learned cost. First
/// come, first served: a higher priority level may go sooner than predicted, never
/// later.
pub fn predicted_latency(
    fit: &CostFit,
    ahead: Duration,
    rows: usize,
    units: f64,
    max_batch: usize,
    instances: usize,
) -> Duration {
    let batches = rows.div_ceil(max_batch.max(1)) as f64;
    let drain =
        (batches * fit.fixed_seconds + units * fit.per_unit_seconds) / instances.max(1) as f64;
    ahead + Duration::from_secs_f64(drain.clamp(0.0, 3600.0))
}

/// Lead time of a hand-over: a batch is formed this long before a busy worker is
/// expected to free up, so stacking it overlaps the end of the running batch.
pub const HANDOVER: Duration = Duration::from_micros(200);

/// Sort key of rule 1: aged requests count as level 0 (above every real level).
fn effective_level(p: &Pending, now: Instant, cfg: &BatchingConfig) -> (u32, Instant) {
    let aged = now.saturating_duration_since(p.enqueued) >= cfg.priority_aging;
    (if aged { 0 } else { p.priority }, p.enqueued)
}

/// Queue positions of the picks, ascending (what `Queue::take` wants).
fn positions(picked: &[(usize, usize)]) -> Vec<usize> {
    let mut v: Vec<usize> = picked.iter().map(|&(i, _)| i).collect();
    v.sort_unstable();
    v
}

/// Length of the longest prefix of `picked` whose rows add up to a preferred size; all
/// of `picked` when no prefix does.
fn preferred_prefix(picked: &[(usize, usize)], preferred: &[usize]) -> usize {
    let mut total = 0;
    let mut keep = picked.len();
    let mut found = false;
    for (k, &(_, rows)) in picked.iter().enumerate() {
        total += rows;
        if preferred.binary_search(&total).is_ok() {
            keep = k + 1;
            found = true;
        }
    }
    if found {
        keep
    } else {
        picked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize, delay_us: u64, preferred: &[usize]) -> BatchingConfig {
        BatchingConfig {
            max_batch_size: max,
            dynamic: max > 1,
            max_queue_delay: Duration::from_micros(delay_us),
            preferred_batch_sizes: preferred.to_vec(),
            ..BatchingConfig::default()
        }
    }

    fn decide<'a>(
        q: impl IntoIterator<Item = &'a Pending>,
        now: Instant,
        c: &BatchingConfig,
    ) -> Decision {
        with_cost(q, now, c, &BatchCost::default(), Duration::ZERO)
    }

    /// `decide` with a learned cost and device state, company assumed (the default).
    fn with_cost<'a>(
        q: impl IntoIterator<Item = &'a Pending>,
        now: Instant,
        c: &BatchingConfig,
        cost: &BatchCost,
        ahead: Duration,
    ) -> Decision {
        super::decide(q, now, c, cost, ahead, &Company::default())
    }

    /// A request of `rows` rows and shape `[shape]` that arrived `at_us` after `t0`.
    fn p(rows: usize, shape: usize, t0: Instant, at_us: u64) -> Pending {
        Pending {
            rows,
            units: rows * shape,
            shape: vec![shape].into_boxed_slice(),
            enqueued: t0 + Duration::from_micros(at_us),
            deadline: None,
            priority: 1,
        }
    }

    #[test]
    fn empty_queue_is_idle() {
        let q: Vec<Pending> = vec![];
        assert_eq!(
            decide(&q, Instant::now(), &cfg(8, 100, &[])),
            Decision::Idle
        );
    }

    #[test]
    fn waits_for_company_until_the_delay() {
        let t0 = Instant::now();
        let q = vec![p(1, 10, t0, 0), p(2, 10, t0, 30)];
        let c = cfg(8, 100, &[]);
        assert_eq!(
            decide(&q, t0 + Duration::from_micros(40), &c),
            Decision::Wait(Duration::from_micros(60))
        );
        assert_eq!(
            decide(&q, t0 + Duration::from_micros(100), &c),
            Decision::Dispatch(vec![0, 1])
        );
    }

    #[test]
    fn dispatches_when_full_without_waiting() {
        let t0 = Instant::now();
        let q = vec![p(3, 10, t0, 0), p(5, 10, t0, 1), p(1, 10, t0, 2)];
        assert_eq!(
            decide(&q, t0, &cfg(8, 1_000_000, &[])),
            Decision::Dispatch(vec![0, 1])
        );
    }

    #[test]
    fn dispatches_when_the_next_request_would_not_fit() {
        let t0 = Instant::now();
        let q = vec![p(3, 10, t0, 0), p(6, 10, t0, 1)];
        assert_eq!(
            decide(&q, t0, &cfg(8, 1_000_000, &[])),
            Decision::Dispatch(vec![0])
        );
    }

    #[test]
    fn never_mixes_shapes_and_skips_over_others() {
        let t0 = Instant::now();
        let q = vec![p(1, 10, t0, 0), p(1, 7, t0, 1), p(1, 10, t0, 2)];
        let at = t0 + Duration::from_micros(500);
        assert_eq!(
            decide(&q, at, &cfg(8, 100, &[])),
            Decision::Dispatch(vec![0, 2])
        );
    }

    #[test]
    fn preferred_size_dispatches_early() {
        let t0 = Instant::now();
        let q: Vec<Pending> = (0..4).map(|i| p(1, 10, t0, i)).collect();
        assert_eq!(
            decide(&q, t0, &cfg(16, 1_000_000, &[4])),
            Decision::Dispatch(vec![0, 1, 2, 3])
        );
        assert!(matches!(
            decide(&q, t0, &cfg(16, 1_000_000, &[8])),
            Decision::Wait(_)
        ));
    }

    #[test]
    fn preferred_trims_to_an_exact_prefix() {
        let t0 = Instant::now();
        // 2 + 2 + 3 = 7 rows: the longest prefix on a preferred size (4) is taken.
        let q = vec![p(2, 10, t0, 0), p(2, 10, t0, 1), p(3, 10, t0, 2)];
        assert_eq!(
            decide(&q, t0, &cfg(16, 1_000_000, &[4, 6])),
            Decision::Dispatch(vec![0, 1])
        );
        // no prefix lands on 5: everything picked goes.
        let q = vec![p(2, 10, t0, 0), p(4, 10, t0, 1)];
        assert_eq!(
            decide(&q, t0, &cfg(16, 1_000_000, &[5])),
            Decision::Dispatch(vec![0, 1])
        );
    }

    #[test]
    fn without_dynamic_batching_the_head_goes_alone() {
        let t0 = Instant::now();
        let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 1)];
        assert_eq!(decide(&q, t0, &cfg(1, 0, &[])), Decision::Dispatch(vec![0]));
    }

    #[test]
    fn zero_delay_dispatches_what_is_there() {
        let t0 = Instant::now();
        let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 0)];
        assert_eq!(
            decide(&q, t0, &cfg(8, 0, &[])),
            Decision::Dispatch(vec![0, 1])
        );
    }

    #[test]
    fn higher_priority_batches_first() {
        let t0 = Instant::now();
        let mut q = vec![p(1, 10, t0, 0), p(1, 10, t0, 1), p(1, 10, t0, 2)];
        q[2].priority = 1;
        q[0].priority = 2;
        q[1].priority = 2;
        let mut c = cfg(2, 0, &[]);
        c.priority_levels = 2;
        c.priority_aging = Duration::from_secs(10);
        // The level-1 request leads; the oldest level-2 one fills the batch.
        assert_eq!(
            decide(&q, t0 + Duration::from_micros(5), &c),
            Decision::Dispatch(vec![0, 2])
        );
    }

    #[test]
    fn a_low_level_cannot_starve() {
        let t0 = Instant::now();
        // An old level-3 request and a stream of fresh level-1 ones, batches of one.
        let mut q = vec![p(1, 10, t0, 0), p(1, 10, t0, 900), p(1, 10, t0, 950)];
        q[0].priority = 3;
        let mut c = cfg(1, 0, &[]);
        c.dynamic = false;
        c.priority_levels = 3;
        c.priority_aging = Duration::from_micros(500);
        // Before aging the fresh level-1 request goes first ...
        assert_eq!(
            decide(&q, t0 + Duration::from_micros(400), &c),
            Decision::Dispatch(vec![1])
        );
        // ... after waiting `priority_aging` the old one outranks every level.
        assert_eq!(
            decide(&q, t0 + Duration::from_micros(1000), &c),
            Decision::Dispatch(vec![0])
        );
    }

    #[test]
    fn expired_requests_are_found_and_waits_stop_at_deadlines() {
        let t0 = Instant::now();
        let mut q = vec![p(1, 10, t0, 0), p(1, 10, t0, 1)];
        q[1].deadline = Some(t0 + Duration::from_micros(300));
        assert_eq!(
            expired(&q, t0 + Duration::from_micros(299)),
            Vec::<usize>::new()
        );
        assert_eq!(expired(&q, t0 + Duration::from_micros(300)), vec![1]);
        let c = cfg(8, 1000, &[]);
        // The window has 900 µs left, the deadline 200 µs: wake for the deadline.
        assert_eq!(
            decide(&q, t0 + Duration::from_micros(100), &c),
            Decision::Wait(Duration::from_micros(200))
        );
    }

    /// 1 ms fixed + 0.1 ms per unit, learned from batches of several sizes.
    fn learned() -> BatchCost {
        let mut cost = BatchCost::default();
        for work in [10.0, 100.0, 640.0, 10.0, 100.0, 640.0] {
            cost.observe(work, Duration::from_secs_f64(1e-3 + 1e-4 * work));
        }
        cost
    }

    fn near(a: Duration, b: Duration) -> bool {
        (a.as_secs_f64() - b.as_secs_f64()).abs() < 1e-5
    }

    #[test]
    fn latency_target_with_an_idle_device_waits_at_most_the_fixed_cost() {
        let t0 = Instant::now();
        let mut c = cfg(64, 0, &[]);
        c.latency_target = Some(Duration::from_millis(10));
        let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 0)];
        // Nothing learned yet: dispatch at once.
        assert_eq!(
            with_cost(&q, t0, &c, &BatchCost::default(), Duration::ZERO),
            Decision::Dispatch(vec![0, 1])
        );
        let cost = learned();
        // Idle device: the head may wait the fixed cost (1 ms) from its arrival, not the
        // 10 - 3 = 7 ms the target alone would allow.
        let d = with_cost(
            &q,
            t0 + Duration::from_micros(400),
            &c,
            &cost,
            Duration::ZERO,
        );
        let Decision::Wait(w) = d else {
            panic!("{d:?}")
        };
        assert!(near(w, Duration::from_micros(600)), "{w:?}");
        assert_eq!(
            with_cost(&q, t0 + Duration::from_millis(1), &c, &cost, Duration::ZERO),
            Decision::Dispatch(vec![0, 1])
        );
        // A cost that is all per unit: no reason to idle the device at all.
        let mut linear = BatchCost::default();
        for work in [10.0, 100.0, 640.0, 10.0, 100.0, 640.0] {
            linear.observe(work, Duration::from_secs_f64(1e-4 * work));
        }
        assert_eq!(
            with_cost(&q, t0, &c, &linear, Duration::ZERO),
            Decision::Dispatch(vec![0, 1])
        );
        // The target still caps the wait: with T = 3.5 ms and a 3 ms batch, 0.5 ms.
        c.latency_target = Some(Duration::from_micros(3500));
        let d = with_cost(&q, t0, &c, &cost, Duration::ZERO);
        let Decision::Wait(w) = d else {
            panic!("{d:?}")
        };
        assert!(near(w, Duration::from_micros(500)), "{w:?}");
    }

    #[test]
    fn latency_target_with_an_idle_device_waits_only_where_company_comes() {
        let t0 = Instant::now();
        let mut c = cfg(64, 0, &[]);
        c.latency_target = Some(Duration::from_millis(10));
        let q = vec![p(1, 10, t0, 0)];
        let cost = learned();
        let mut alone = Company::default();
        for _ in 0..10 {
            alone.observe(false);
        }
        // Waits have not been catching anyone: the lone request goes at once...
        assert_eq!(
            super::decide(&q, t0, &c, &cost, Duration::ZERO, &alone),
            Decision::Dispatch(vec![0])
        );
        // ...while with company likely it waits the fixed cost (1 ms).
        let d = super::decide(&q, t0, &c, &cost, Duration::ZERO, &Company::default());
        let Decision::Wait(w) = d else {
            panic!("{d:?}")
        };
        assert!(near(w, Duration::from_millis(1)), "{w:?}");
        // Behind a busy device the batch still grows until the hand-over either way.
        assert_eq!(
            super::decide(&q, t0, &c, &cost, Duration::from_millis(4), &alone),
            Decision::Wait(Duration::from_millis(4) - HANDOVER)
        );
    }

    #[test]
    fn latency_target_behind_a_busy_device_grows_until_the_hand_over() {
        let t0 = Instant::now();
        let mut c = cfg(64, 0, &[]);
        c.latency_target = Some(Duration::from_millis(10));
        let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 0)];
        let cost = learned();
        // The running batch owes 4 ms: keep growing until 200 µs before it ends.
        let d = with_cost(&q, t0, &c, &cost, Duration::from_millis(4));
        assert_eq!(d, Decision::Wait(Duration::from_millis(4) - HANDOVER));
        // Even when the head's target is already out of reach (it waited 9 ms): leaving
        // now would not start it sooner.
        let d = with_cost(
            &q,
            t0 + Duration::from_millis(9),
            &c,
            &cost,
            Duration::from_millis(4),
        );
        assert_eq!(d, Decision::Wait(Duration::from_millis(4) - HANDOVER));
        // At the hand-over point the idle rule applies: the head waited past the fixed
        // cost, so it goes.
        assert_eq!(
            with_cost(&q, t0 + Duration::from_millis(4), &c, &cost, HANDOVER),
            Decision::Dispatch(vec![0, 1])
        );
        // Ten rows cost 1 + 10 ms: the fixed part is under 1/8, so growing would not
        // pay; the batch is handed over now, busy device or not.
        let ten: Vec<Pending> = (0..10).map(|_| p(1, 10, t0, 0)).collect();
        assert!(matches!(
            with_cost(&ten, t0, &c, &cost, Duration::from_millis(4)),
            Decision::Dispatch(v) if v.len() == 10
        ));
        // A full batch never waits for the device.
        let full: Vec<Pending> = (0..64).map(|_| p(1, 10, t0, 0)).collect();
        assert!(matches!(
            with_cost(&full, t0, &c, &cost, Duration::from_millis(4)),
            Decision::Dispatch(v) if v.len() == 64
        ));
        // A fixed window ignores the device: `ahead` changes nothing there.
        let fixed = cfg(64, 1000, &[]);
        assert_eq!(
            with_cost(&q, t0, &fixed, &cost, Duration::from_millis(4)),
            Decision::Wait(Duration::from_millis(1))
        );
    }

    #[test]
    fn predicted_latency_drains_the_queue_in_full_batches() {
        // 1 ms per batch + 10 µs per unit.
        let fit = CostFit {
            fixed_seconds: 1e-3,
            per_unit_seconds: 1e-5,
            samples: 10,
        };
        let ms = |x: f64| Duration::from_secs_f64(x * 1e-3);
        let close = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()).abs() < 1e-9;
        // 20 rows of 100 units behind a worker free in 2 ms, batches of 8: 3 batches,
        // 3 ms fixed + 20 ms per unit.
        assert!(close(
            predicted_latency(&fit, ms(2.0), 20, 2000.0, 8, 1),
            ms(25.0)
        ));
        // Two workers drain it in half the time; the wait for the first one stays.
        assert!(close(
            predicted_latency(&fit, ms(2.0), 20, 2000.0, 8, 2),
            ms(13.5)
        ));
        // An empty queue: the request's own batch only.
        assert!(close(
            predicted_latency(&fit, Duration::ZERO, 1, 100.0, 8, 1),
            ms(2.0)
        ));
    }
}
