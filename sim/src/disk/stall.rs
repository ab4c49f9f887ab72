//! Heavy-tailed stalls: rare, and when they come, Pareto distributed.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A stall that hits an operation with probability `per_million / 10^6` and lasts a
/// Pareto(`scale_ns`, `shape`) time, capped at `ns_max`. Shape near 1 gives the long tail
/// disks show (journal commits, seeks to metadata, garbage collection).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallParams {
    pub per_million: u32,
    pub scale_ns: u64,
    pub shape: f64,
    pub ns_max: u64,
}

impl StallParams {
    /// No stalls.
    pub const NONE: StallParams = StallParams { per_million: 0, scale_ns: 0, shape: 1.0, ns_max: 0 };

    /// A stall for one operation (zero most of the time).
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> u64 {
        if self.per_million == 0 || rng.random_range(0..1_000_000u32) >= self.per_million {
            return 0;
        }
        let u: f64 = rng.random();
        // Inverse CDF of Pareto: scale / U^(1/shape), U in (0, 1].
        let x = self.scale_ns as f64 / (1.0 - u).powf(1.0 / self.shape);
        (x as u64).min(self.ns_max)
    }

    pub(crate) fn validate(&self, field: &'static str) -> Result<(), crate::config::ConfigFieldError> {
        use crate::config::ConfigFieldError as E;
        if self.per_million > 1_000_000 {
            return Err(E::new(field, format!("per_million {} is above 1000000", self.per_million)));
        }
        if !(self.shape >= 0.5 && self.shape <= 10.0) {
            return Err(E::new(field, format!("shape {} is outside 0.5..=10", self.shape)));
        }
        if self.ns_max > crate::config::SIM_TIME_NS_MAX {
            return Err(E::new(field, format!("ns_max {} is above one hour", self.ns_max)));
        }
        Ok(())
    }
}
