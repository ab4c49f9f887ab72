//! The staging queue of the decoupled model: copied pages waiting for the sink.
//!
//! The engine already refuses captures when its staging count is used up; this queue enforces
//! the same bound itself (so a driver bug shows as an error, not as unbounded memory) and
//! recycles page buffers so the fault path does not allocate in the steady state.

use super::shim::{Condvar, Mutex, lock};
use std::collections::VecDeque;
use std::time::Duration;

/// Copied pages `first..first + count`, in `data`, with each page's record digest (zero flag
/// and crc32c) computed by the copying thread, so the sink thread only encodes and writes.
#[derive(Debug)]
pub struct StagedRun {
    pub first: u64,
    pub count: u64,
    pub data: Vec<u8>,
    pub digests: Vec<wpsnap_format::PageDigest>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The queue was closed (the snapshot ended or was cancelled); the run is dropped.
    Closed,
    /// The run would exceed the bound: the driver reserved room it did not have.
    Full { pages_used: u64, pages_max: u64 },
}

#[derive(Debug)]
struct State {
    runs: VecDeque<StagedRun>,
    pages_used: u64,
    free_buffers: Vec<Vec<u8>>,
    closed: bool,
}

/// Bounded queue of staged runs, multi-producer, single consumer.
#[derive(Debug)]
pub struct StagingQueue {
    state: Mutex<State>,
    ready: Condvar,
    pages_max: u64,
    free_buffers_max: usize,
    /// The consumer is woken at once only when this many pages are queued; below it, it finds
    /// them at its next timed look. Fewer wake-ups on the fault path, where every context
    /// switch on a busy machine delays the writer that faulted.
    wake_pages: u64,
}

impl StagingQueue {
    /// A queue holding at most `pages_max` pages.
    pub fn new(pages_max: u64) -> StagingQueue {
        StagingQueue {
            state: Mutex::new(State { runs: VecDeque::new(), pages_used: 0, free_buffers: Vec::new(), closed: false }),
            ready: Condvar::new(),
            pages_max,
            free_buffers_max: pages_max.min(1024) as usize,
            wake_pages: 1,
        }
    }

    /// Wakes the consumer on push only when at least `pages` are queued (at least 1, at most
    /// the bound); the consumer must then pop with a short timeout.
    pub fn with_wake_pages(mut self, pages: u64) -> StagingQueue {
        self.wake_pages = pages.clamp(1, self.pages_max.max(1));
        self
    }

    /// A buffer of `bytes` bytes, recycled when one of that size is free.
    pub fn take_buffer(&self, bytes: usize) -> Vec<u8> {
        let recycled = {
            let mut state = lock(&self.state);
            match state.free_buffers.last() {
                Some(b) if b.len() == bytes => state.free_buffers.pop(),
                _ => None,
            }
        };
        recycled.unwrap_or_else(|| vec![0; bytes])
    }

    /// Gives a buffer back for reuse.
    pub fn recycle(&self, buffer: Vec<u8>) {
        let mut state = lock(&self.state);
        if state.free_buffers.len() < self.free_buffers_max {
            state.free_buffers.push(buffer);
        }
    }

    /// Queues a run for the sink.
    pub fn push(&self, run: StagedRun) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.pages_used + run.count > self.pages_max {
            return Err(PushError::Full { pages_used: state.pages_used, pages_max: self.pages_max });
        }
        state.pages_used += run.count;
        state.runs.push_back(run);
        let wake = state.pages_used >= self.wake_pages;
        drop(state);
        if wake {
            self.ready.notify_all();
        }
        Ok(())
    }

    /// The oldest run, waiting up to `timeout`; `None` on timeout or once closed and empty.
    pub fn pop(&self, timeout: Duration) -> Option<StagedRun> {
        let mut state = lock(&self.state);
        loop {
            if let Some(run) = state.runs.pop_front() {
                state.pages_used -= run.count;
                return Some(run);
            }
            if state.closed {
                return None;
            }
            #[cfg(not(loom))]
            {
                let (guard, result) = match self.ready.wait_timeout(state, timeout) {
                    Ok(r) => r,
                    Err(poisoned) => poisoned.into_inner(),
                };
                state = guard;
                if result.timed_out() && state.runs.is_empty() {
                    return None;
                }
            }
            #[cfg(loom)]
            {
                let _ = timeout;
                state = match self.ready.wait(state) {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
        }
    }

    /// Closes the queue: pushes fail from now on and a waiting `pop` returns. Runs already
    /// queued can still be popped (a cancelled snapshot simply drops them).
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Pages queued now.
    pub fn pages_used(&self) -> u64 {
        lock(&self.state).pages_used
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bound_is_enforced_and_close_wakes_the_consumer() {
        let q = StagingQueue::new(2);
        q.push(StagedRun { first: 0, count: 2, data: vec![0; 8], digests: Vec::new() }).expect("room");
        assert_eq!(
            q.push(StagedRun { first: 2, count: 1, data: vec![], digests: Vec::new() }),
            Err(PushError::Full { pages_used: 2, pages_max: 2 })
        );
        assert_eq!(q.pop(Duration::from_millis(1)).map(|r| r.first), Some(0));
        let q = std::sync::Arc::new(q);
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || q.pop(Duration::from_secs(30)).is_none())
        };
        q.close();
        assert!(consumer.join().expect("consumer thread"));
        assert_eq!(q.push(StagedRun { first: 0, count: 1, data: vec![], digests: Vec::new() }), Err(PushError::Closed));
    }
}
