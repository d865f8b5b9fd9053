//! Whether an idle worker should wait for company. Of the requests that found a worker
//! idle, the share that another request they could share a batch with followed within
//! the batch's learned fixed cost. The latency-target window lets an idle worker wait
//! only while that share is at least [`LIKELY`]:
//! - where requests come one at a time (a lone client waiting for each answer, sparse
//!   traffic), no wait ever catches company and every wait is added latency: MiniLM at
//!   one client spent 4.4 of its 10.4 ms p50 waiting for nobody;
//! - where they come in dense streams, a wait merges requests and spares the device a
//!   fixed cost per merge (the ski-rental bound keeps the wait under that cost).
//!
//! Pure: the clock is an argument, nothing is locked.

use std::time::{Duration, Instant};

use super::pending::{Pending, ShapeKey};

/// Weight kept by past outcomes at each new one (half-life ≈ 7 requests that found a
/// worker idle), so a change in traffic is followed within tens of batches.
const DECAY: f64 = 0.9;

/// Share of joined requests from which waiting for company pays more than it costs.
pub const LIKELY: f64 = 0.5;

/// Exponentially weighted share of requests that company joined.
#[derive(Clone, Debug, PartialEq)]
pub struct Company {
    share: f64,
    samples: u64,
}

impl Default for Company {
    /// Nothing seen yet: assume company (the plain ski-rental wait) until outcomes say
    /// otherwise.
    fn default() -> Self {
        Company {
            share: 1.0,
            samples: 0,
        }
    }
}

impl Company {
    /// Records whether company joined a request that found a worker idle.
    pub fn observe(&mut self, joined: bool) {
        let x = if joined { 1.0 } else { 0.0 };
        self.share = self.share * DECAY + (1.0 - DECAY) * x;
        self.samples += 1;
    }

    /// The current share, in [0, 1].
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Outcomes seen so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Whether waiting for company is expected to pay.
    pub fn likely(&self) -> bool {
        self.share >= LIKELY
    }
}

/// A request that found a worker idle and left alone: its outcome is known once a
/// request of its shape arrives after it, or once `within` has passed without one.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub arrived: Instant,
    pub shape: ShapeKey,
    /// The learned fixed cost when it left: the longest wait that could have paid.
    pub within: Duration,
}

impl Probe {
    /// `Some(joined)` once the outcome is known at `now` from the waiting `queue`;
    /// `None` while it is not.
    pub fn outcome<'a, I>(&self, queue: I, now: Instant) -> Option<bool>
    where
        I: IntoIterator<Item = &'a Pending>,
    {
        let next = queue
            .into_iter()
            .filter(|p| p.shape == self.shape && p.enqueued > self.arrived)
            .map(|p| p.enqueued)
            .min();
        match next {
            Some(t) => Some(t.duration_since(self.arrived) <= self.within),
            None if now.saturating_duration_since(self.arrived) > self.within => Some(false),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(shape: usize, at: Instant) -> Pending {
        Pending {
            rows: 1,
            units: shape,
            shape: vec![shape].into_boxed_slice(),
            enqueued: at,
            deadline: None,
            priority: 1,
        }
    }

    fn probe(t0: Instant) -> Probe {
        Probe {
            arrived: t0,
            shape: vec![16].into_boxed_slice(),
            within: Duration::from_millis(2),
        }
    }

    #[test]
    fn waits_until_outcomes_say_otherwise() {
        let mut c = Company::default();
        assert!(c.likely());
        for _ in 0..6 {
            c.observe(false);
        }
        // 0.9^6 = 0.53: six misses are not yet enough...
        assert!(c.likely(), "{c:?}");
        c.observe(false);
        // ...seven are.
        assert!(!c.likely(), "{c:?}");
        assert_eq!(c.samples(), 7);
    }

    #[test]
    fn dense_traffic_brings_the_wait_back() {
        let mut c = Company::default();
        for _ in 0..50 {
            c.observe(false);
        }
        assert!(c.share() < 0.01);
        for _ in 0..6 {
            c.observe(true);
        }
        assert!(!c.likely(), "{c:?}");
        c.observe(true);
        assert!(c.likely(), "{c:?}");
    }

    #[test]
    fn alternating_outcomes_stay_near_one_half() {
        let mut c = Company::default();
        for i in 0..200 {
            c.observe(i % 2 == 0);
        }
        assert!((c.share() - 0.5).abs() < 0.06, "{c:?}");
    }

    #[test]
    fn a_request_of_its_shape_inside_the_fixed_cost_joins() {
        let t0 = Instant::now();
        let q = [pending(16, t0 + Duration::from_millis(1))];
        assert_eq!(
            probe(t0).outcome(&q, t0 + Duration::from_millis(1)),
            Some(true)
        );
    }

    #[test]
    fn a_request_after_the_fixed_cost_does_not() {
        let t0 = Instant::now();
        let q = [pending(16, t0 + Duration::from_millis(3))];
        assert_eq!(
            probe(t0).outcome(&q, t0 + Duration::from_millis(3)),
            Some(false)
        );
    }

    #[test]
    fn other_shapes_and_older_requests_do_not_count() {
        let t0 = Instant::now() + Duration::from_millis(10);
        let q = [
            pending(32, t0 + Duration::from_micros(500)),
            pending(16, t0 - Duration::from_millis(1)),
        ];
        // Nothing of its shape after it, and the fixed cost has not passed: unknown.
        assert_eq!(probe(t0).outcome(&q, t0 + Duration::from_millis(1)), None);
        // Once it has passed, nobody joined.
        assert_eq!(
            probe(t0).outcome(&q, t0 + Duration::from_millis(3)),
            Some(false)
        );
        // The first arrival of its shape decides, not a later one.
        let q = [
            pending(16, t0 + Duration::from_millis(5)),
            pending(16, t0 + Duration::from_millis(1)),
        ];
        assert_eq!(
            probe(t0).outcome(&q, t0 + Duration::from_millis(5)),
            Some(true)
        );
    }
}
