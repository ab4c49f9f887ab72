//! What a session reports.

use super::thread_time::ThreadTime;
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
    /// Faults read but not captured yet (their writers are blocked).
    pub faults_queued: u64,
    /// How often the policy slowed the scan for latency so far.
    pub policy_slowdowns: u64,
}

/// The measurements of one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    /// The backing of the first region (every region's is in `regions`).
    pub backing: Backing,
    /// Each region: address, length, page size, backing (one entry for a one-region session).
    #[serde(default)]
    pub regions: Vec<wpsnap_format::RegionEntry>,
    /// Bytes of all regions.
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
    /// Armed to the last page unprotected: how long writers could meet a protected page.
    /// The sink may still be draining staged pages after it.
    pub protection_window_ns: u64,
    /// Armed to finished (every page saved and written to the sink).
    pub duration_ns: u64,
    /// Bytes the sink received.
    pub sink_bytes: u64,
    /// Region bytes saved per second of `duration_ns`.
    pub throughput_bytes_per_sec: f64,
    /// UFFDIO_WRITEPROTECT unprotect calls (one per contiguous run: a scan span or a capture
    /// unit is unprotected at once) and the pages they covered (a scan span also covers pages
    /// saved before it, unprotected again, so this can exceed the region's pages).
    pub unprotect_calls: u64,
    pub unprotect_pages: u64,
    /// The memory budget in force (decoupled model): staged bytes never exceeded it.
    pub budget_bytes: u64,
    /// Extra memory: most staging bytes mapped at once (chunks are mapped on demand and
    /// unmapped as the sink drains, so the process's RSS follows this), the counterpart of
    /// fork()'s copy-on-write growth.
    pub staging_mapped_peak_bytes: u64,
    /// Staging chunks mapped, and chunks reused from the pool of drained ones instead.
    #[serde(default)]
    pub staging_chunks_mapped: u64,
    #[serde(default)]
    pub staging_chunk_reuses: u64,
    /// How long the fault thread spun on the uffd before sleeping in poll (0: no spinning).
    pub fault_spin_ns: u64,
    /// Each snapshot thread's time on a CPU, waiting for one, and blocked: the scan thread up
    /// to its last capture, the others until they exit.
    #[serde(default)]
    pub threads: Vec<ThreadTime>,
    /// Each snapshot thread's scheduling (policy, a note where a requested priority was
    /// refused, run-queue wait from schedstat), in spawn order.
    #[serde(default)]
    pub thread_priorities: Vec<super::thread_priority::ThreadScheduling>,
    /// Where the sink put the snapshot.
    pub destination: String,
    /// The engine's counters and its three latency summaries (writers' real fault waits, the
    /// seed's measure, event-read-to-unprotect).
    pub engine: EngineReport,
}
