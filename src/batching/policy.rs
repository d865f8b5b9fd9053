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
use super::config::BatchingConfig;
use super::cost::{BatchCost, CostFit};

pub use super::pending::{Pending, ShapeKey};

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
mod tests;
