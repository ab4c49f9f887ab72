//! A bitmap of the pages seen so far, for duplicate and missing-page detection. Its size is
//! `page_count / 8` bytes, and `page_count` is bounded by `PAGE_COUNT_MAX` before it is built.

/// One bit per page.
#[derive(Debug)]
pub(crate) struct PageSet {
    words: Vec<u64>,
    page_count: u64,
}

impl PageSet {
    /// `page_count` must already be checked against `PAGE_COUNT_MAX`.
    pub(crate) fn new(page_count: u64) -> Self {
        PageSet { words: vec![0; page_count.div_ceil(64) as usize], page_count }
    }

    /// Marks `index`; returns false if it was already marked. `index < page_count` is checked by the caller.
    pub(crate) fn insert(&mut self, index: u64) -> bool {
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        let Some(w) = self.words.get_mut(word) else { return false };
        let fresh = *w & bit == 0;
        *w |= bit;
        fresh
    }

    pub(crate) fn contains(&self, index: u64) -> bool {
        self.words.get((index / 64) as usize).is_some_and(|w| w & (1u64 << (index % 64)) != 0)
    }

    /// The lowest index not yet marked, if any.
    pub(crate) fn first_missing(&self) -> Option<u64> {
        let (i, w) = self.words.iter().enumerate().find(|(_, w)| **w != u64::MAX)?;
        let index = i as u64 * 64 + u64::from(w.trailing_ones());
        (index < self.page_count).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_detects_duplicates_and_first_missing() {
        let mut s = PageSet::new(130);
        assert_eq!(s.first_missing(), Some(0));
        for i in 0..130 {
            assert!(s.insert(i));
        }
        assert!(!s.insert(64));
        assert_eq!(s.first_missing(), None);
        let mut s = PageSet::new(130);
        for i in (0..130).filter(|i| *i != 129) {
            s.insert(i);
        }
        assert_eq!(s.first_missing(), Some(129));
        assert!(s.contains(3) && !s.contains(129));
    }
}
