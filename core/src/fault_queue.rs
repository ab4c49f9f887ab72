//! Write-faulted pages waiting to be saved, in the order their events were read.

use crate::page::PageIndex;
use crate::time::Nanos;
use std::collections::VecDeque;

/// A fault whose page is claimed by the queue and not yet captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedFault {
    pub page: PageIndex,
    /// When the driver read the fault event.
    pub read_at: Nanos,
}

/// A bounded FIFO. Each page is in it at most once: the engine only queues a page it takes
/// out of the pending set.
#[derive(Clone, Debug)]
pub struct FaultQueue {
    faults: VecDeque<QueuedFault>,
    capacity: usize,
    peak: usize,
}

impl FaultQueue {
    pub fn with_capacity(capacity: usize) -> FaultQueue {
        FaultQueue { faults: VecDeque::with_capacity(capacity.min(1024)), capacity, peak: 0 }
    }
    pub fn is_full(&self) -> bool {
        self.faults.len() >= self.capacity
    }
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
    pub fn len(&self) -> usize {
        self.faults.len()
    }
    /// Most faults queued at once.
    pub fn peak(&self) -> usize {
        self.peak
    }
    /// Queues a fault. The caller checks [`FaultQueue::is_full`] first.
    pub fn push(&mut self, fault: QueuedFault) {
        assert!(!self.is_full(), "fault queue over its bound of {}", self.capacity);
        debug_assert!(!self.contains(fault.page), "{} queued twice", fault.page);
        self.faults.push_back(fault);
        self.peak = self.peak.max(self.faults.len());
    }
    pub fn pop(&mut self) -> Option<QueuedFault> {
        self.faults.pop_front()
    }
    /// Linear, but the queue holds at most one fault per blocked writer thread.
    pub fn contains(&self, page: PageIndex) -> bool {
        self.faults.iter().any(|f| f.page == page)
    }
    pub fn drain(&mut self) -> impl Iterator<Item = QueuedFault> + '_ {
        self.faults.drain(..)
    }
}
