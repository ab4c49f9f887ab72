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
//!   faulted page (or capture unit) into staging memory and unprotects it at once; a scanner
//!   thread copies the rest as the engine's policy and memory budget allow (contiguous runs,
//!   one unprotect per run); a sink thread drains the staging queue into the [`PageSink`],
//!   frees the memory and tells the engine.
//! - `qemu`: one thread does what QEMU does: read one fault without blocking, save the page to
//!   the stream, then unprotect; scan pages the same way in between.
//!
//! The `wpsnap-core` [`Engine`](wpsnap_core::Engine) decides what is saved when; it lives
//! behind a mutex in one `EngineHandle`, through which every thread feeds it and carries out
//! its actions; only page indices and buffers cross threads. Any error, a
//! cancel or a drop of the session removes all protection and wakes every waiter before it
//! returns, so writers are never left blocked.

mod budget;
mod builder;
mod config;
mod engine_handle;
mod format_sink;
mod lanes;
mod pause;
mod report;
mod session;
mod shared;
mod sink;
mod staging_memory;
pub mod thread_priority;
mod thread_time;

pub use budget::{BUDGET_BYTES_CAP, BUDGET_BYTES_FLOOR, budget_rule, default_budget_bytes};
pub use builder::SnapshotBuilder;
pub use config::{
    DECOUPLED_SCAN_BATCH_BYTES, FAULT_SPIN_MAX, QEMU_SCAN_BATCH_PAGES, SnapshotConfig, capture_unit_pages,
    default_scan_batch_pages,
};
pub use format_sink::{FormatSink, RegionTable};
pub use pause::{NoWriters, PauseGuard, Resume};
pub use report::{Progress, SnapshotReport};
pub use session::{Prepared, Running, Snapshot};
pub use shared::{FaultWaitReporter, SnapshotError};
pub use sink::{DelayedSink, MemoryImage, MemorySink, PageSink, SinkError};
pub use staging_memory::{POOL_CHUNKS_MAX, STAGING_CHUNK_BYTES, StagingMemoryError};
pub use thread_priority::{
    BackgroundPriority, FaultThreadPriority, QemuThreadPriority, SchedStat, ThreadPriority, ThreadScheduling,
};
pub use thread_time::{SCAN_THREAD_NAME, ThreadTime};
