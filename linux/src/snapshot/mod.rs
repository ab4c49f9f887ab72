//! A live snapshot session, with its states as types (the rustls way):
//!
//! ```text
//! Snapshot::prepare(region, config, sink) -> Prepared     uffd opened, region registered
//! Prepared::arm(|| pause_writers())       -> Running      protected while writers paused
//! Running::finish() / Running::cancel()   -> SnapshotReport
//! ```
//!
//! Arming takes a closure that pauses the caller's writers and returns a guard that resumes
//! them when dropped: the region is write-protected between the two, so the image is the
//! region's state at one instant. The pause is measured.
//!
//! Threads, per [`ServiceModel`](wpsnap_core::ServiceModel):
//! - `decoupled` (default): a fault-service thread reads userfaultfd events, copies each
//!   faulted page into the bounded staging queue and unprotects it at once; a scanner thread
//!   copies the rest as the engine's policy paces it (contiguous runs, one unprotect per run);
//!   a sink thread drains the staging queue into the [`PageSink`] and tells the engine.
//! - `qemu`: one thread does what QEMU does: read one fault without blocking, save the page to
//!   the stream, then unprotect; scan pages the same way in between.
//!
//! The `wpsnap-core` [`Engine`](wpsnap_core::Engine) decides what is saved when; it lives
//! behind a mutex shared by the threads, and only page indices cross threads. Any error, a
//! cancel or a drop of the session removes all protection and wakes every waiter before it
//! returns, so writers are never left blocked.

mod config;
mod format_sink;
mod lanes;
mod report;
mod session;
mod shared;
mod sink;

pub use config::SnapshotConfig;
pub use format_sink::FormatSink;
pub use report::{Progress, SnapshotReport};
pub use session::{Prepared, Running, Snapshot};
pub use shared::{FaultWaitReporter, SnapshotError};
pub use sink::{DelayedSink, MemoryImage, MemorySink, PageSink, SinkError};
