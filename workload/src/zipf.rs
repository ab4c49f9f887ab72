//! Zipf sampling by rejection-inversion (W. Hörmann and G. Derflinger, "Rejection-inversion
//! to generate variates from monotone discrete distributions", ACM TOMACS 6(3), 1996).
//!
//! O(1) expected time per sample and O(1) memory for any number of elements, which is what
//! a 16 Mi-page region needs (a cumulative table would take 128 MiB).

use rand::{Rng, RngExt};

/// Draws ranks `1..=n` with probability proportional to `rank^-theta`.
#[derive(Clone, Debug)]
pub struct ZipfSampler {
    n: f64,
    theta: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

/// Bound on rejection rounds; the expected count is below 1.1 for every theta, so reaching
/// it means a broken random source, and the sampler then answers the most popular rank.
const REJECTION_ROUNDS_MAX: u32 = 1_000;

impl ZipfSampler {
    /// `n >= 1` elements, exponent `theta > 0`.
    pub fn new(n: u64, theta: f64) -> ZipfSampler {
        let n = n.max(1) as f64;
        let mut z = ZipfSampler { n, theta, h_integral_x1: 0.0, h_integral_n: 0.0, s: 0.0 };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        for _ in 0..REJECTION_ROUNDS_MAX {
            let v: f64 = rng.random();
            let u = self.h_integral_n + v * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
        1
    }

    /// `x^-theta`.
    fn h(&self, x: f64) -> f64 {
        (-self.theta * x.ln()).exp()
    }

    /// An antiderivative of `h`: `(x^(1-theta) - 1) / (1 - theta)`, `ln x` at theta = 1.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.theta) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.theta)).max(-1.0);
        (ln1p_over_x(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, continuous at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 { x.ln_1p() / x } else { 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x)) }
}

/// `(e^x - 1) / x`, continuous at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 { x.exp_m1() / x } else { 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Frequencies of the first ranks match `k^-theta / H(n, theta)` within sampling noise.
    #[test]
    fn frequencies_follow_the_law() {
        for theta in [0.5, 0.99, 1.0, 1.5] {
            let n = 1000u64;
            let z = ZipfSampler::new(n, theta);
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let draws = 200_000;
            let mut counts = [0u64; 4];
            for _ in 0..draws {
                let k = z.sample(&mut rng);
                assert!((1..=n).contains(&k));
                if k <= 4 {
                    counts[k as usize - 1] += 1;
                }
            }
            let norm: f64 = (1..=n).map(|k| (k as f64).powf(-theta)).sum();
            for (i, &c) in counts.iter().enumerate() {
                let expected = ((i + 1) as f64).powf(-theta) / norm * draws as f64;
                let tolerance = 5.0 * expected.sqrt() + 1.0;
                assert!((c as f64 - expected).abs() < tolerance, "theta={theta} rank {}: {c} vs {expected:.0}", i + 1);
            }
        }
    }

    #[test]
    fn one_element_always_gives_rank_one() {
        let z = ZipfSampler::new(1, 0.99);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert!((0..100).all(|_| z.sample(&mut rng) == 1));
    }
}
