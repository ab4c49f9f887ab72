//! A "something changed" signal: a generation counter under a mutex with a condition variable.
//! A waiter remembers the generation it last saw, so a change between its check and its wait is
//! never lost.

use super::shim::{Condvar, Mutex, lock};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct ChangeSignal {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl ChangeSignal {
    pub fn new() -> ChangeSignal {
        ChangeSignal::default()
    }

    /// The current generation; pass it to [`wait_for_change`](ChangeSignal::wait_for_change).
    pub fn generation(&self) -> u64 {
        *lock(&self.generation)
    }

    /// Records a change and wakes every waiter.
    pub fn notify(&self) {
        *lock(&self.generation) += 1;
        self.changed.notify_all();
    }

    /// Waits until the generation differs from `seen` or `timeout` passes; returns the
    /// generation now.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = lock(&self.generation);
        if *guard != seen {
            return *guard;
        }
        #[cfg(not(loom))]
        let guard = match self.changed.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
        // loom has no timed waits; a plain wait is enough for the model (notify always follows).
        #[cfg(loom)]
        let guard = {
            let _ = timeout;
            match self.changed.wait(guard) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        };
        *guard
    }
}
