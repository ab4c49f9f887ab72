//! Engine configuration: region geometry, service model, policy and the bounds on every queue.

use crate::policy::PolicyConfig;
use crate::time::Nanos;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Page sizes the engine accepts: 4 KiB base pages and the x86-64 huge-page sizes.
pub const PAGE_SIZES: [u64; 3] = [4096, 2 << 20, 1 << 30];
/// Largest region the engine tracks, in pages (2^36 pages: 256 TiB of 4 KiB pages, a
/// 8 GiB bitmap). A larger request is a configuration error, not an allocation failure.
pub const PAGE_COUNT_MAX: u64 = 1 << 36;
/// Upper bound on faults the engine holds queued. Each queued fault is a thread blocked in the
/// kernel on its page, and Linux allows at most `PID_MAX_LIMIT` (2^22) threads; only a thread
/// that faults again from a signal handler while its first fault waits can add a second. A
/// fault past this bound is refused with [`FaultError::QueueOverflow`](crate::FaultError),
/// which a driver treats as fatal.
pub const FAULT_QUEUE_PAGES_MAX: usize = 1 << 22;
/// Upper bound on the memory budget of the decoupled model: any region (a budget larger than
/// the region is allowed and means "the whole region").
pub const BUDGET_PAGES_MAX: u64 = PAGE_COUNT_MAX;
/// Upper bound on one capture unit: 1 GiB of 4 KiB pages (a 1 GiB huge page).
pub const CAPTURE_UNIT_PAGES_MAX: u64 = 1 << 18;
/// The scan's high-water mark may not exceed this share of the budget: the rest is the room
/// faults are guaranteed to find while the sink stalls.
pub const SCAN_HIGH_WATER_PERCENT_MAX: u8 = 90;
/// Upper bound on one scan capture.
pub const SCAN_BATCH_PAGES_MAX: u64 = 1024;
/// QEMU checks the iteration time every 64 pages (`(i & 63) == 0` in `ram_save_iterate`).
pub const ITERATION_CHECK_PAGES: u64 = 64;

/// Who waits for what when a writer faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceModel {
    /// QEMU's: one thread saves each page to the stream, then unprotects it. A fault waits
    /// for the stream write of its own page and of any scan page already being written.
    Qemu,
    /// A faulted page is copied into staging memory and unprotected at once; a sink drains
    /// the staging. A fault waits for a memory copy unless the memory budget is exhausted.
    Decoupled,
}

impl ServiceModel {
    /// The capture lanes this model runs (one thread each in the Linux backend).
    pub fn lanes(self) -> &'static [crate::Lane] {
        match self {
            ServiceModel::Qemu => &[crate::Lane::Single],
            ServiceModel::Decoupled => &[crate::Lane::Fault, crate::Lane::Scan],
        }
    }
}

/// How long one iteration may run before the driver gets its housekeeping turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IterationMode {
    /// QEMU's `MAX_WAIT`: 50 ms.
    Ordinary,
    /// The seed's `WT_MAX_WAIT`: 1000 ms, because throttled pages take up to 5 ms each.
    WriteTracking,
}

impl IterationMode {
    pub fn wait_max(self) -> Nanos {
        match self {
            IterationMode::Ordinary => Nanos::from_ms(50),
            IterationMode::WriteTracking => Nanos::from_ms(1000),
        }
    }
}

/// Everything the engine needs to know. Serde gives reports and config files the same shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Bytes per page: 4096, 2 MiB or 1 GiB.
    pub page_size: u64,
    /// Pages in the region.
    pub page_count: u64,
    pub service_model: ServiceModel,
    pub policy: PolicyConfig,
    /// Iteration time limit; `None` takes the policy's own (the seed policies run in
    /// write-tracking mode as the seed did, the others in ordinary mode as QEMU does today).
    #[serde(default)]
    pub iteration_mode: Option<IterationMode>,
    /// Move the scan cursor to a faulting page, as QEMU does (neighbours of a written page
    /// are likely to be written next, so saving them early avoids more faults).
    #[serde(default = "default_true")]
    pub scan_follows_faults: bool,
    /// Pages one scan capture may take at most (contiguous, still unsaved); rounded down to
    /// whole capture units, and at least one unit.
    #[serde(default = "default_scan_batch")]
    pub scan_batch_pages: u64,
    /// A scan capture may step over pages already saved (neither queued nor being captured)
    /// within its batch: it copies the unsaved runs ([`Capture::copy_runs`](crate::Capture::copy_runs))
    /// and unprotects the whole span in one call, so pages a writer faulted in do not split
    /// the batch into several unprotect calls. Drivers that set it must copy `copy_runs`, not
    /// `run`.
    #[serde(default)]
    pub scan_spans_saved_pages: bool,
    /// Memory budget of the decoupled model, in pages: staged pages (copied, not yet drained
    /// to the sink) never exceed it. Up to the whole region (or more, which changes nothing).
    #[serde(default = "default_budget", alias = "staging_pages")]
    pub budget_pages: u64,
    /// The scan stops staging at this share of the budget (its high-water mark), so faults
    /// find the rest free while the sink stalls; once everything still unsaved fits in the
    /// budget, the scan may use all of it.
    #[serde(default = "default_high_water")]
    pub scan_high_water_percent: u8,
    /// Pages captured and unprotected together: 1 for base pages; 512 on a THP region of
    /// 4 KiB pages, so whole 2 MiB huge pages are saved and unprotected at once and the kernel
    /// does not split them. Units are aligned to the region start; a power of two.
    #[serde(default = "default_capture_unit")]
    pub capture_unit_pages: u64,
}

