//! What a pause closure returns: a guard that keeps the writers stopped while it is alive.
//! [`Prepared::arm`](super::Prepared::arm) holds it until the region is protected, then drops
//! it. Only types that stop writers by being alive implement [`PauseGuard`], so a closure that
//! drops its guard before returning does not compile:
//!
//! ```compile_fail,E0277
//! # use std::sync::Mutex;
//! # fn arm_with(prepared: wpsnap_linux::snapshot::Prepared<'_>, m: &Mutex<()>) {
//! // The guard dies inside the closure; nothing is paused when the region is protected.
//! let _ = prepared.arm(|| {
//!     let _g = m.lock();
//! });
//! # }
//! ```
//!
//! The same call returning the guard compiles:
//!
//! ```no_run
//! # use std::sync::Mutex;
//! # fn arm_with(prepared: wpsnap_linux::snapshot::Prepared<'_>, m: &Mutex<()>) {
//! let _ = prepared.arm(|| m.lock());
//! # }
//! ```
//!
//! A pause that is not a lock (a handshake with the writers, a flag they poll) wraps its
//! resume in [`Resume`]: `arm(|| { writers.stop_all(); Resume::on_drop(|| writers.go_on()) })`.

use std::sync::{MutexGuard, PoisonError, RwLockWriteGuard};

/// Proof that the writers are paused for as long as the value lives. Implement it for a
/// type whose `Drop` lets the writers go on (or that holds what stops them).
pub trait PauseGuard {}

impl<T: ?Sized> PauseGuard for MutexGuard<'_, T> {}
impl<T: ?Sized> PauseGuard for RwLockWriteGuard<'_, T> {}
/// `Mutex::lock()` returns a `LockResult`; a poisoned lock still holds its guard.
impl<G: PauseGuard> PauseGuard for Result<G, PoisonError<G>> {}
/// Several locks (lock striping: one per stripe, taken in order).
impl<G: PauseGuard> PauseGuard for Vec<G> {}
impl<A: PauseGuard, B: PauseGuard> PauseGuard for (A, B) {}
impl PauseGuard for crate::writers::WriterPause<'_> {}
/// `None`: there were no writers to pause.
impl<G: PauseGuard> PauseGuard for Option<G> {}

/// For a region nobody writes during the snapshot: says so explicitly (`arm(|| NoWriters)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWriters;

impl PauseGuard for NoWriters {}

/// A pause guard that runs `resume` when dropped.
#[must_use = "dropping it resumes the writers at once"]
pub struct Resume<F: FnOnce()> {
    resume: Option<F>,
}

impl<F: FnOnce()> Resume<F> {
    /// Runs `resume` when this guard is dropped (after the region is protected).
    pub fn on_drop(resume: F) -> Resume<F> {
        Resume { resume: Some(resume) }
    }
}

impl<F: FnOnce()> Drop for Resume<F> {
    fn drop(&mut self) {
        if let Some(resume) = self.resume.take() {
            resume();
        }
    }
}

impl<F: FnOnce()> PauseGuard for Resume<F> {}

impl<F: FnOnce()> std::fmt::Debug for Resume<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume").finish_non_exhaustive()
    }
}
