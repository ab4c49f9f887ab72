//! Page indices and runs of pages.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a page within the snapshotted region (0 is the first page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageIndex(pub u64);

impl fmt::Display for PageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "page {}", self.0)
    }
}

/// A run of `count` contiguous pages starting at `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageRun {
    pub first: PageIndex,
    pub count: u64,
}

impl PageRun {
    pub fn single(page: PageIndex) -> PageRun {
        PageRun { first: page, count: 1 }
    }
    /// One past the last page.
    pub fn end(&self) -> u64 {
        self.first.0 + self.count
    }
    pub fn contains(&self, page: PageIndex) -> bool {
        page.0 >= self.first.0 && page.0 < self.end()
    }
    pub fn pages(&self) -> impl Iterator<Item = PageIndex> + use<> {
        (self.first.0..self.end()).map(PageIndex)
    }
}
