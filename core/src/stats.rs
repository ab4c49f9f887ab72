//! Counters and the report a finished (or aborted) snapshot leaves.

use crate::config::EngineConfig;
use crate::latency::LatencySummary;
use crate::time::Nanos;
use serde::{Deserialize, Serialize};

/// Everything the engine counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub pages_by_scan: u64,
    pub pages_by_fault: u64,
    /// Fault events read, duplicates included.
    pub faults: u64,
    /// Faults on a page that was already queued, being captured or saved.
    pub duplicate_faults: u64,
    /// Faults on pages already saved: answered with a wake-up only.
    pub wakes_only: u64,
    /// Faults the driver had to hold back because the fault queue was full.
    pub fault_queue_full: u64,
    pub fault_queue_peak: u64,
    pub scan_captures: u64,
    pub iterations: u64,
    /// Time the scan had work but its policy held it back.
    pub throttled_ns: u64,
    /// Time the scan had work but the staging buffer had no room beyond the fault reserve.
    pub staging_blocked_ns: u64,
    pub staging_peak_pages: u64,
    pub started_at: Nanos,
    pub finished_at: Option<Nanos>,
}

impl Stats {
    pub fn pages_saved(&self) -> u64 {
        self.pages_by_scan + self.pages_by_fault
    }
}

/// How the snapshot ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum Outcome {
    Running,
    Complete,
    Cancelled(String),
}

/// The engine's side of a report: config, counters and the three latency measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    pub config: EngineConfig,
    pub outcome: Outcome,
    pub stats: Stats,
    /// The writers' real waits, as the driver reported them.
    pub fault_wait: LatencySummary,
    /// The seed's measure: fault event read to the next page saved.
    pub seed_latency: LatencySummary,
    /// Fault event read to unprotect issued.
    pub service_latency: LatencySummary,
}
