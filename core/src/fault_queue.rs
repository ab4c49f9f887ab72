//! Write-faulted capture units waiting to be saved, in the order their events were read.

use crate::bitmap::PageBitmap;
use crate::page::{PageIndex, PageRun};
use crate::time::Nanos;
use std::collections::VecDeque;

/// A fault whose capture unit is claimed by the queue and not yet captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedFault {
    /// The whole capture unit around the faulting page (one page unless units are larger).
    pub run: PageRun,
    /// When the driver read the fault event.
    pub read_at: Nanos,
}

/// A FIFO bounded by `capacity`. Each page is in it at most once: the engine only queues a
/// unit it takes out of the pending set. A bitmap answers "is this page queued?" in O(1),
/// since the queue may hold many faults while the memory budget is exhausted.
#[derive(Clone, Debug)]
pub struct FaultQueue {
    faults: VecDeque<QueuedFault>,
    queued: PageBitmap,
    pages: u64,
    capacity: usize,
    peak: usize,
}

/// Queue slots allocated up front; more are allocated only when faults pile up.
const INITIAL_SLOTS: usize = 1024;

impl FaultQueue {
    /// A queue over a region of `page_count` pages holding at most `capacity` faults.
    pub fn new(page_count: u64, capacity: usize) -> FaultQueue {
        FaultQueue {
            faults: VecDeque::with_capacity(capacity.min(INITIAL_SLOTS)),
            queued: PageBitmap::all_clear(page_count),
            pages: 0,
            capacity,
            peak: 0,
        }
    }
    pub fn is_full(&self) -> bool {
        self.faults.len() >= self.capacity
    }
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
    /// Faults queued.
    pub fn len(&self) -> usize {
        self.faults.len()
    }
    /// Pages the queued faults cover.
    pub fn pages(&self) -> u64 {
        self.pages
    }
    /// Most faults queued at once.
    pub fn peak(&self) -> usize {
        self.peak
    }
    /// The oldest fault, without taking it.
    pub fn front(&self) -> Option<&QueuedFault> {
        self.faults.front()
    }
    /// Queues a fault. The caller checks [`FaultQueue::is_full`] first.
    pub fn push(&mut self, fault: QueuedFault) {
        assert!(!self.is_full(), "fault queue over its bound of {}", self.capacity);
        for page in fault.run.pages() {
            let was_clear = self.queued.set(page.0);
            debug_assert!(was_clear, "{page} queued twice");
        }
        self.pages += fault.run.count;
        self.faults.push_back(fault);
        self.peak = self.peak.max(self.faults.len());
    }
    pub fn pop(&mut self) -> Option<QueuedFault> {
        let fault = self.faults.pop_front()?;
        for page in fault.run.pages() {
            self.queued.clear(page.0);
        }
        self.pages -= fault.run.count;
        Some(fault)
    }
    /// The word of the queued set holding `page` (see [`PageBitmap::word_holding`]).
    pub fn queued_word(&self, page: PageIndex) -> Option<&u64> {
        self.queued.word_holding(page.0)
    }
    pub fn contains(&self, page: PageIndex) -> bool {
        page.0 < self.queued.len() && self.queued.get(page.0)
    }
    pub fn drain(&mut self) -> impl Iterator<Item = QueuedFault> + '_ {
        self.queued = PageBitmap::all_clear(self.queued.len());
        self.pages = 0;
        self.faults.drain(..)
    }
}
