//! `wpsnap-core`: the backend-agnostic, sans-IO engine of a live write-protect snapshot.
//!
//! A region is write-protected as a whole; writers keep running; each page is saved either
//! when the linear scan reaches it or, first, when a writer faults on it, and is unprotected
//! once saved. This crate decides *which page is saved when* and keeps the books. It owns the
//! pending-page bitmap and scan cursor, the fault queue, the throttle policies and their
//! state, QEMU's max-wait iteration limit, the statistics and the latency recorders.
//!
//! It does no I/O: no threads, files, sockets, clocks or randomness. Time is passed in as
//! [`Nanos`]; inputs are `handle_*` calls and outputs are polled ([`Engine::poll_action`],
//! [`Engine::poll_capture`], [`Engine::poll_timeout`]). The same inputs always give the same
//! outputs, so the simulator (`wpsnap-sim`) and the Linux backend (`wpsnap-linux`) drive the
//! very same code. See [`Engine`] for the calling protocol.
#![forbid(unsafe_code)]

mod bitmap;
mod config;
mod engine;
mod fault_queue;
mod iteration;
mod latency;
mod page;
pub mod policy;
mod scan_cursor;
mod stats;
mod text;
mod time;

pub use bitmap::PageBitmap;
pub use config::{
    ConfigError, EngineConfig, FAULT_QUEUE_PAGES_MAX, ITERATION_CHECK_PAGES, IterationMode, PAGE_COUNT_MAX, PAGE_SIZES,
    SCAN_BATCH_PAGES_MAX, STAGING_PAGES_MAX, ServiceModel,
};
pub use engine::{Action, Capture, Engine, EngineError, FaultError, FaultOutcome, Lane};
pub use fault_queue::{FaultQueue, QueuedFault};
pub use iteration::{IterationClock, IterationSummary};
pub use latency::{LATENCY_NS_MAX, LOG2_MS_BUCKETS, LatencyRecorder, LatencySummary, Log2MsTable};
pub use page::{PageIndex, PageRun};
pub use policy::{Cause, PolicyConfig};
pub use scan_cursor::ScanCursor;
pub use stats::{EngineReport, Outcome, Stats};
pub use text::{UnitError, UnknownServiceModel, exact_bytes, exact_ns, parse_bytes, parse_duration_ns};
pub use time::Nanos;
