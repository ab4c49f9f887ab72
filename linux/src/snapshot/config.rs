//! What a session needs to know beyond the region.

use super::budget::default_budget_bytes;
use super::thread_priority::ThreadPriority;
use crate::region::{Backing, Region, Regions};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wpsnap_core::{EngineConfig, PolicyConfig, ServiceModel};

/// Longest the fault thread may spin on the userfaultfd before it sleeps in `poll`.
pub const FAULT_SPIN_MAX: Duration = Duration::from_micros(500);

/// Bytes of a transparent huge page on x86-64 (and aarch64 with 4 KiB pages).
pub const THP_BYTES: u64 = 2 << 20;

/// Bytes one decoupled scan capture covers by default: one staging chunk, one huge page.
/// Every unprotect call flushes the TLBs of the CPUs running the program (an IPI each), and
/// the scan's calls were most of its time beside the copy: with a full-rate writer on a
/// 256 MiB region, 2 MiB instead of 16 pages shortened the protection window from 222-282 ms
/// to 97-102 ms over 3 interleaved rounds, with 9x fewer unprotect calls and 3-8x fewer
/// faults (docs/results/2026-11-30-scan-batch.md).
pub const DECOUPLED_SCAN_BATCH_BYTES: u64 = THP_BYTES;
/// Pages one qemu-model scan step takes by default: QEMU sends a run of dirty pages per
/// step and reads faults between steps, so a long step delays the faults behind it.
pub const QEMU_SCAN_BATCH_PAGES: u64 = 16;

/// The scan batch a model uses unless one is set, in pages of `page_size` bytes.
pub fn default_scan_batch_pages(model: ServiceModel, page_size: u64) -> u64 {
    match model {
        ServiceModel::Decoupled => (DECOUPLED_SCAN_BATCH_BYTES / page_size.max(1)).max(1),
        ServiceModel::Qemu => QEMU_SCAN_BATCH_PAGES,
    }
}

/// Session settings. The engine's geometry (page size, page count) comes from the region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotConfig {
    pub service_model: ServiceModel,
    pub policy: PolicyConfig,
    /// Contiguous pages one scan capture (and one unprotect) may cover. `None`: the model's
    /// default ([`default_scan_batch_pages`]).
    #[serde(default)]
    pub scan_batch_pages: Option<u64>,
    /// Memory budget of the decoupled model in bytes: staged pages never take more. `None`:
    /// the default rule ([`default_budget_bytes`]: the region, within half of MemAvailable
    /// and of the cgroup's room, at most 8 GiB).
    pub budget_bytes: Option<u64>,
    /// The fault thread spins this long reading the uffd before it sleeps in `poll` (at most
    /// [`FAULT_SPIN_MAX`]); zero sleeps at once. Spinning saves the wake-up when faults come
    /// close together and costs a CPU while it spins. Measured worse with the default
    /// `SCHED_FIFO` fault thread on 2 loaded CPUs (the spinning real-time thread keeps the
    /// writers off its CPU): leave it at zero unless `thread_priority` is inherited.
    pub fault_spin: Duration,
    /// How the fault thread and the background (scan, sink) threads are scheduled against
    /// the program's threads (default: fault thread `SCHED_FIFO` where permitted, background
    /// threads as spawned; see [`super::thread_priority`]). A setting the process may
    /// not make is reported in [`SnapshotReport::thread_priorities`](super::SnapshotReport::thread_priorities),
    /// not an error. [`ThreadPriority::inherit`] leaves every thread as spawned.
    #[serde(default)]
    pub thread_priority: ThreadPriority,
    /// Touch every page by reading it before arming even when the kernel could protect
    /// unpopulated pages itself (to test the fallback).
    pub force_touch: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            service_model: ServiceModel::Decoupled,
            policy: PolicyConfig::default_for(ServiceModel::Decoupled),
            scan_batch_pages: None,
            budget_bytes: None,
            fault_spin: Duration::ZERO,
            thread_priority: ThreadPriority::default(),
            force_touch: false,
        }
    }
}

impl SnapshotConfig {
    /// The engine configuration for `region`: the budget resolved (the default rule reads
    /// /proc/meminfo and the cgroup), and whole 2 MiB capture units on a THP region whose
    /// start is 2 MiB-aligned, so huge pages are unprotected whole and not split.
    pub fn engine_config(&self, region: &Region) -> EngineConfig {
        self.engine_config_for(&Regions::from(*region))
    }

    /// The engine configuration for a session over several regions: one engine over their
    /// pages in order; whole 2 MiB capture units only when every region is an aligned THP
    /// region whose pages start on a unit boundary of the concatenated page space.
    pub fn engine_config_for(&self, regions: &Regions) -> EngineConfig {
        let page_size = regions.page_size();
        let mut config = EngineConfig::new(page_size, regions.page_count(), self.service_model, self.policy.clone());
        config.scan_batch_pages =
            self.scan_batch_pages.unwrap_or_else(|| default_scan_batch_pages(self.service_model, page_size));
        // The scan's batch is unprotected in one call even where faults saved pages inside it
        // (docs/results/2026-11-30-window.md); the qemu model keeps QEMU's runs.
        config.scan_spans_saved_pages = self.service_model == ServiceModel::Decoupled;
        let unit = regions.iter().map(capture_unit_pages).min().unwrap_or(1);
        let aligned = (0..regions.count()).all(|i| regions.first_page_of(i).is_multiple_of(unit));
        config.capture_unit_pages = if aligned { unit } else { 1 };
        let budget_bytes = self.budget_bytes.unwrap_or_else(|| default_budget_bytes(regions.len() as u64));
        config.budget_pages = (budget_bytes / page_size).max(config.capture_unit_pages);
        config
    }
}

/// 512 on a THP region aligned to 2 MiB (whole huge pages), else 1.
pub fn capture_unit_pages(region: &Region) -> u64 {
    let aligned = (region.start() as u64).is_multiple_of(THP_BYTES);
    if region.backing() == Backing::Thp && aligned && region.page_size() < THP_BYTES {
        THP_BYTES / region.page_size()
    } else {
        1
    }
}
