//! Helpers shared by the simulator's tests.
#![allow(dead_code)]

use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams, LimitScanRateParams};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_sim::disk::DiskPreset;
use wpsnap_sim::{SimConfig, SimReport, run};

pub fn policies() -> Vec<PolicyConfig> {
    vec![
        PolicyConfig::None,
        PolicyConfig::LimitScanRate(LimitScanRateParams::default()),
        PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()),
        PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 64 << 20, burst_bytes: 64 * 4096 }),
        PolicyConfig::LatencyTarget(LatencyTargetParams::default()),
    ]
}

/// A small scenario that runs in well under a second in a debug build.
pub fn small(model: ServiceModel, policy: PolicyConfig, disk: DiskPreset, pages: u64) -> SimConfig {
    let mut c = SimConfig::new(pages * 4096, model, policy, disk);
    c.writers.count = 4;
    c.writers.writes_per_sec = 50_000.0;
    c
}

/// Runs a seed twice and insists on identical reports (madsim's rule), then returns one.
pub fn run_twice(seed: u64, config: &SimConfig) -> SimReport {
    let first = run(seed, config).unwrap_or_else(|e| panic!("seed={seed}: {e}"));
    let second = run(seed, config).unwrap_or_else(|e| panic!("seed={seed}: {e}"));
    assert_eq!(first.digest(), second.digest(), "seed={seed}: the same seed gave two different reports");
    first
}

/// The checks every finished run must pass.
pub fn assert_clean_and_complete(seed: u64, r: &SimReport) {
    let ctx = format!("seed={seed} policy={} model={:?}", r.policy_name(), r.config.engine.service_model);
    assert_eq!(r.invariants.violations, 0, "{ctx}: {:?}", r.invariants.first_violations);
    assert!(r.driver_errors.is_empty(), "{ctx}: {:?}", r.driver_errors);
    assert_eq!(r.writers.blocked_at_end, 0, "{ctx}: writers left blocked");
    let engine = r.engine.as_ref().unwrap_or_else(|| panic!("{ctx}: no engine"));
    assert_eq!(engine.outcome, wpsnap_core::Outcome::Complete, "{ctx}");
    let pages = r.config.engine.page_count;
    assert_eq!(r.invariants.pages_saved, pages, "{ctx}: not every page saved");
    assert_eq!(r.snapshot.pages_by_scan + r.snapshot.pages_by_fault, pages, "{ctx}: a page saved twice or never");
    assert_eq!(r.invariants.pages_checked, pages, "{ctx}: captures checked != pages");
    assert_eq!(r.invariants.image_equals_snapshot_instant, Some(true), "{ctx}");
    // Every writer that faulted reported its wait.
    assert_eq!(engine.fault_wait.count, engine.stats.faults, "{ctx}: fault waits != faults read");
}
