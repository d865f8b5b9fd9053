//! The scheduler thread of one model: waits for a free hand-over slot, asks the pure
//! [`policy`](super::policy) what to do with the queue, and hands formed batches to the
//! workers. Every look at the state happens under its one lock; answering expired
//! requests and stacking a batch's rows happen outside it.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::batch::stack;
use super::company::{Company, Probe};
use super::config::BatchingConfig;
use super::cost::BatchCost;
use super::policy::{decide, expired, Decision, HANDOVER};
use super::queue::Queue;
use super::state::{Shared, State};
use super::worker::{Batch, Member};
use super::{Entry, SchedulerError};
use crate::tensor::Tensor;

/// Forms batches until the queue is closed and empty, then drops the channel so the
/// workers finish.
pub(super) fn scheduler_loop(shared: Arc<Shared>, tx: SyncSender<Batch>) {
    let mut probe = None;
    loop {
        // Wait for a free hand-over slot first: see the module doc of `scheduler`
        // (prefetch).
        let mut st = shared.lock();
        while st.slots == 0 {
            st = shared.wait(st, None);
        }
        st.slots -= 1;
        let Some(entries) = next_batch(&shared, st, &mut probe) else {
            return;
        };
        match assemble(&shared, entries) {
            Some(batch) => {
                shared.lock().handed += batch.work;
                if tx.send(batch).is_err() {
                    return;
                }
            }
            // Nothing to send (every client left): give the slot back.
            None => shared.lock().slots += 1,
        }
    }
}

/// What the scheduler does after one look at the queue.
#[derive(Debug)]
pub(super) enum Step {
    /// Hand these entries over as one batch; `company`: the share of company, where
    /// this batch leaving an idle worker taught it.
    Dispatch {
        entries: Vec<Entry>,
        company: Option<f64>,
    },
    /// Look again after this long, or at the next change.
    Wait(Duration),
    /// Nothing waits: look again at the next change.
    Idle,
}

/// Blocks until the policy dispatches; `None` once the queue is closed and empty.
/// Requests whose deadline passed are answered 504 here, before they reach a batch.
/// `probe`: the last request that left an idle worker alone, until its outcome (did
/// company follow?) is known.
fn next_batch<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    probe: &mut Option<Probe>,
) -> Option<Vec<Entry>> {
    loop {
        if st.queue.is_closed() && st.queue.is_empty() {
            return None;
        }
        let now = Instant::now();
        let late = expired(st.queue.pending(), now);
        if !late.is_empty() {
            let gone = st.queue.take(&late);
            shared.metrics.queue_depth.set(st.queue.rows() as f64);
            drop(st);
            answer_expired(shared, gone, now);
            st = shared.lock();
            continue;
        }
        let cfg = if st.queue.is_closed() {
            &shared.drain_cfg
        } else {
            &shared.cfg
        };
        match step(&mut st, cfg, probe, now) {
            Step::Dispatch { entries, company } => {
                let depth = st.queue.rows();
                drop(st);
                shared.metrics.queue_depth.set(depth as f64);
                if let Some(share) = company {
                    shared.metrics.company.set(share);
                }
                return Some(entries);
            }
            Step::Wait(d) => st = shared.wait(st, Some(d)),
            Step::Idle => st = shared.wait(st, None),
        }
    }
}

/// One look at the queue at `now`: settles the probe's outcome, asks the policy, and on
/// a dispatch learns company and takes the batch's entries out of the queue. Reads no
/// clock and takes no lock (the caller holds it), so it can be driven with a hand-made
/// clock.
pub(super) fn step(
    st: &mut State,
    cfg: &BatchingConfig,
    probe: &mut Option<Probe>,
    now: Instant,
) -> Step {
    let ahead = st.ahead(now);
    let st = &mut *st;
    if let Some(joined) = probe
        .as_ref()
        .and_then(|p| p.outcome(st.queue.pending(), now))
    {
        st.company.observe(joined);
        *probe = None;
    }
    match decide(st.queue.pending(), now, cfg, &st.cost, ahead, &st.company) {
        Decision::Dispatch(positions) => {
            let company = (cfg.latency_target.is_some() && ahead <= HANDOVER).then(|| {
                learn_company(&mut st.company, probe, &st.queue, &positions, &st.cost);
                st.company.share()
            });
            Step::Dispatch {
                entries: st.queue.take(&positions),
                company,
            }
        }
        Decision::Wait(d) => Step::Wait(d),
        Decision::Idle => Step::Idle,
    }
}

