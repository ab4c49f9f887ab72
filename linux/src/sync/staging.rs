//! The staging queue of the decoupled model: copied pages waiting for the sink.
//!
//! The engine already refuses captures beyond its memory budget; this queue enforces the same
//! bound itself (so a driver bug shows as an error, not as unbounded memory). It carries any
//! payload that knows how many pages it holds; the memory itself belongs to the payload (the
//! snapshot's staging chunks), so it is freed when the sink drops what it popped.

use super::shim::{Condvar, Mutex, lock};
use std::collections::VecDeque;
use std::time::Duration;

/// What the queue carries: a run of staged pages.
pub trait StagedPages: Send {
    /// Pages in this run (counted against the queue's bound).
    fn pages(&self) -> u64;
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The queue was closed (the snapshot ended or was cancelled); the run is dropped.
    Closed,
    /// The run would exceed the bound: the driver reserved room it did not have.
    Full { pages_used: u64, pages_max: u64 },
}

#[derive(Debug)]
struct State<T> {
    runs: VecDeque<T>,
    pages_used: u64,
    closed: bool,
}

/// Bounded queue of staged runs, multi-producer, single consumer.
#[derive(Debug)]
pub struct StagingQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    pages_max: u64,
    /// The consumer is woken at once only when this many pages are queued; below it, it finds
    /// them at its next timed look. Fewer wake-ups on the fault path, where every context
    /// switch on a busy machine delays the writer that faulted.
    wake_pages: u64,
}

impl<T: StagedPages> StagingQueue<T> {
    /// A queue holding at most `pages_max` pages.
    pub fn new(pages_max: u64) -> StagingQueue<T> {
        StagingQueue {
            state: Mutex::new(State { runs: VecDeque::new(), pages_used: 0, closed: false }),
            ready: Condvar::new(),
            pages_max,
            wake_pages: 1,
        }
    }

    /// Wakes the consumer on push only when at least `pages` are queued (at least 1, at most
    /// the bound); the consumer must then pop with a short timeout.
    pub fn with_wake_pages(mut self, pages: u64) -> StagingQueue<T> {
        self.wake_pages = pages.clamp(1, self.pages_max.max(1));
        self
    }

    /// Queues a run for the sink.
    pub fn push(&self, run: T) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        let pages = run.pages();
        if state.pages_used + pages > self.pages_max {
            return Err(PushError::Full { pages_used: state.pages_used, pages_max: self.pages_max });
        }
        state.pages_used += pages;
        state.runs.push_back(run);
        let wake = state.pages_used >= self.wake_pages;
        drop(state);
        if wake {
            self.ready.notify_all();
        }
        Ok(())
    }

    /// The oldest run if one is queued, without waiting.
    pub fn try_pop(&self) -> Option<T> {
        let mut state = lock(&self.state);
        let run = state.runs.pop_front()?;
        state.pages_used -= run.pages();
        Some(run)
    }

    /// The oldest run, waiting up to `timeout`; `None` on timeout or once closed and empty.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let mut state = lock(&self.state);
        loop {
            if let Some(run) = state.runs.pop_front() {
                state.pages_used -= run.pages();
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

    #[derive(Debug, PartialEq, Eq)]
    struct Run(u64, u64);
    impl StagedPages for Run {
        fn pages(&self) -> u64 {
            self.1
        }
    }

    #[test]
    fn bound_is_enforced_and_close_wakes_the_consumer() {
        let q = StagingQueue::new(2);
        q.push(Run(0, 2)).expect("room");
        assert_eq!(q.push(Run(2, 1)), Err(PushError::Full { pages_used: 2, pages_max: 2 }));
        assert_eq!(q.pop(Duration::from_millis(1)), Some(Run(0, 2)));
        let q = std::sync::Arc::new(q);
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || q.pop(Duration::from_secs(30)).is_none())
        };
        q.close();
        assert!(consumer.join().expect("consumer thread"));
        assert_eq!(q.push(Run(0, 1)), Err(PushError::Closed));
    }
}
