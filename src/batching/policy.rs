//! The dispatch decision: a pure function of the queue and the clock it is handed.
//!
//! Rules, in order (Triton's dynamic batcher, without its shared cursors):
//! 1. The batch is the oldest request plus the following requests *of the same shape*
//!    (requests with other non-batch dimensions are never mixed), in arrival order,
//!    while the rows fit in `max_batch_size`.
//! 2. Dispatch at once when that batch is full: it reached `max_batch_size`, or the next
//!    same-shape request would not fit.
//! 3. Dispatch when it reached the largest preferred batch size, trimmed to the longest
//!    prefix that lands exactly on a preferred size when one does.
//! 4. Dispatch when the oldest request has waited `max_queue_delay`.
//! 5. Otherwise wait until rule 4 would fire (or a new request arrives).
//!
//! Without dynamic batching every request is dispatched alone, at once.

use std::time::{Duration, Instant};

use crate::repository::config::BatchingConfig;

/// The shape of a request's non-batch dimensions, all inputs concatenated. Two
/// requests share a batch only when their keys are equal.
pub type ShapeKey = Box<[usize]>;

/// What the policy needs to know of one waiting request.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub rows: usize,
    pub shape: ShapeKey,
    pub enqueued: Instant,
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

/// Decides what to do with `queue` (oldest first) at time `now`.
pub fn decide<'a, I>(queue: I, now: Instant, cfg: &BatchingConfig) -> Decision
where
    I: IntoIterator<Item = &'a Pending>,
{
    let mut iter = queue.into_iter().enumerate();
    let Some((_, head)) = iter.next() else {
        return Decision::Idle;
    };
    if !cfg.dynamic {
        return Decision::Dispatch(vec![0]);
    }
    let max = cfg.max_batch_size;
    // (queue position, rows) of each request taken into the batch.
    let mut picked = vec![(0, head.rows)];
    let mut rows = head.rows;
    // `full`: the batch cannot grow any more, whatever arrives later.
    let mut full = rows >= max;
    if !full {
        for (i, p) in iter {
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
    if waited >= cfg.max_queue_delay {
        return Decision::Dispatch(positions(&picked));
    }
    Decision::Wait(cfg.max_queue_delay - waited)
}

fn positions(picked: &[(usize, usize)]) -> Vec<usize> {
    picked.iter().map(|&(i, _)| i).collect()
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
            max_queue_rows: 1 << 20,
        }
    }

    /// A request of `rows` rows and shape `[shape]` that arrived `at_us` after `t0`.
    fn p(rows: usize, shape: usize, t0: Instant, at_us: u64) -> Pending {
        Pending {
            rows,
            shape: vec![shape].into_boxed_slice(),
            enqueued: t0 + Duration::from_micros(at_us),
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
}
