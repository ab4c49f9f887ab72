//! What a session needs to know beyond the region.

use serde::{Deserialize, Serialize};
use wpsnap_core::{EngineConfig, PolicyConfig, ServiceModel};

/// Session settings. The engine's geometry (page size, page count) comes from the region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotConfig {
    pub service_model: ServiceModel,
    pub policy: PolicyConfig,
    /// Contiguous pages one scan capture (and one unprotect) may cover.
    pub scan_batch_pages: u64,
    /// Staging buffer of the decoupled model, in pages.
    pub staging_pages: u64,
    /// Touch every page by reading it before arming even when the kernel could protect
    /// unpopulated pages itself (to test the fallback).
    pub force_touch: bool,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            service_model: ServiceModel::Decoupled,
            policy: PolicyConfig::LatencyTarget(Default::default()),
            scan_batch_pages: 16,
            staging_pages: 4096,
            force_touch: false,
        }
    }
}

impl SnapshotConfig {
    /// The engine configuration for a region of `page_count` pages of `page_size` bytes.
    pub fn engine_config(&self, page_size: u64, page_count: u64) -> EngineConfig {
        let mut config = EngineConfig::new(page_size, page_count, self.service_model, self.policy.clone());
        config.scan_batch_pages = self.scan_batch_pages;
        config.staging_pages = self.staging_pages;
        // Leave the scan room whatever the staging size (the engine requires reserve < size).
        config.fault_reserve_pages = config.fault_reserve_pages.min(self.staging_pages.saturating_sub(1) / 2);
        config
    }
}
