//! Three bits per page, interleaved: the three words covering 64 pages sit side by side, so
//! the protect, written and saved bits of a page share one cache line (one miss, not three,
//! when the scan jumps to a faulting page).

/// Starts loading the cache line holding `value`, without waiting for it: unlike a plain
/// load, the CPU does not hold up later instructions until the line arrives. No effect on
/// what the program computes; a no-op where the CPU has no prefetch instruction.
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    safe_arch::prefetch_t0(value);
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    let _ = value;
}

/// Which of the three bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    Protected = 0,
    Written = 1,
    Saved = 2,
}

/// `len` pages, three bits each, all clear at construction.
#[derive(Clone, Debug)]
pub struct PageBits {
    words: Vec<[u64; 3]>,
    len: u64,
}

impl PageBits {
    pub fn new(len: u64) -> PageBits {
        PageBits { words: vec![[0; 3]; len.div_ceil(64) as usize], len }
    }

    /// Sets or clears one plane for every page.
    pub fn fill(&mut self, plane: Plane, set: bool) {
        let tail = self.len % 64;
        let last = self.words.len().saturating_sub(1);
        for (i, w) in self.words.iter_mut().enumerate() {
            w[plane as usize] = match (set, i == last && tail != 0) {
                (false, _) => 0,
                (true, false) => u64::MAX,
                (true, true) => (1u64 << tail) - 1,
            };
        }
    }

    /// Asks the CPU to load page `i`'s three bits into the cache (a hint, see [`prefetch`]).
    #[inline]
    pub fn prefetch(&self, i: u64) {
        if let Some(w) = self.words.get((i / 64) as usize) {
            prefetch(w);
        }
    }

    #[inline]
    pub fn get(&self, plane: Plane, i: u64) -> bool {
        self.words[(i / 64) as usize][plane as usize] >> (i % 64) & 1 == 1
    }

    /// All three bits of page `i` as `[protected, written, saved]`.
    #[inline]
    pub fn all(&self, i: u64) -> [bool; 3] {
        let w = &self.words[(i / 64) as usize];
        let shift = i % 64;
        [w[0] >> shift & 1 == 1, w[1] >> shift & 1 == 1, w[2] >> shift & 1 == 1]
    }

    #[inline]
    pub fn set(&mut self, plane: Plane, i: u64) {
        self.words[(i / 64) as usize][plane as usize] |= 1 << (i % 64);
    }

    #[inline]
    pub fn clear(&mut self, plane: Plane, i: u64) {
        self.words[(i / 64) as usize][plane as usize] &= !(1 << (i % 64));
    }

    pub fn count_ones(&self, plane: Plane) -> u64 {
        self.words.iter().map(|w| w[plane as usize].count_ones() as u64).sum()
    }

    /// Heap bytes used.
    pub fn bytes(&self) -> u64 {
        self.words.len() as u64 * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_independent_and_fill_respects_the_length() {
        let mut b = PageBits::new(130);
        b.fill(Plane::Protected, true);
        assert_eq!(b.count_ones(Plane::Protected), 130);
        b.set(Plane::Saved, 129);
        b.clear(Plane::Protected, 129);
        assert_eq!(b.all(129), [false, false, true]);
        assert_eq!(b.all(128), [true, false, false]);
        assert_eq!(b.count_ones(Plane::Saved), 1);
        b.fill(Plane::Protected, false);
        assert_eq!(b.count_ones(Plane::Protected), 0);
    }
}
