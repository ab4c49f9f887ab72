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
    /// A lane finished its work after a capture (`handler.capture_fixed_ns`) and looks for
    /// the next one.
    LaneReady(Lane),
    /// The engine's policy timer (the generation tells stale timers apart).
    Timer(u64),
    /// The decoupled model's sink finished writing its batch (one batch is in flight at a
    /// time; the loop keeps its size, so the event stays 16 bytes).
    SinkDone,
    /// Write-protect the region: the snapshot instant.
    SnapshotStart,
    /// The region is protected; writers run again and the engine starts.
    FreezeEnd,
}

/// (time, sequence number) in one integer: time in the high half, so the order is the
/// pair's order, compared in one step (no branch on the time being equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u128);

impl Key {
    fn new(at: Nanos, seq: u64) -> Key {
        Key((at.as_ns() as u128) << 64 | seq as u128)
    }
    fn at(self) -> Nanos {
        Nanos((self.0 >> 64) as u64)
    }
}

/// Pending events, earliest first.
///
/// The earliest event may sit outside the heap in `first`: the common step "pop a capture,
/// push the next one, which is again the earliest" then costs no heap operation. Invariant:
/// `first`, when present, is earlier than everything in the heap, so the order is exactly
/// the heap's.
#[derive(Debug, Default)]
pub struct EventQueue {
    first: Option<(Key, EventSlot)>,
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
    // Inlined into the loop: the common cases touch only `first`, and the event comes back
    // in registers instead of through memory.
    #[inline]
    pub fn push(&mut self, at: Nanos, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = Key::new(at, seq);
        match &self.first {
            Some((first, _)) if key >= *first => {}
            Some(_) => {
                if let Some(displaced) = self.first.replace((key, EventSlot(event))) {
                    self.heap.push(Reverse(displaced));
                }
                return;
            }
            None => {
                if self.heap.peek().is_none_or(|Reverse((top, _))| key < *top) {
                    self.first = Some((key, EventSlot(event)));
                    return;
                }
            }
        }
        self.heap.push(Reverse((key, EventSlot(event))));
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, Event)> {
        let (key, EventSlot(e)) = match self.first.take() {
            Some(first) => first,
            None => self.heap.pop()?.0,
        };
        Some((key.at(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        let times = [5u64, 3, 3, 9, 1, 3, 0, 7, 7, 2];
        for (i, &t) in times.iter().enumerate() {
            q.push(Nanos(t), Event::Write(i as u32));
            if i == 4 {
                // Interleave pops with pushes, as the loop does.
                assert_eq!(q.pop(), Some((Nanos(1), Event::Write(4))));
            }
        }
        let mut expected: Vec<(u64, u32)> =
            times.iter().enumerate().filter(|&(i, _)| i != 4).map(|(i, &t)| (t, i as u32)).collect();
        expected.sort();
        let got: Vec<(u64, u32)> = std::iter::from_fn(|| q.pop())
            .map(|(t, e)| match e {
                Event::Write(i) => (t.as_ns(), i),
                _ => (u64::MAX, 0),
            })
            .collect();
        assert_eq!(got, expected);
    }

    /// Random pushes and pops against a sorted reference; the queue is popped whenever it
    /// holds `len_max` events.
    fn check_against_a_sorted_reference(push_share: f64, len_max: usize) {
        use rand::{RngExt, SeedableRng};
        // Many equal times, so the insertion-order tie break is exercised.
        const OPS: u32 = 20_000;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut q = EventQueue::default();
        let mut reference = std::collections::BTreeMap::new();
        let mut seq = 0u32;
        let mut now = 0u64;
        for _ in 0..OPS {
            if reference.len() < len_max && rng.random_bool(push_share) {
                // Mostly soon, sometimes far ahead (a writer's next write).
                let ahead = if rng.random_bool(0.2) { rng.random_range(0..200u64) } else { rng.random_range(0..8u64) };
                let at = now + ahead;
                q.push(Nanos(at), Event::Write(seq));
                reference.insert((at, seq), seq);
                seq += 1;
            } else {
                let expected = reference.pop_first().map(|((at, _), w)| (Nanos(at), Event::Write(w)));
                let got = q.pop();
                assert_eq!(got, expected);
                if let Some((at, _)) = got {
                    now = at.as_ns();
                }
            }
        }
        while let Some(((at, _), w)) = reference.pop_first() {
            assert_eq!(q.pop(), Some((Nanos(at), Event::Write(w))));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn matches_a_sorted_reference_under_random_pushes_and_pops() {
        // Grows to about 2000 events.
        check_against_a_sorted_reference(0.55, usize::MAX);
        // At most 12 events, as in a run with a few writers.
        check_against_a_sorted_reference(0.5, 12);
    }

    #[test]
    fn an_event_is_sixteen_bytes() {
        // The queue moves events on every push and pop; a larger payload costs the hot loop.
        assert_eq!(std::mem::size_of::<Event>(), 16);
    }
}
