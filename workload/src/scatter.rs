//! A cheap bijection of `0..n` onto itself, to spread popular pages over the region.
//!
//! Without it, rank 1 of a zipf law would be page 0, and hot pages would all sit where the
//! scan starts, which would flatter every policy. `i -> (i * stride + offset) mod n` with
//! `gcd(stride, n) == 1` is a permutation that costs one multiply, and needs no table.

/// The permutation `i -> (i * stride + offset) mod n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scatter {
    n: u64,
    stride: u64,
    offset: u64,
}

/// Steps tried to find a stride coprime to `n`; consecutive integers near any number contain
/// one coprime to it long before this (the Jacobsthal function is tiny for u64).
const STRIDE_SEARCH_STEPS_MAX: u64 = 10_000;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Scatter {
    /// A permutation of `0..n` (`n >= 1`) whose stride is near `n` times the golden ratio's
    /// fractional part, so neighbouring inputs land far apart.
    pub(crate) fn new(n: u64, offset: u64) -> Scatter {
        let n = n.max(1);
        let start = ((n as f64 * 0.618_033_988_749_895) as u64).max(1);
        let stride = (0..STRIDE_SEARCH_STEPS_MAX).map(|d| start + d).find(|&s| gcd(s % n, n) == 1).unwrap_or(1);
        Scatter { n, stride: stride % n.max(2), offset: offset % n }
    }

    pub(crate) fn map(&self, i: u64) -> u64 {
        ((i as u128 * self.stride as u128 + self.offset as u128) % self.n as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_permutation() {
        for n in [1u64, 2, 3, 10, 64, 97, 1000, 4096] {
            let s = Scatter::new(n, 7);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = s.map(i) as usize;
                assert!(!seen[j], "n={n}: {j} hit twice");
                seen[j] = true;
            }
        }
    }
}
