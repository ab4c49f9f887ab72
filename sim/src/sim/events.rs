//! The event queue: a min-heap on (time, sequence number), so ties break in insertion
//! order and runs are deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use wpsnap_core::{Lane, Nanos};

/// Something that happens at a point in virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Writer `w` issues its next write.
    Write(u32),
    /// Writer `w`'s fault on a page became readable by the handler.
    FaultDelivered(u32),
    /// Writer `w` runs again after its page was unprotected.
    Resume(u32),
    /// A lane finished copying out its capture.
    CaptureDone(Lane),
    /// The engine's policy timer (the generation tells stale timers apart).
    Timer(u64),
    /// The decoupled model's sink finished writing `pages` staged pages.
    SinkDone(u64),
    /// Write-protect the region: the snapshot instant.
    SnapshotStart,
    /// The region is protected; writers run again and the engine starts.
    FreezeEnd,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u64, u64);

/// Pending events, earliest first.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Reverse<(Key, EventSlot)>>,
    next_seq: u64,
}

/// The event, ordered only by the key it travels with.
#[derive(Debug)]
struct EventSlot(Event);
impl PartialEq for EventSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for EventSlot {}
impl PartialOrd for EventSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for EventSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl EventQueue {
    pub fn push(&mut self, at: Nanos, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((Key(at.as_ns(), seq), EventSlot(event))));
    }

    pub fn pop(&mut self) -> Option<(Nanos, Event)> {
        self.heap.pop().map(|Reverse((Key(t, _), EventSlot(e)))| (Nanos(t), e))
    }
}
