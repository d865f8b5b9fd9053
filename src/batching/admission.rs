//! How wrong admission's predictions run: the margin `shed_beyond_target` multiplies a
//! request's predicted queue + compute time by before checking it against the target.
//!
//! The prediction ([`super::policy::predicted_latency`]) uses the learned batch cost, an
//! average: batches that run slower than it (a neighbour on the CPU, a longer text in the
//! bucket, a batch held for the hand-over) make an admitted request late. Shedding right
//! at the target would admit requests whose *typical* finish is the target, so half of
//! those at the edge would be late. Instead, every admitted request tells whether it
//! finished inside the estimate it was admitted on (prediction × the margin *at its
//! admission*), and the margin is steered so that a [`QUANTILE`] share does: admitted at
//! the edge, a request then finishes inside the target that often.
//!
//! Judging each request by the margin it was admitted with, not the current one, matters
//! when errors come in bursts (a neighbour takes the CPU for a while): every request in
//! flight is late at once, and each one counts, so the margin rises as far as the burst
//! demands, and decays slowly after it. Pure: no clock, no locks.

use std::time::Duration;

/// The share of admitted requests the margin is meant to cover: a p99 target.
pub const QUANTILE: f64 = 0.99;

/// Step of the online quantile estimate, relative: an observation above the margin
/// raises it by `STEP × QUANTILE` (4.95 %), one below lowers it by `STEP × (1 −
/// QUANTILE)` (0.05 %), so it settles where a `1 − QUANTILE` share lies above.
const STEP: f64 = 0.05;

/// Bounds of the margin: a prediction is never trusted below half, nor distrusted beyond
/// four times.
const MIN: f64 = 0.5;
const MAX: f64 = 4.0;

/// The margin, steered online so that a [`QUANTILE`] share of admitted requests finish
/// inside the estimate they were admitted on. `Default` starts at 1 (the prediction taken
/// as it is).
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    margin: f64,
    samples: u64,
}

impl Default for Calibration {
    fn default() -> Calibration {
        Calibration {
            margin: 1.0,
            samples: 0,
        }
    }
}

impl Calibration {
    /// Records that a request admitted on the estimate `admitted_on` (its prediction
    /// after [`Calibration::adjust`], at admission) took `actual`.
    pub fn observe(&mut self, admitted_on: Duration, actual: Duration) {
        if admitted_on.is_zero() {
            return;
        }
        self.margin = if actual > admitted_on {
            self.margin * (1.0 + STEP * QUANTILE)
        } else {
            self.margin / (1.0 + STEP * (1.0 - QUANTILE))
        }
        .clamp(MIN, MAX);
        self.samples += 1;
    }

    /// What predictions are multiplied by before they are checked against the target.
    pub fn margin(&self) -> f64 {
        self.margin
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// `predicted` with the margin applied.
    pub fn adjust(&self, predicted: Duration) -> Duration {
        predicted.mul_f64(self.margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x * 1e-3)
    }

    /// Requests predicted at 10 ms, each admitted on the margin of its time, whose actual
    /// time / prediction cycles evenly over [lo, hi).
    fn feed(c: &mut Calibration, n: usize, lo: f64, hi: f64) {
        for i in 0..n {
            let ratio = lo + (hi - lo) * ((i * 37) % 100) as f64 / 100.0;
            let admitted_on = c.adjust(ms(10.0));
            c.observe(admitted_on, ms(10.0 * ratio));
        }
    }

    #[test]
    fn starts_by_trusting_the_prediction() {
        let c = Calibration::default();
        assert_eq!(c.margin(), 1.0);
        assert_eq!(c.adjust(ms(20.0)), ms(20.0));
    }

    #[test]
    fn settles_near_the_quantile_of_the_ratio() {
        // Actual time 0.8-1.4x the prediction, evenly: its 99th percentile is 1.39.
        let mut c = Calibration::default();
        feed(&mut c, 5000, 0.8, 1.4);
        assert!((1.33..=1.47).contains(&c.margin()), "margin {}", c.margin());
        assert_eq!(c.samples(), 5000);
    }

    #[test]
    fn follows_predictions_that_become_accurate_and_stays_in_bounds() {
        let mut c = Calibration::default();
        feed(&mut c, 3000, 1.5, 2.0);
        assert!(c.margin() > 1.8, "{}", c.margin());
        // The device settles: actual time now 0.9-1.0x the prediction.
        feed(&mut c, 20000, 0.9, 1.0);
        assert!((0.95..=1.05).contains(&c.margin()), "margin {}", c.margin());
        // Wild ratios stay within bounds; a zero prediction teaches nothing.
        for _ in 0..1000 {
            c.observe(ms(1.0), ms(100.0));
        }
        assert_eq!(c.margin(), MAX);
        c.observe(Duration::ZERO, ms(5.0));
        assert_eq!(c.samples(), 24000);
    }

    #[test]
    fn a_burst_of_late_requests_counts_each_one() {
        // Twenty requests admitted on the same 10 ms estimate, all of them 30 % late (a
        // stall hit everything in flight): each counts, though after a few the current
        // margin would already cover a 1.3x ratio.
        let mut c = Calibration::default();
        let admitted_on = c.adjust(ms(10.0));
        for _ in 0..20 {
            c.observe(admitted_on, ms(13.0));
        }
        let expected = (1.0 + STEP * QUANTILE).powi(20);
        assert!((c.margin() - expected).abs() < 1e-9, "{}", c.margin());
        assert!(c.margin() > 2.5);
    }
}
