//! A plain bit per page.

/// `len` bits, all clear or all set at construction.
#[derive(Clone, Debug)]
pub struct Bits {
    words: Vec<u64>,
    len: u64,
}

impl Bits {
    pub fn new(len: u64, set: bool) -> Bits {
        let mut bits = Bits { words: vec![0; len.div_ceil(64) as usize], len };
        bits.fill(set);
        bits
    }
    pub fn fill(&mut self, set: bool) {
        self.words.fill(if set { u64::MAX } else { 0 });
        let tail = self.len % 64;
        if let (true, true, Some(last)) = (set, tail != 0, self.words.last_mut()) {
            *last = (1u64 << tail) - 1;
        }
    }
    pub fn get(&self, i: u64) -> bool {
        self.words[(i / 64) as usize] >> (i % 64) & 1 == 1
    }
    pub fn set(&mut self, i: u64) {
        self.words[(i / 64) as usize] |= 1 << (i % 64);
    }
    pub fn clear(&mut self, i: u64) {
        self.words[(i / 64) as usize] &= !(1 << (i % 64));
    }
    pub fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }
    /// Heap bytes used.
    pub fn bytes(&self) -> u64 {
        self.words.len() as u64 * 8
    }
}
