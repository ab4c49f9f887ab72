//! State the session's threads share: the engine handle, the uffd, the staging queue and its
//! memory, the stop flag and the first error; and what the engine's actions do
//! ([`ActionTarget`] on the real uffd).

use super::engine_handle::{ActionTarget, EngineHandle, Turn};
use super::staging_memory::{StagedBuf, StagingMemory, StagingMemoryError};
use super::thread_time::ThreadTime;
use crate::region::Regions;
use crate::sync::shim::{AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering, lock};
use crate::sync::{ChangeSignal, StagedPages, StagingQueue};
use crate::uffd::{UffdError, WpUffd};
use rustix::fd::OwnedFd;
use std::time::Duration;
use thiserror::Error;
use wpsnap_core::{Nanos, PageIndex, PageRun};

/// Why a snapshot did not complete.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Uffd(#[from] UffdError),
    #[error("invalid snapshot configuration: {0}")]
    Config(#[from] wpsnap_core::ConfigError),
    #[error("the sink failed: {0}")]
    Sink(#[from] super::sink::SinkError),
    #[error("the output failed: {0}")]
    Output(#[from] crate::output::OutputError),
    #[error("the region cannot be snapshotted: {0}")]
    Region(#[from] crate::region::RegionError),
    #[error("the snapshot contract was broken: {0}")]
    Contract(#[from] crate::region::ContractError),
    #[error("the region changed under the snapshot ({0}); the image would not be a point in time, so it was abandoned")]
    RegionChanged(String),
    #[error("the snapshot was cancelled: {0}")]
    Cancelled(String),
    #[error("the engine refused a fault: {0}")]
    Fault(#[from] wpsnap_core::FaultError),
    #[error("the engine refused an input: {0}")]
    Engine(#[from] wpsnap_core::EngineError),
    #[error(transparent)]
    StagingMemory(#[from] StagingMemoryError),
    #[error("the kernel reported a fault at {addr:#x}, outside the region")]
    FaultOutsideRegion { addr: usize },
    #[error(
        "the kernel reported a missing-page fault at {addr:#x} (the region is registered for write-protect faults only)"
    )]
    UnexpectedMissingFault { addr: usize },
    #[error("poll on the userfaultfd: {0}")]
    Poll(#[source] crate::errno::Errno),
    #[error("the userfaultfd reported an error or hang-up to poll")]
    UffdHangup,
    #[error(
        "the staging queue went over its bound ({pages_used} of {pages_max} pages used): the engine's budget was overrun"
    )]
    StagingOverrun { pages_used: u64, pages_max: u64 },
    #[error("a snapshot thread panicked")]
    ThreadPanicked,
    #[error("the snapshot threads stopped before every page was saved, without naming an error")]
    StoppedEarly,
    #[error("cancel found the snapshot already complete")]
    CancelCompleted,
    #[error("serializing the report: {0}")]
    Report(#[source] serde_json::Error),
    #[error("the output did not hand the writer back after commit")]
    WriterNotReturned,
    #[error("creating the wake-up eventfd: {0}")]
    EventFd(rustix::io::Errno),
    #[error("starting a snapshot thread: {0}")]
    Spawn(std::io::Error),
}

/// Copied pages `first..first + count` in staging memory; the sink thread fills in each page's
/// record digest (zero flag and crc32c) before it writes them. Dropping it frees its staging
/// memory.
#[derive(Debug)]
pub(super) struct StagedRun {
    pub first: u64,
    pub count: u64,
    pub data: StagedBuf,
    pub digests: Vec<wpsnap_format::PageDigest>,
}

impl StagedPages for StagedRun {
    fn pages(&self) -> u64 {
        self.count
    }
}

pub(super) struct Shared {
    pub engine: EngineHandle,
    /// The regions, their pages numbered in order. Lifetime-erased: the session's
    /// `Running<'a>` holds the borrow and joins the threads.
    pub regions: Regions<'static>,
    pub uffd: WpUffd,
    pub staging: StagingQueue<StagedRun>,
    pub staging_memory: StagingMemory,
    /// Wakes the scanner when the engine may have work for it.
    pub scan_signal: ChangeSignal,
    /// Wakes the fault thread (or the qemu thread) from `poll`.
    pub wake_fd: OwnedFd,
    /// Set by the fault thread when it has queued faults but no budget room.
    pub fault_lane_waits_for_room: AtomicBool,
    pub stop: AtomicBool,
    /// What the scanner is waiting for: [`SCAN_BUSY`], [`SCAN_WAITS_FOR_DEADLINE`] or
    /// [`SCAN_WAITS_FOR_CHANGE`]. Other threads wake it only in the last case, so the fault
    /// path does not pay a futex wake-up (and a context switch on a busy machine) per fault.
    pub scan_wait: AtomicU8,
    pub failure: Mutex<Option<SnapshotError>>,
    /// How long the event-reading thread spins on the uffd before sleeping in `poll`.
    pub fault_spin: Duration,
    /// How the snapshot threads are scheduled, and what each got (pushed as each exits).
    pub thread_priority: super::thread_priority::ThreadPriority,
    pub thread_scheduling: Mutex<Vec<super::thread_priority::ThreadScheduling>>,
    /// Per region: check that its pages are still present before copying them (a watched
    /// shared region, populated at prepare: a missing page was discarded behind the mapping's
    /// back).
    pub check_present: Vec<bool>,
    pub unprotect_calls: AtomicU64,
    pub unprotect_pages: AtomicU64,
    /// Each snapshot thread's time, added as it ends its work (at most one per thread).
    pub thread_times: Mutex<Vec<ThreadTime>>,
}

pub(super) const SCAN_BUSY: u8 = 0;
/// The scan's policy gate is closed until a known time; a timed wait covers it.
pub(super) const SCAN_WAITS_FOR_DEADLINE: u8 = 1;
/// The scan waits for queued faults to be served, budget room, or a policy observation.
pub(super) const SCAN_WAITS_FOR_CHANGE: u8 = 2;

/// Longest any snapshot thread sleeps before re-checking the stop flag.
pub(super) const IDLE_WAIT_MAX: Duration = Duration::from_millis(20);

fn region_error(e: UffdError) -> SnapshotError {
    if e.is_mm_changing() {
        SnapshotError::RegionChanged(format!("the address space changed under the snapshot ({e})"))
    } else {
        SnapshotError::Uffd(e)
    }
}

impl ActionTarget for Shared {
    fn unprotect(&self, run: PageRun) -> Result<(), SnapshotError> {
        self.unprotect_pages.fetch_add(run.count, Ordering::Relaxed);
        // One ioctl per region the run touches (a run may cross a region boundary).
        for (start, len) in self.regions.byte_ranges(run.first.0, run.count) {
            self.unprotect_calls.fetch_add(1, Ordering::Relaxed);
            self.uffd.unprotect(start, len).map_err(region_error)?;
        }
        Ok(())
    }
    fn wake(&self, page: PageIndex) -> Result<(), SnapshotError> {
        self.uffd.wake(self.regions.page_addr(page.0), self.regions.page_size() as usize).map_err(region_error)
    }
    fn unprotect_all(&self) {
        // If an event blocks it now, the event-reading lane retries after reading it.
        let _ = self.release_writers();
    }
    fn complete(&self) {
        self.request_stop();
    }
}

impl SnapshotError {
    /// The errno behind the failure, when the operating system reported one (a full disk,
    /// a broken pipe, a uffd ioctl's refusal).
    pub fn errno(&self) -> Option<crate::errno::Errno> {
        match self {
            SnapshotError::Uffd(e) => e.errno(),
            SnapshotError::Sink(e) => e.errno(),
            SnapshotError::Output(e) => e.errno(),
            SnapshotError::Poll(e) => Some(*e),
            SnapshotError::Spawn(e) => crate::errno::Errno::of_io(e),
            SnapshotError::EventFd(e) => Some((*e).into()),
            _ => None,
        }
    }
}

impl Shared {
    /// Fails when a page of `first .. first + count` of a watched shared region is no longer
    /// present (see [`Shared::check_present`]). Call it before copying the pages: the copy's
    /// own read would bring a discarded page back as zeros.
    pub fn check_present(&self, first: u64, count: u64) -> Result<(), SnapshotError> {
        if !self.check_present.contains(&true) {
            return Ok(());
        }
        match self.regions.first_absent(first, count, |region| self.check_present.get(region) == Some(&true)) {
            Ok(None) => Ok(()),
            Ok(Some(page)) => {
                Err(crate::region::ContractError::Discarded { page, addr: self.regions.page_addr(page) }.into())
            }
            Err(source) => Err(crate::region::ContractError::Residency { source }.into()),
        }
    }

    /// Records a thread's time unless that thread recorded one already (the scan thread
    /// records at its last capture, before its exit does).
    pub fn record_thread_time(&self, time: &ThreadTime) {
        let mut times = lock(&self.thread_times);
        if !times.iter().any(|t| t.name == time.name) {
            times.push(time.clone());
        }
    }

    /// One turn with the engine (see [`EngineHandle::turn`]); its actions act on this session.
    pub fn turn<R>(&self, body: impl FnOnce(&mut Turn<'_>) -> R) -> Result<R, SnapshotError> {
        self.engine.turn(self, body)
    }

    /// Time since the session's epoch.
    pub fn elapsed(&self) -> Nanos {
        self.engine.elapsed()
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

    /// Removes all protection and wakes every waiter. Best effort and idempotent: used on
    /// every exit path, so errors here are not reported a second time.
    ///
    /// Returns false when the kernel refused because a remove/unmap/remap event is pending:
    /// the event must be read first (see `lanes::drain_and_release`).
    pub fn release_writers(&self) -> bool {
        let mut released = true;
        for region in self.regions.iter() {
            let unprotected = self.uffd.unprotect(region.start(), region.len());
            let _ = self.uffd.wake(region.start(), region.len());
            released &= !unprotected.as_ref().is_err_and(UffdError::is_mm_changing);
        }
        released
    }

    /// Tells every thread to finish and wakes the ones that sleep.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.staging.close();
        self.staging_memory.release_current();
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
        let _ = self.turn(|t| t.cancel(reason));
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
        let wait = Nanos(wait.as_nanos().min(u64::MAX as u128) as u64);
        if let Err(e) = self.shared.turn(|t| t.fault_wait(wait)) {
            self.shared.fail(e);
        }
        // A new wait can change the policy's mind about the scan.
        self.shared.wake_scanner_if_waiting();
    }
}
