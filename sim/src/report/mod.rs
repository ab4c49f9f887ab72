//! The report of one run: JSON for machines, a text summary for people, a digest for
//! determinism checks.

mod text;

pub use text::render_text;

use crate::config::SimConfig;
use crate::disk::CacheStats;
use crate::sim::{InvariantReport, Timeline};
use serde::{Deserialize, Serialize};
use wpsnap_core::EngineReport;

/// What the snapshot did, in virtual time from the snapshot instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub instant_ns: u64,
    /// Writers paused while the region was write-protected.
    pub freeze_ns: u64,
    /// Snapshot instant to the engine's `Complete` (or cancel).
    pub duration_ns: Option<u64>,
    /// The engine's start (region protected, writers running) to the last page unprotected:
    /// how long writers could meet a protected page. The sink may drain after it.
    pub protection_window_ns: Option<u64>,
    /// Snapshot instant to the last byte handed to the file (the dump tool's last write).
    pub stream_written_ns: Option<u64>,
    pub stream_bytes: u64,
    pub pages_by_scan: u64,
    pub pages_by_fault: u64,
    pub staging_peak_pages: u64,
    /// Most pages the driver held staged at once (captured by a decoupled lane, not yet
    /// written by the sink), counted by the driver itself: never above the budget.
    pub driver_staged_peak_pages: u64,
    /// Faults that waited for budget room, and for how long in all.
    pub fault_blocked_on_budget: u64,
    pub fault_blocked_on_budget_ns: u64,
    pub throttled_ns: u64,
    pub iterations: u64,
    /// Iterations after which the qemu thread slept out the bandwidth limit, and how long.
    pub iteration_sleeps: u64,
    pub iteration_sleep_ns: u64,
    /// The run reached `sim_time_ns_max` or its event bound and cancelled the snapshot.
    pub time_limit_hit: bool,
}

/// Writer progress during the snapshot, against the same seed without a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriterSummary {
    pub count: u32,
    /// Snapshot instant to the end of the run.
    pub window_ns: u64,
    pub writes_during_snapshot: u64,
    pub baseline_writes: Option<u64>,
    /// Writes with a snapshot / writes without, over the same window.
    pub throughput_ratio: Option<f64>,
    /// Writers still blocked when the run ended (must be 0).
    pub blocked_at_end: u32,
    pub blocked_ns_total: u64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub seed: u64,
    /// The config in force, with the disk parameters spelled out.
    pub config: SimConfig,
    pub snapshot: SnapshotSummary,
    pub writers: WriterSummary,
    /// The engine's own report: stats, the true fault wait, the seed's latency measure and
    /// the service latency, each with its log2-ms table.
    pub engine: Option<EngineReport>,
    /// The true fault-wait HDR histogram: (value_ns, count) per recorded bucket.
    pub fault_wait_histogram: Vec<(u64, u64)>,
    /// The seed's measure, same form.
    pub seed_latency_histogram: Vec<(u64, u64)>,
    pub disk: CacheStats,
    pub invariants: InvariantReport,
    /// Protocol errors the driver saw (must be empty).
    pub driver_errors: Vec<String>,
    /// Heap bytes of per-page state.
    pub memory_bytes: u64,
    pub events: u64,
    pub timeline: Timeline,
}

impl SimReport {
    /// FNV-1a over the JSON form: equal reports have equal digests.
    pub fn digest(&self) -> u64 {
        let json = serde_json::to_string(self).unwrap_or_default();
        json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// True when the run kept every invariant: no violation, no driver error, no writer
    /// left blocked, and (if complete) every page saved.
    pub fn is_clean(&self) -> bool {
        self.invariants.violations == 0 && self.driver_errors.is_empty() && self.writers.blocked_at_end == 0
    }

    /// The policy's name, as in tables.
    pub fn policy_name(&self) -> &'static str {
        self.config.engine.policy.name()
    }
}
