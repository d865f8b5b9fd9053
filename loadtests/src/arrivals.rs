//! Poisson arrival schedule for the open loop.
//!
//! Real clients arrive independently of one another, so the gaps between requests are
//! exponentially distributed; a fixed interval would hide the bursts that make a batching
//! server queue. The generator is a seeded SplitMix64 so a run's schedule is reproducible
//! and no RNG crate is needed for a dozen lines of arithmetic.

use std::time::Duration;

/// Deterministic exponential inter-arrival times with mean `1 / rate`.
pub struct PoissonArrivals {
    state: u64,
    rate: f64,
}

impl PoissonArrivals {
    /// `rate` is in events per second and must be positive.
    pub fn new(rate: f64, seed: u64) -> Self {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        Self { state: seed, rate }
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and statistically good enough here.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so `ln` below stays finite.
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Gap until the next arrival.
    pub fn next_gap(&mut self) -> Duration {
        Duration::from_secs_f64(-self.next_unit().ln() / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_gap_matches_rate() {
        let mut a = PoissonArrivals::new(1000.0, 42);
        let n = 200_000;
        let total: f64 = (0..n).map(|_| a.next_gap().as_secs_f64()).sum();
        let mean = total / n as f64;
        // Standard error of the mean is 1ms / sqrt(n) ≈ 2.2µs; allow ~5 of them.
        assert!((mean - 0.001).abs() < 12e-6, "mean gap {mean}");
    }

    #[test]
    fn gaps_are_exponential_not_constant() {
        // For an exponential distribution P(gap > mean) = e^-1 ≈ 0.368.
        let mut a = PoissonArrivals::new(100.0, 7);
        let n = 100_000;
        let above = (0..n)
            .filter(|_| a.next_gap() > Duration::from_millis(10))
            .count();
        let frac = above as f64 / n as f64;
        assert!((frac - (-1.0f64).exp()).abs() < 0.01, "fraction {frac}");
    }

    #[test]
    fn same_seed_same_schedule() {
        let mut a = PoissonArrivals::new(50.0, 1);
        let mut b = PoissonArrivals::new(50.0, 1);
        for _ in 0..100 {
            assert_eq!(a.next_gap(), b.next_gap());
        }
    }
}
