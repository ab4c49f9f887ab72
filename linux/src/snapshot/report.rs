//! What a session reports.

use crate::region::Backing;
use crate::uffd::UnpopulatedMethod;
use serde::{Deserialize, Serialize};
use wpsnap_core::EngineReport;

/// Progress of a running snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub pages_saved: u64,
    pub page_count: u64,
    pub pages_by_fault: u64,
}

/// The measurements of one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    pub backing: Backing,
    pub region_bytes: u64,
    pub page_size: u64,
    /// userfaultfd features the kernel granted.
    pub uffd_features: Vec<String>,
    pub unpopulated_method: UnpopulatedMethod,
    /// Writers paused: from calling the pause closure to its guard dropped (includes pausing).
    pub pause_ns: u64,
    /// The whole-region write-protect inside the pause.
    pub protect_ns: u64,
    /// Touching never-populated pages by reading them (fallback method), before the pause.
    pub touch_ns: u64,
    /// The caller's `at_instant` hook inside the pause (e.g. a reference copy), excluded from
    /// `pause_ns`.
    pub observe_ns: u64,
    /// Armed to finished (every page saved and written to the sink).
    pub duration_ns: u64,
    /// Bytes the sink received.
    pub sink_bytes: u64,
    /// Region bytes saved per second of `duration_ns`.
    pub throughput_bytes_per_sec: f64,
    /// UFFDIO_WRITEPROTECT unprotect calls (one per capture: runs are unprotected at once).
    pub unprotect_calls: u64,
    /// Where the sink put the snapshot.
    pub destination: String,
    /// The engine's counters and its three latency summaries (writers' real fault waits, the
    /// seed's measure, event-read-to-unprotect).
    pub engine: EngineReport,
}
