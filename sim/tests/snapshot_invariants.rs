//! Every model, policy and disk: every page saved exactly once, the image equals memory at
//! the snapshot instant, no writer left blocked; each seed run twice with equal reports.

mod common;

use common::{assert_clean_and_complete, policies, run_twice, small};
use wpsnap_core::ServiceModel;
use wpsnap_sim::disk::DiskPreset;

#[test]
fn every_policy_and_model_saves_each_page_once_and_the_image_is_the_instant() {
    for model in [ServiceModel::Qemu, ServiceModel::Decoupled] {
        for policy in policies() {
            for seed in [1, 2] {
                let config = small(model, policy.clone(), DiskPreset::Hdd7200, 4096);
                let report = run_twice(seed, &config);
                assert_clean_and_complete(seed, &report);
                assert!(report.snapshot.pages_by_fault > 0, "seed={seed}: writers should have faulted");
            }
        }
    }
}

#[test]
fn every_disk_preset_completes() {
    for disk in DiskPreset::ALL {
        for model in [ServiceModel::Qemu, ServiceModel::Decoupled] {
            let config = small(model, wpsnap_core::PolicyConfig::limit_scan_rate(), disk, 4096);
            let report = run_twice(7, &config);
            assert_clean_and_complete(7, &report);
        }
    }
}

#[test]
fn every_pattern_completes_with_a_scan_batch() {
    for pattern in ["uniform", "zipf:0.99", "hot-set:90/10", "sequential", "video"] {
        let mut config = small(ServiceModel::Decoupled, wpsnap_core::PolicyConfig::None, DiskPreset::SataSsd, 3000);
        config.writers.pattern = pattern.parse().expect("valid pattern");
        config.engine.scan_batch_pages = 16;
        config.engine.staging_pages = 256;
        config.sink_batch_pages = 32;
        let report = run_twice(3, &config);
        assert_clean_and_complete(3, &report);
        assert!(report.snapshot.staging_peak_pages <= 256);
    }
}

#[test]
fn swarm_seeds_keep_every_invariant() {
    for seed in 1..=12 {
        let (config, picked) = wpsnap_sim::config::swarm_config(seed, 4096);
        let report = run_twice(seed, &config);
        let ctx = format!("seed={seed} {}", picked.join(" "));
        assert!(report.is_clean(), "{ctx}: {:?} {:?}", report.invariants.first_violations, report.driver_errors);
        assert_eq!(report.engine.as_ref().map(|e| e.outcome.clone()), Some(wpsnap_core::Outcome::Complete), "{ctx}");
    }
}

#[test]
fn a_run_that_hits_its_time_limit_cancels_and_unblocks_every_writer() {
    let mut config = small(ServiceModel::Qemu, wpsnap_core::PolicyConfig::None, DiskPreset::Hdd7200, 8192);
    config.sim_time_ns_max = config.warmup_ns + 2_000_000;
    let report = run_twice(5, &config);
    assert!(report.snapshot.time_limit_hit);
    assert!(matches!(report.engine.as_ref().map(|e| &e.outcome), Some(wpsnap_core::Outcome::Cancelled(_))));
    assert_eq!(report.writers.blocked_at_end, 0);
    assert_eq!(report.invariants.violations, 0, "{:?}", report.invariants.first_violations);
    assert!(report.invariants.pages_saved < 8192);
}

#[test]
fn a_competing_stream_on_the_disk_slows_the_snapshot() {
    let mut config = small(ServiceModel::Qemu, wpsnap_core::PolicyConfig::None, DiskPreset::Hdd7200, 4096);
    // Make the run disk-bound: a tiny cache, no zero pages.
    config.zero_page_percent = 0;
    let mut disk = config.disk_params();
    if let Some(cache) = disk.page_cache.as_mut() {
        cache.dirty_background_bytes = 1 << 20;
        cache.dirty_limit_bytes = 2 << 20;
    }
    config.disk = Some(disk.clone());
    let quiet = run_twice(2, &config);
    disk.competing = Some(wpsnap_sim::disk::CompetingIo { bytes_per_sec: 40_000_000, switch_ns: 8_500_000 });
    config.disk = Some(disk);
    let busy = run_twice(2, &config);
    assert_clean_and_complete(2, &quiet);
    assert_clean_and_complete(2, &busy);
    let (q, b) = (quiet.snapshot.duration_ns.unwrap_or(0), busy.snapshot.duration_ns.unwrap_or(0));
    assert!(b > q * 3 / 2, "competing I/O barely slowed the snapshot: {q} ns -> {b} ns");
}

#[test]
fn huge_pages_complete_and_keep_the_invariants() {
    for model in [ServiceModel::Qemu, ServiceModel::Decoupled] {
        let mut config = small(model, wpsnap_core::PolicyConfig::limit_scan_rate(), DiskPreset::Nvme, 1);
        config.engine.page_size = 2 << 20;
        config.engine.page_count = 64;
        config.engine.staging_pages = 16;
        config.engine.fault_reserve_pages = 4;
        let report = run_twice(3, &config);
        assert_clean_and_complete(3, &report);
        assert!(report.snapshot.stream_bytes >= 64 * (2 << 20) / 5, "{}", report.snapshot.stream_bytes);
    }
}
