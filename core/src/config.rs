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
/// Upper bound on the fault queue. Each blocked writer thread has at most one fault in
/// flight, so this is a bound on writer threads, not on memory traffic.
pub const FAULT_QUEUE_PAGES_MAX: usize = 1 << 16;
/// Upper bound on the staging buffer of the decoupled model (1 GiB of 4 KiB pages).
pub const STAGING_PAGES_MAX: u64 = 1 << 18;
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
    /// A faulted page is copied into a bounded staging buffer and unprotected at once; a
    /// sink drains the buffer. A fault waits for a memory copy unless the buffer is full.
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
    /// Pages one scan capture may take at most (contiguous, still unsaved).
    #[serde(default = "default_scan_batch")]
    pub scan_batch_pages: u64,
    /// Staging buffer size for the decoupled model, in pages.
    #[serde(default = "default_staging")]
    pub staging_pages: u64,
    /// Staging pages the scan must leave free for faults (decoupled model).
    #[serde(default = "default_reserve")]
    pub fault_reserve_pages: u64,
    /// Bound on queued faults.
    #[serde(default = "default_fault_queue")]
    pub fault_queue_pages: usize,
}

fn default_true() -> bool {
    true
}
fn default_scan_batch() -> u64 {
    1
}
fn default_staging() -> u64 {
    4096
}
fn default_reserve() -> u64 {
    64
}
fn default_fault_queue() -> usize {
    1024
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
            scan_batch_pages: default_scan_batch(),
            staging_pages: default_staging(),
            fault_reserve_pages: default_reserve(),
            fault_queue_pages: default_fault_queue(),
        }
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
        if self.fault_queue_pages == 0 || self.fault_queue_pages > FAULT_QUEUE_PAGES_MAX {
            return Err(ConfigError::field(
                "fault_queue_pages",
                format!("{} is outside 1..={FAULT_QUEUE_PAGES_MAX}", self.fault_queue_pages),
            ));
        }
        if self.service_model == ServiceModel::Decoupled {
            if self.staging_pages == 0 || self.staging_pages > STAGING_PAGES_MAX {
                return Err(ConfigError::field(
                    "staging_pages",
                    format!("{} is outside 1..={STAGING_PAGES_MAX}", self.staging_pages),
                ));
            }
            if self.fault_reserve_pages >= self.staging_pages {
                return Err(ConfigError::field(
                    "fault_reserve_pages",
                    format!(
                        "{} leaves the scan no staging room (staging_pages is {})",
                        self.fault_reserve_pages, self.staging_pages
                    ),
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
