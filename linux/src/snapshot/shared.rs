//! State the session's threads share: the engine behind its mutex, the uffd, the staging
//! queue, the stop flag and the first error; and the one routine that carries out the
//! engine's actions.

use crate::region::Region;
use crate::sync::shim::{AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering, lock};
use crate::sync::{ChangeSignal, StagingQueue};
use crate::uffd::{UffdError, WpUffd};
use rustix::fd::OwnedFd;
use std::time::{Duration, Instant};
use thiserror::Error;
use wpsnap_core::{Action, Engine, Nanos};

/// Why a snapshot did not complete.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Uffd(#[from] UffdError),
    #[error("invalid snapshot configuration: {0}")]
    Config(#[from] wpsnap_core::ConfigError),
    #[error("the sink failed: {0}")]
    Sink(String),
    #[error("the region changed under the snapshot ({0}); the image would not be a point in time, so it was abandoned")]
    RegionChanged(String),
    #[error("the snapshot was cancelled: {0}")]
    Cancelled(String),
    #[error("internal error in the snapshot driver: {0}")]
    Internal(String),
    #[error("creating the wake-up eventfd: {0}")]
    EventFd(rustix::io::Errno),
    #[error("starting a snapshot thread: {0}")]
    Spawn(std::io::Error),
}

/// The engine and what must change with it atomically.
pub(super) struct EngineState {
    pub engine: Engine,
    /// When the engine was last given `now`, so no thread hands it an earlier time.
    pub last_now: Nanos,
}

pub(super) struct Shared {
    pub region: Region,
    pub uffd: WpUffd,
    pub engine: Mutex<EngineState>,
    pub staging: StagingQueue,
    /// Wakes the scanner when the engine may have work for it.
    pub scan_signal: ChangeSignal,
    /// Wakes the fault thread (or the qemu thread) from `poll`.
    pub wake_fd: OwnedFd,
    /// Set by the fault thread when it has queued faults but no staging room.
    pub fault_lane_waits_for_room: AtomicBool,
    pub stop: AtomicBool,
    /// What the scanner is waiting for: [`SCAN_BUSY`], [`SCAN_WAITS_FOR_DEADLINE`] or
    /// [`SCAN_WAITS_FOR_CHANGE`]. Other threads wake it only in the last case, so the fault
    /// path does not pay a futex wake-up (and a context switch on a busy machine) per fault.
    pub scan_wait: AtomicU8,
    pub failure: Mutex<Option<SnapshotError>>,
    pub epoch: Instant,
    pub unprotect_calls: AtomicU64,
}

pub(super) const SCAN_BUSY: u8 = 0;
/// The scan's policy gate is closed until a known time; a timed wait covers it.
pub(super) const SCAN_WAITS_FOR_DEADLINE: u8 = 1;
/// The scan waits for queued faults to be served, staging room, or a policy observation.
pub(super) const SCAN_WAITS_FOR_CHANGE: u8 = 2;

/// Longest any snapshot thread sleeps before re-checking the stop flag.
pub(super) const IDLE_WAIT_MAX: Duration = Duration::from_millis(20);

impl Shared {
    /// Time since the session's epoch. Call it with the engine lock held when the value goes
    /// to the engine (see [`Shared::lock_engine`]).
    pub fn elapsed(&self) -> Nanos {
        Nanos(self.epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64)
    }

    /// Locks the engine and returns it with a `now` that never goes back.
    pub fn lock_engine(&self) -> (crate::sync::shim::MutexGuard<'_, EngineState>, Nanos) {
        let mut state = lock(&self.engine);
        let now = self.elapsed().max(state.last_now);
        state.last_now = now;
        (state, now)
    }

