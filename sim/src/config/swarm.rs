//! Swarm testing: one seed picks the whole configuration (TigerBeetle's VOPR does this), so
//! a sweep over seeds covers combinations nobody thought to write down.

use super::SimConfig;
use crate::disk::DiskPreset;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams, LimitScanRateParams};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_workload::Pattern;

/// A random but valid configuration of at most `pages_max` pages, and the list of what was
/// picked (`name=value`), which callers print before running.
pub fn swarm_config(seed: u64, pages_max: u64) -> (SimConfig, Vec<String>) {
    // A stream of its own, so the run's sub-seeds are the same as without swarm.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a5a_5157_4152_4d00);
    let model = if rng.random_bool(0.5) { ServiceModel::Qemu } else { ServiceModel::Decoupled };
    let policy = match rng.random_range(0..5u32) {
        0 => PolicyConfig::None,
        1 => PolicyConfig::LimitScanRate(LimitScanRateParams::default()),
        2 => PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()),
        3 => PolicyConfig::Bandwidth(BandwidthParams {
            bytes_per_sec: rng.random_range(8u64..512) << 20,
            burst_bytes: 64 * 4096,
        }),
        _ => PolicyConfig::LatencyTarget(LatencyTargetParams::default()),
    };
    let disk = DiskPreset::ALL[rng.random_range(0..DiskPreset::ALL.len())];
    let pages = rng.random_range(1..=pages_max.max(1));
    let mut config = SimConfig::new(pages * 4096, model, policy, disk);
    let patterns = [
        Pattern::Uniform,
        Pattern::Zipf { theta: 0.99 },
        Pattern::HotSet { hot_write_percent: 90, hot_page_percent: 10 },
        Pattern::Sequential,
        Pattern::Video,
    ];
    config.writers.pattern = patterns[rng.random_range(0..patterns.len())].clone();
    config.writers.count = rng.random_range(1..=8);
    config.writers.writes_per_sec = rng.random_range(1_000.0..200_000.0);
    config.engine.scan_batch_pages = [1, 1, 16, 64][rng.random_range(0..4usize)];
    config.engine.scan_follows_faults = rng.random_bool(0.7);
    if model == ServiceModel::Decoupled {
        config.engine.staging_pages = rng.random_range(128..=4096);
        config.engine.fault_reserve_pages = rng.random_range(1..64);
        config.sink_batch_pages = rng.random_range(1..=256);
    }
    config.zero_page_percent = rng.random_range(0..=100);
    let picked = vec![
        format!("model={model:?}").to_lowercase(),
        format!("policy={}", config.engine.policy.name()),
        format!("disk={disk}"),
        format!("pages={pages}"),
        format!("pattern={}", config.writers.pattern),
        format!("writers={}", config.writers.count),
        format!("writes_per_sec={:.0}", config.writers.writes_per_sec),
        format!("scan_batch_pages={}", config.engine.scan_batch_pages),
        format!("scan_follows_faults={}", config.engine.scan_follows_faults),
        format!("staging_pages={}", config.engine.staging_pages),
        format!("zero_page_percent={}", config.zero_page_percent),
    ];
    (config, picked)
}
