//! Heavy-tailed stalls: rare, and when they come, Pareto distributed.

use super::{DiskParamsError, STALL_NS_MAX};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// A stall that hits an operation with probability `per_million / 10^6` and lasts a
/// Pareto(`scale_ns`, `shape`) time, capped at `ns_max`. Shape near 1 gives the long tail
/// disks show (journal commits, seeks to metadata, garbage collection).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallParams {
    /// Operations in a million that stall.
    pub per_million: u32,
    /// The shortest stall (the Pareto scale).
    pub scale_ns: u64,
    /// The Pareto tail index: smaller is a heavier tail.
    pub shape: f64,
    /// Longest single stall; longer draws are clamped to it.
    pub ns_max: u64,
}

impl StallParams {
    /// No stalls.
    pub const NONE: StallParams = StallParams { per_million: 0, scale_ns: 0, shape: 1.0, ns_max: 0 };

    /// A stall for one operation (zero most of the time): a coin with `per_million`, then
    /// [`StallParams::length_ns`].
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        if self.per_million == 0 || rng.random_range(0..1_000_000u32) >= self.per_million {
            return 0;
        }
        self.length_ns(rng)
    }

    /// The length of one stall that does happen: [`pareto_ns`] with these parameters.
    pub fn length_ns<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        pareto_ns(rng, self.scale_ns, self.shape, self.ns_max)
    }

    /// Checks the bounds; the error names `field` (the caller's name for these stalls).
    pub fn validate(&self, field: &'static str) -> Result<(), DiskParamsError> {
        if self.per_million > 1_000_000 {
            return Err(DiskParamsError::new(field, format!("per_million {} is above 1000000", self.per_million)));
        }
        if !(self.shape >= 0.5 && self.shape <= 10.0) {
            return Err(DiskParamsError::new(field, format!("shape {} is outside 0.5..=10", self.shape)));
        }
        if self.ns_max > STALL_NS_MAX {
            return Err(DiskParamsError::new(field, format!("ns_max {} is above one hour", self.ns_max)));
        }
        Ok(())
    }
}

/// The one Pareto sampler of the project (the simulator's disk and the Linux backend's
/// slow-device emulation both draw through it): `scale_ns / U^(1/shape)` with `U` uniform in
/// (0, 1], clamped to `ns_max`. One uniform draw per call.
pub fn pareto_ns<R: Rng + ?Sized>(rng: &mut R, scale_ns: u64, shape: f64, ns_max: u64) -> u64 {
    let u: f64 = rng.random();
    // Inverse CDF of Pareto; 1 - u is in (0, 1], so the power is finite for a positive
    // shape. Float-to-int casts saturate (and a NaN from a nonsensical shape becomes 0).
    let x = scale_ns as f64 / (1.0 - u).powf(1.0 / shape);
    (x as u64).min(ns_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn pareto_draws_stay_between_scale_and_cap() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws: Vec<u64> = (0..2_000).map(|_| pareto_ns(&mut rng, 500_000, 1.5, 10_000_000)).collect();
        assert!(draws.iter().all(|&d| (500_000..=10_000_000).contains(&d)));
        // P(X > 2 * scale) = 2^-1.5 = 35%: far from both ends.
        let above = draws.iter().filter(|&&d| d > 1_000_000).count();
        assert!((500..900).contains(&above), "{above} of 2000 above twice the scale");
    }

    #[test]
    fn stalls_come_at_their_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let stall = StallParams { per_million: 10_000, scale_ns: 1_000, shape: 2.0, ns_max: 1_000_000 };
        let hits = (0..100_000).filter(|_| stall.draw(&mut rng) > 0).count();
        // 1% of 100 000: 1000, standard deviation ~31.
        assert!((850..1150).contains(&hits), "{hits}");
        assert_eq!(StallParams::NONE.draw(&mut rng), 0);
    }
}
