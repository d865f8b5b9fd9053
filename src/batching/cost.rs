//! The learned cost of a batch: `cost(work) ≈ fixed + per_unit × work`, where work is
//! rows × elements per row (so a text batch of b rows padded to t tokens counts b·t).
//! Fitted online by exponentially weighted least squares, so it follows a device whose
//! speed drifts (thermal limits, a neighbour on the GPU). Pure: no clock, no locks.

use std::time::Duration;

/// Weight kept by past observations at each new one (half-life ≈ 70 batches).
const DECAY: f64 = 0.99;

/// Online estimate of batch cost. `Default` knows nothing yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchCost {
    // Exponentially weighted sums of 1, x, y, x², xy.
    s0: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    samples: u64,
}

/// The fitted line, for metrics and the stats endpoint.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CostFit {
    pub fixed_seconds: f64,
    pub per_unit_seconds: f64,
    pub samples: u64,
}

impl BatchCost {
    /// Records that a batch of `work` units took `took`.
    pub fn observe(&mut self, work: f64, took: Duration) {
        let y = took.as_secs_f64();
        self.s0 = self.s0 * DECAY + 1.0;
        self.sx = self.sx * DECAY + work;
        self.sy = self.sy * DECAY + y;
        self.sxx = self.sxx * DECAY + work * work;
        self.sxy = self.sxy * DECAY + work * y;
        self.samples += 1;
    }

    /// The current line; `None` before the first observation.
    pub fn fit(&self) -> Option<CostFit> {
        if self.samples == 0 {
            return None;
        }
        let mx = self.sx / self.s0;
        let my = self.sy / self.s0;
        let var = self.sxx / self.s0 - mx * mx;
        let cov = self.sxy / self.s0 - mx * my;
        // With one batch size seen so far the slope is unknown: assume cost grows in
        // proportion to work (pessimistic for larger batches, so deadlines hold).
        let (fixed, per_unit) = if var > 1e-9 * mx.max(1.0).powi(2) {
            let slope = (cov / var).max(0.0);
            ((my - slope * mx).max(0.0), slope)
        } else if mx > 0.0 {
            (0.0, my / mx)
        } else {
            (my, 0.0)
        };
        Some(CostFit {
            fixed_seconds: fixed,
            per_unit_seconds: per_unit,
            samples: self.samples,
        })
    }

    /// Predicted time of a batch of `work` units; `None` before the first observation.
    pub fn estimate(&self, work: f64) -> Option<Duration> {
        self.fit().map(|f| f.estimate(work))
    }
}

impl CostFit {
    /// Predicted time of a batch of `work` units by this line.
    pub fn estimate(&self, work: f64) -> Duration {
        let secs = self.fixed_seconds + self.per_unit_seconds * work;
        Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
    }

    /// The line's fixed part: what any batch costs, whatever its size.
    pub fn fixed(&self) -> Duration {
        Duration::from_secs_f64(self.fixed_seconds.clamp(0.0, 3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(x: f64) -> Duration {
        Duration::from_secs_f64(x * 1e-6)
    }

    #[test]
    fn knows_nothing_before_the_first_batch() {
        assert_eq!(BatchCost::default().estimate(10.0), None);
    }

    #[test]
    fn recovers_a_linear_cost() {
        let mut c = BatchCost::default();
        for i in 0..200 {
            let work = [1.0, 8.0, 32.0, 64.0][i % 4];
            c.observe(work, us(100.0 + 10.0 * work));
        }
        let f = c.fit().unwrap();
        assert!((f.fixed_seconds - 100e-6).abs() < 1e-7, "{f:?}");
        assert!((f.per_unit_seconds - 10e-6).abs() < 1e-9, "{f:?}");
        let e = c.estimate(16.0).unwrap().as_secs_f64();
        assert!((e - 260e-6).abs() < 1e-7, "{e}");
    }

    #[test]
    fn one_size_seen_extrapolates_proportionally() {
        let mut c = BatchCost::default();
        c.observe(4.0, us(400.0));
        c.observe(4.0, us(400.0));
        let e = c.estimate(8.0).unwrap().as_secs_f64();
        assert!((e - 800e-6).abs() < 1e-9, "{e}");
    }

    #[test]
    fn follows_a_device_that_slows_down() {
        let mut c = BatchCost::default();
        for i in 0..300 {
            let work = (1 + i % 8) as f64;
            c.observe(work, us(50.0 * work));
        }
        for i in 0..300 {
            let work = (1 + i % 8) as f64;
            c.observe(work, us(100.0 * work));
        }
        let e = c.estimate(4.0).unwrap().as_secs_f64();
        assert!((e - 400e-6).abs() < 20e-6, "{e}");
    }
}
