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
    /// Most faults queued at once (they queue while the fault lane is busy or the memory
    /// budget is exhausted).
    pub fault_queue_peak: u64,
    /// Faults whose capture could not start because the memory budget was exhausted
    /// (decoupled model): each waited for the sink to drain. Zero while memory allows.
    pub fault_blocked_on_budget: u64,
    /// Time a fault waited at the head of the queue for budget room, summed.
    pub fault_blocked_on_budget_ns: u64,
    pub scan_captures: u64,
    pub iterations: u64,
    /// Iterations after which the qemu model's thread slept out the bandwidth limit, reading
    /// no fault, and the time it slept.
    pub iteration_sleeps: u64,
    pub iteration_sleep_ns: u64,
    /// Time the scan had work but its policy held it back.
    pub throttled_ns: u64,
    /// Time the scan had work but was at its high-water mark of the memory budget.
    pub staging_blocked_ns: u64,
    /// Most pages staged (copied, not yet drained) at once.
    pub staging_peak_pages: u64,
    /// Stream bytes the driver reported (`handle_stream_bytes`).
    pub stream_bytes: u64,
    pub started_at: Nanos,
    /// When the last page was unprotected (or everything, on cancel): the end of the
    /// protection window.
    pub protection_ended_at: Option<Nanos>,
    /// Complete (every page saved and drained) or cancelled.
    pub finished_at: Option<Nanos>,
}

impl Stats {
    pub fn pages_saved(&self) -> u64 {
        self.pages_by_scan + self.pages_by_fault
    }

    /// From the engine's start (the region just protected) to the last page unprotected:
    /// the time writers can meet a protected page. The sink may still be draining after it.
    pub fn protection_window(&self) -> Option<Nanos> {
        self.protection_ended_at.map(|end| end.saturating_since(self.started_at))
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
    /// Arm to the last page unprotected ([`Stats::protection_window`]), separate from the
    /// total duration, which includes draining the sink.
    pub protection_window_ns: Option<u64>,
    /// The writers' real waits, as the driver reported them.
    pub fault_wait: LatencySummary,
    /// The seed's measure: fault event read to the next page saved.
    pub seed_latency: LatencySummary,
    /// Fault event read to unprotect issued.
    pub service_latency: LatencySummary,
    /// Which fault-latency measure drove the policy (`None`: the policy uses none, or saw none).
    #[serde(default)]
    pub latency_measure: Option<crate::policy::LatencyMeasure>,
    /// How often the policy slowed the scan for latency.
    #[serde(default)]
    pub policy_slowdowns: u64,
}