fn default_true() -> bool {
    true
}
fn default_scan_batch() -> u64 {
    1
}
fn default_budget() -> u64 {
    4096
}
fn default_high_water() -> u8 {
    50
}
fn default_capture_unit() -> u64 {
    1
}

impl EngineConfig {
    /// A config with the defaults for everything but geometry, model and policy.
    pub fn new(page_size: u64, page_count: u64, service_model: ServiceModel, policy: PolicyConfig) -> EngineConfig {
        EngineConfig {
            page_size,
            page_count,
            service_model,
            policy,
            iteration_mode: None,
            scan_follows_faults: true,
            scan_spans_saved_pages: false,
            scan_batch_pages: default_scan_batch(),
            budget_pages: default_budget(),
            scan_high_water_percent: default_high_water(),
            capture_unit_pages: default_capture_unit(),
        }
    }

    /// Staged pages at which the scan stops while the rest of the region does not fit in the
    /// budget: the configured share, at least one capture unit.
    pub fn scan_high_water_pages(&self) -> u64 {
        let share = (self.budget_pages as u128 * self.scan_high_water_percent as u128 / 100) as u64;
        share.max(self.capture_unit_pages).min(self.budget_pages)
    }

    /// Most pages one scan capture takes: the batch in whole units, at least one unit.
    pub fn scan_run_pages_max(&self) -> u64 {
        let unit = self.capture_unit_pages;
        // A valid unit is a power of two: a mask then (this runs per scan capture).
        let whole_units = if unit.is_power_of_two() {
            self.scan_batch_pages & !(unit - 1)
        } else {
            self.scan_batch_pages / unit * unit
        };
        whole_units.max(unit)
    }

    /// The iteration mode in force: the configured one, else the policy's.
    pub fn effective_iteration_mode(&self) -> IterationMode {
        self.iteration_mode.unwrap_or_else(|| self.policy.default_iteration_mode())
    }

    /// Checks every field against its bound; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !PAGE_SIZES.contains(&self.page_size) {
            return Err(ConfigError::field("page_size", format!("{} is not one of {:?}", self.page_size, PAGE_SIZES)));
        }
        if self.page_count == 0 || self.page_count > PAGE_COUNT_MAX {
            return Err(ConfigError::field(
                "page_count",
                format!("{} is outside 1..={PAGE_COUNT_MAX}", self.page_count),
            ));
        }
        if self.scan_batch_pages == 0 || self.scan_batch_pages > SCAN_BATCH_PAGES_MAX {
            return Err(ConfigError::field(
                "scan_batch_pages",
                format!("{} is outside 1..={SCAN_BATCH_PAGES_MAX}", self.scan_batch_pages),
            ));
        }
        let unit = self.capture_unit_pages;
        if unit == 0 || unit > CAPTURE_UNIT_PAGES_MAX || !unit.is_power_of_two() {
            return Err(ConfigError::field(
                "capture_unit_pages",
                format!("{unit} is not a power of two in 1..={CAPTURE_UNIT_PAGES_MAX}"),
            ));
        }
        if self.service_model == ServiceModel::Decoupled {
            if self.budget_pages < unit || self.budget_pages > BUDGET_PAGES_MAX {
                return Err(ConfigError::field(
                    "budget_pages",
                    format!("{} is outside {unit}..={BUDGET_PAGES_MAX} (at least one capture unit)", self.budget_pages),
                ));
            }
            if self.scan_high_water_percent == 0 || self.scan_high_water_percent > SCAN_HIGH_WATER_PERCENT_MAX {
                return Err(ConfigError::field(
                    "scan_high_water_percent",
                    format!("{} is outside 1..={SCAN_HIGH_WATER_PERCENT_MAX}", self.scan_high_water_percent),
                ));
            }
        }
        self.policy.validate()
    }
}

/// A configuration value out of its bounds.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn field(field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError { field, reason: reason.into() }
    }
}