    /// Wakes the scanner if it waits for a change (not for a deadline).
    pub fn wake_scanner_if_waiting(&self) {
        if self.scan_wait.load(Ordering::SeqCst) == SCAN_WAITS_FOR_CHANGE {
            self.scan_signal.notify();
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Wakes the thread that polls the uffd.
    pub fn wake_poller(&self) {
        let _ = rustix::io::write(&self.wake_fd, &1u64.to_ne_bytes());
    }

    /// Clears the eventfd after `poll` reported it.
    pub fn drain_wake(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.wake_fd, &mut buf);
    }

    /// Carries out engine actions, in order. Unprotects wake the writers blocked there.
    pub fn apply(&self, actions: &mut Vec<Action>) -> Result<(), SnapshotError> {
        let mut result = Ok(());
        for action in actions.drain(..) {
            let step = match action {
                Action::Unprotect(run) => {
                    self.unprotect_calls.fetch_add(1, Ordering::Relaxed);
                    let start = self.region.page_addr(run.first.0);
                    self.uffd.unprotect(start, (run.count * self.region.page_size()) as usize)
                }
                Action::Wake(page) => self.uffd.wake(self.region.page_addr(page.0), self.region.page_size() as usize),
                Action::UnprotectAll => {
                    // If an event blocks it now, the event-reading lane retries after reading it.
                    let _ = self.release_writers();
                    Ok(())
                }
                Action::IterationEnd(_) => Ok(()),
                Action::Complete => {
                    self.request_stop();
                    Ok(())
                }
            };
            if let (Ok(()), Err(e)) = (&result, step) {
                result = Err(if e.is_mm_changing() {
                    SnapshotError::RegionChanged(format!("the address space changed under the snapshot ({e})"))
                } else {
                    SnapshotError::Uffd(e)
                });
            }
        }
        result
    }

    /// Removes all protection and wakes every waiter. Best effort and idempotent: used on
    /// every exit path, so errors here are not reported a second time.
    ///
    /// Returns false when the kernel refused because a remove/unmap/remap event is pending:
    /// the event must be read first (see `lanes::drain_and_release`).
    pub fn release_writers(&self) -> bool {
        let unprotected = self.uffd.unprotect(self.region.start(), self.region.len());
        let _ = self.uffd.wake(self.region.start(), self.region.len());
        !unprotected.as_ref().is_err_and(UffdError::is_mm_changing)
    }

    /// Tells every thread to finish and wakes the ones that sleep.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.staging.close();
        self.scan_signal.notify();
        self.wake_poller();
    }

    /// Aborts the snapshot with `error` (the first error wins): the engine is cancelled, all
    /// protection removed, waiters woken, threads stopped.
    pub fn fail(&self, error: SnapshotError) {
        let reason = error.to_string();
        {
            let mut failure = lock(&self.failure);
            if failure.is_none() {
                *failure = Some(error);
            }
        }
        let mut actions = Vec::new();
        {
            let (mut state, now) = self.lock_engine();
            state.engine.cancel(now, reason);
            while let Some(action) = state.engine.poll_action() {
                actions.push(action);
            }
        }
        let _ = self.apply(&mut actions);
        // Cancel emits UnprotectAll only once; release again in case the engine had already
        // stopped (completion racing a late error).
        let _ = self.release_writers();
        self.request_stop();
    }
}

/// Lets writer threads report their real fault waits to the engine (for the
/// `seed-true-latency` and `latency-target` policies). Cheap to clone.
#[derive(Clone)]
pub struct FaultWaitReporter {
    pub(super) shared: std::sync::Arc<Shared>,
}

impl std::fmt::Debug for FaultWaitReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultWaitReporter").finish_non_exhaustive()
    }
}

impl FaultWaitReporter {
    /// Reports one write that waited `wait` for its page to be saved.
    pub fn report(&self, wait: Duration) {
        if self.shared.stopped() {
            return;
        }
        let mut actions = Vec::new();
        {
            let (mut state, now) = self.shared.lock_engine();
            state.engine.handle_fault_wait(now, Nanos(wait.as_nanos().min(u64::MAX as u128) as u64));
            while let Some(action) = state.engine.poll_action() {
                actions.push(action);
            }
        }
        if let Err(e) = self.shared.apply(&mut actions) {
            self.shared.fail(e);
        }
        // A new wait can change the policy's mind about the scan.
        self.shared.wake_scanner_if_waiting();
    }
}
