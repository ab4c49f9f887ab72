//! One bit per page: the set of pages still waiting to be saved.
//!
//! A bit per page (not a struct per page) keeps a 64 GiB region of 4 KiB pages at 2 MiB,
//! which is what lets the simulator run region sizes real machines have.

/// A fixed-size bitmap over page indices `0..len`.
#[derive(Clone, Debug)]
pub struct PageBitmap {
    words: Vec<u64>,
    len: u64,
    ones: u64,
}

impl PageBitmap {
    /// A bitmap of `len` bits, all set.
    pub fn all_set(len: u64) -> PageBitmap {
        let word_count = len.div_ceil(64) as usize;
        let mut words = vec![u64::MAX; word_count];
        let tail = len % 64;
        if let (true, Some(last)) = (tail != 0, words.last_mut()) {
            *last = (1u64 << tail) - 1;
        }
        PageBitmap { words, len, ones: len }
    }

    /// A bitmap of `len` bits, all clear.
    pub fn all_clear(len: u64) -> PageBitmap {
        PageBitmap { words: vec![0; len.div_ceil(64) as usize], len, ones: 0 }
    }

    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        self.ones
    }

    pub fn get(&self, bit: u64) -> bool {
        debug_assert!(bit < self.len);
        self.words[(bit / 64) as usize] >> (bit % 64) & 1 == 1
    }

    /// The word holding `bit`, if in range: for a caller that prefetches it (a hint to the CPU;
    /// nothing is read or changed through it).
    pub fn word_holding(&self, bit: u64) -> Option<&u64> {
        self.words.get((bit / 64) as usize)
    }

    /// Clears `bit`; returns whether it was set.
    pub fn clear(&mut self, bit: u64) -> bool {
        let word = &mut self.words[(bit / 64) as usize];
        let mask = 1u64 << (bit % 64);
        let was = *word & mask != 0;
        *word &= !mask;
        self.ones -= was as u64;
        was
    }

    /// Sets `bit`; returns whether it was clear.
    pub fn set(&mut self, bit: u64) -> bool {
        let word = &mut self.words[(bit / 64) as usize];
        let mask = 1u64 << (bit % 64);
        let was_clear = *word & mask == 0;
        *word |= mask;
        self.ones += was_clear as u64;
        was_clear
    }

    /// Clears `count` bits from `first`, all of which must be set.
    pub fn clear_run(&mut self, first: u64, count: u64) {
        for bit in first..first + count {
            let was = self.clear(bit);
            debug_assert!(was, "clear_run over a clear bit {bit}");
        }
    }

    /// The first set bit at or after `from`, wrapping around to the start once.
    pub fn next_set_wrapping(&self, from: u64) -> Option<u64> {
        if self.ones == 0 {
            return None;
        }
        let from = if from >= self.len { 0 } else { from };
        self.next_set_in(from, self.len).or_else(|| self.next_set_in(0, from))
    }

    /// The first set bit in `from..to`.
    fn next_set_in(&self, from: u64, to: u64) -> Option<u64> {
        if from >= to {
            return None;
        }
        let mut word_index = (from / 64) as usize;
        let mut word = self.words[word_index] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let bit = word_index as u64 * 64 + word.trailing_zeros() as u64;
                return (bit < to).then_some(bit);
            }
            word_index += 1;
            if word_index as u64 * 64 >= to {
                return None;
            }
            word = self.words[word_index];
        }
    }

    /// How many bits from `first` on are set in a row, counting at most `max`.
    pub fn run_length(&self, first: u64, max: u64) -> u64 {
        let end = self.len.min(first.saturating_add(max));
        let mut bit = first;
        while bit < end {
            let word = self.words[(bit / 64) as usize] >> (bit % 64);
            // Ones from `bit` to the end of this word, or to the first clear bit.
            let ones = (!word).trailing_zeros() as u64;
            let in_word = 64 - bit % 64;
            if ones < in_word {
                bit += ones;
                break;
            }
            bit += in_word;
        }
        bit.min(end) - first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_set_counts_and_masks_the_tail() {
        let b = PageBitmap::all_set(70);
        assert_eq!(b.count_ones(), 70);
        assert!(b.get(69));
        assert_eq!(b.run_length(60, 100), 10);
    }

    #[test]
    fn next_set_wraps_once_and_stops_when_empty() {
        let mut b = PageBitmap::all_set(130);
        for bit in 0..130 {
            if bit != 3 && bit != 128 {
                b.clear(bit);
            }
        }
        assert_eq!(b.next_set_wrapping(4), Some(128));
        assert_eq!(b.next_set_wrapping(129), Some(3));
        assert_eq!(b.next_set_wrapping(500), Some(3));
        b.clear(3);
        b.clear(128);
        assert_eq!(b.next_set_wrapping(0), None);
    }

    #[test]
    fn run_length_stops_at_a_gap_and_at_max() {
        let mut b = PageBitmap::all_set(200);
        b.clear(150);
        assert_eq!(b.run_length(10, 1000), 140);
        assert_eq!(b.run_length(10, 7), 7);
        assert_eq!(b.run_length(150, 10), 0);
        assert_eq!(b.run_length(63, 2), 2);
    }

    #[test]
    fn set_and_clear_report_change() {
        let mut b = PageBitmap::all_set(10);
        assert!(b.clear(4));
        assert!(!b.clear(4));
        assert_eq!(b.count_ones(), 9);
        assert!(b.set(4));
        assert!(!b.set(4));
        assert_eq!(b.count_ones(), 10);
    }
}