/// Answers 504 to requests whose deadline passed at `now` while they waited.
fn answer_expired(shared: &Shared, gone: Vec<Entry>, now: Instant) {
    shared.metrics.expired.increment(gone.len() as u64);
    for entry in gone {
        let waited = now.saturating_duration_since(entry.pending.enqueued);
        let _ = entry.reply.send(Err(SchedulerError::Expired {
            model: shared.model.clone(),
            waited_ms: waited.as_millis() as u64,
        }));
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
        work: padded as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::company::LIKELY;
    use crate::tensor::{Tensor, TensorData};

    /// A one-row request of width 2 that arrived at `at`.
    fn arriving(at: Instant) -> Entry {
        let t = Tensor {
            shape: vec![1, 2],
            data: TensorData::F32(vec![0.0, 0.0]),
        };
        let (mut entry, _rx) = Entry::new(vec![t], 1, vec![2].into_boxed_slice());
        entry.pending.enqueued = at;
        entry
    }

    /// Looks at the queue from `now` until the policy dispatches, as the scheduler
    /// does, following its waits on the hand-made clock; returns when it dispatched
    /// and how many entries went.
    fn run_until_dispatch(
        st: &mut State,
        cfg: &BatchingConfig,
        probe: &mut Option<Probe>,
        mut now: Instant,
    ) -> (Instant, usize) {
        for _ in 0..10 {
            match step(st, cfg, probe, now) {
                Step::Dispatch { entries, .. } => return (now, entries.len()),
                Step::Wait(d) => now += d,
                Step::Idle => panic!("idle with a request waiting"),
            }
        }
        panic!("no dispatch after ten looks");
    }

    #[test]
    fn a_lone_client_stops_waiting_for_company_on_a_hand_made_clock() {
        let cfg = BatchingConfig {
            max_batch_size: 8,
            dynamic: true,
            latency_target: Some(Duration::from_millis(100)),
            ..BatchingConfig::default()
        };
        let mut st = State::new("m", &cfg, 1);
        // Learned: 3 ms a batch, whatever its size (all fixed cost).
        for work in [2.0, 8.0, 2.0, 8.0] {
            st.cost.observe(work, Duration::from_millis(3));
        }
        let fixed = st.cost.fit().unwrap().fixed();
        assert!((fixed.as_secs_f64() - 3e-3).abs() < 1e-9, "{fixed:?}");
        // A client that sends the next request 2 ms after the answer to the last, a
        // batch taking 3 ms: the worker is always idle when a request arrives.
        let mut probe = None;
        let mut waits = vec![];
        let mut at = Instant::now();
        for _ in 0..30 {
            st.queue.push(arriving(at), Duration::ZERO).unwrap();
            let (left, went) = run_until_dispatch(&mut st, &cfg, &mut probe, at);
            assert_eq!(went, 1);
            waits.push(left - at);
            at = left + Duration::from_millis(5);
        }
        // Company is assumed at first, so the first requests wait the fixed cost; each
        // next arrival, later than that, tells it nobody came (0.9^7 < 1/2): from the
        // eighth on, a request leaves as it arrives.
        let us: Vec<i64> = waits
            .iter()
            .map(|w| (w.as_secs_f64() * 1e6).round() as i64)
            .collect();
        assert_eq!(us[..7], [3000; 7], "{us:?}");
        assert!(us[7..].iter().all(|&w| w == 0), "{us:?}");
        assert!(st.company.share() < LIKELY);
        assert_eq!(st.company.samples(), 29);
    }

    #[test]
    fn a_stream_keeps_the_wait_for_company() {
        let cfg = BatchingConfig {
            max_batch_size: 8,
            dynamic: true,
            latency_target: Some(Duration::from_millis(100)),
            ..BatchingConfig::default()
        };
        let mut st = State::new("m", &cfg, 1);
        for work in [2.0, 8.0, 2.0, 8.0] {
            st.cost.observe(work, Duration::from_millis(3));
        }
        // Two requests 1 ms apart, then the batch: each wait catches the second one.
        let mut probe = None;
        let mut at = Instant::now();
        for _ in 0..30 {
            st.queue.push(arriving(at), Duration::ZERO).unwrap();
            let second = at + Duration::from_millis(1);
            assert!(matches!(step(&mut st, &cfg, &mut probe, at), Step::Wait(_)));
            st.queue.push(arriving(second), Duration::ZERO).unwrap();
            let (left, went) = run_until_dispatch(&mut st, &cfg, &mut probe, second);
            assert_eq!((left - at, went), (Duration::from_millis(3), 2));
            at = left + Duration::from_millis(5);
        }
        assert_eq!(st.company.samples(), 30);
        assert_eq!(st.company.share(), 1.0);
    }
}
