//! When writes happen: the gaps between one writer's writes (its think time).

use crate::pattern::Pattern;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Upper bound on one writer's rate (a write every 10 ns is faster than any store loop that
/// touches a new page).
pub const WRITES_PER_SEC_MAX: f64 = 1e8;
/// Phase changes one draw may cross before it gives up and returns the gap so far.
const PHASE_CROSSINGS_MAX: u32 = 64;

/// An on/off modulation of the write rate: for `on_ns` of every `period_ns` the rate is
/// multiplied by `on_factor`, the rest of the period by `off_factor`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    pub period_ns: u64,
    pub on_ns: u64,
    pub on_factor: f64,
    pub off_factor: f64,
}

impl Burst {
    /// 30 frames per second; a quarter of each frame busy decoding and drawing at 3.4x the
    /// mean rate, the rest at 0.2x, so the mean rate is the nominal one
    /// (0.25 * 3.4 + 0.75 * 0.2 = 1).
    pub const VIDEO: Burst = Burst { period_ns: 33_333_333, on_ns: 8_333_333, on_factor: 3.4, off_factor: 0.2 };
}

/// Bad timing parameters.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum TimingError {
    #[error("writes_per_sec {0} is outside (0, {WRITES_PER_SEC_MAX}]")]
    Rate(f64),
    #[error("burst: on_ns must be in 1..period_ns and factors positive, got {0:?}")]
    Burst(Burst),
}

/// Gaps between one writer's writes: exponential (a Poisson process) at `writes_per_sec`,
/// optionally modulated by a [`Burst`]. Memoryless gaps make the bursty case exact: a draw
/// that crosses a phase boundary restarts at the boundary with the new rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteTiming {
    pub writes_per_sec: f64,
    #[serde(default)]
    pub burst: Option<Burst>,
}

impl WriteTiming {
    /// Timing at a steady rate.
    pub fn steady(writes_per_sec: f64) -> Result<WriteTiming, TimingError> {
        let timing = WriteTiming { writes_per_sec, burst: None };
        timing.validate()?;
        Ok(timing)
    }

    /// The timing that goes with a pattern: bursty for [`Pattern::Video`], steady otherwise.
    pub fn for_pattern(pattern: &Pattern, writes_per_sec: f64) -> Result<WriteTiming, TimingError> {
        let burst = matches!(pattern, Pattern::Video).then_some(Burst::VIDEO);
        let timing = WriteTiming { writes_per_sec, burst };
        timing.validate()?;
        Ok(timing)
    }

    /// Checks the rate and the burst against their bounds.
    pub fn validate(&self) -> Result<(), TimingError> {
        if !(self.writes_per_sec > 0.0 && self.writes_per_sec <= WRITES_PER_SEC_MAX) {
            return Err(TimingError::Rate(self.writes_per_sec));
        }
        if let Some(b) = self.burst {
            let ok = b.on_ns > 0 && b.on_ns < b.period_ns && b.on_factor > 0.0 && b.off_factor > 0.0;
            let peak = b.on_factor * self.writes_per_sec;
            let peak_ok = peak.is_finite() && peak <= WRITES_PER_SEC_MAX;
            if !ok || !peak_ok {
                return Err(TimingError::Burst(b));
            }
        }
        Ok(())
    }

    /// The gap in nanoseconds from a write at `now_ns` to the same writer's next one.
    pub fn next_gap_ns<R: Rng + ?Sized>(&self, now_ns: u64, rng: &mut R) -> u64 {
        let Some(burst) = self.burst else {
            return exponential_ns(self.writes_per_sec, rng);
        };
        let mut t = now_ns;
        for _ in 0..PHASE_CROSSINGS_MAX {
            let phase = t % burst.period_ns;
            let (factor, phase_end) = if phase < burst.on_ns {
                (burst.on_factor, t - phase + burst.on_ns)
            } else {
                (burst.off_factor, t - phase + burst.period_ns)
            };
            let gap = exponential_ns(self.writes_per_sec * factor, rng);
            if t + gap < phase_end {
                return t + gap - now_ns;
            }
            t = phase_end;
        }
        t - now_ns
    }
}

/// An exponential gap with mean `1 / per_sec` seconds, at least 1 ns.
fn exponential_ns<R: Rng + ?Sized>(per_sec: f64, rng: &mut R) -> u64 {
    // 1 - u is in (0, 1], so the log is finite.
    let u: f64 = rng.random();
    let secs = -(1.0 - u).ln() / per_sec;
    ((secs * 1e9) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn mean_rate(timing: &WriteTiming, draws: u32) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut now = 0u64;
        for _ in 0..draws {
            now += timing.next_gap_ns(now, &mut rng);
        }
        draws as f64 / (now as f64 / 1e9)
    }

    #[test]
    fn steady_rate_is_the_requested_one() {
        let rate = mean_rate(&WriteTiming::steady(50_000.0).expect("valid"), 100_000);
        assert!((48_000.0..52_000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn video_bursts_keep_the_mean_rate_and_cluster_writes() {
        let timing = WriteTiming::for_pattern(&Pattern::Video, 50_000.0).expect("valid");
        let rate = mean_rate(&timing, 200_000);
        assert!((47_000.0..53_000.0).contains(&rate), "{rate}");
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (mut now, mut in_burst) = (0u64, 0u32);
        for _ in 0..100_000 {
            now += timing.next_gap_ns(now, &mut rng);
            in_burst += u32::from(now % Burst::VIDEO.period_ns < Burst::VIDEO.on_ns);
        }
        // 85% of writes fall in the 25% of time that is a burst.
        assert!((83_000..87_000).contains(&in_burst), "{in_burst}");
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert_eq!(WriteTiming::steady(0.0), Err(TimingError::Rate(0.0)));
        assert!(WriteTiming::steady(f64::NAN).is_err());
        let bad = WriteTiming { writes_per_sec: 1.0, burst: Some(Burst { on_ns: 0, ..Burst::VIDEO }) };
        assert!(bad.validate().is_err());
    }
}
