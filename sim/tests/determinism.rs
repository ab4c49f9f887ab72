//! Same seed and config: the same report, byte for byte. Different seeds: different runs.

mod common;

use common::{run_twice, small};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_sim::disk::DiskPreset;

#[test]
fn same_seed_same_digest_and_different_seeds_differ() {
    let config = small(ServiceModel::Qemu, PolicyConfig::limit_scan_rate(), DiskPreset::Hdd7200, 4096);
    let digests: Vec<u64> = (1..=4).map(|seed| run_twice(seed, &config).digest()).collect();
    for (i, a) in digests.iter().enumerate() {
        for b in &digests[i + 1..] {
            assert_ne!(a, b, "two seeds gave the same report: the seed is not used");
        }
    }
}

#[test]
fn the_report_names_its_seed_and_full_disk_parameters() {
    let config = small(ServiceModel::Decoupled, PolicyConfig::None, DiskPreset::Nvme, 2048);
    let report = run_twice(42, &config);
    assert_eq!(report.seed, 42);
    assert_eq!(report.config.disk.as_ref(), Some(&DiskPreset::Nvme.params()));
    let json = serde_json::to_value(&report).expect("serialises");
    for key in ["fault_wait", "seed_latency", "service_latency"] {
        assert!(json["engine"][key]["log2_ms"]["counts"].is_array(), "{key} has no log2-ms table");
    }
    assert!(json["fault_wait_histogram"].as_array().is_some_and(|h| !h.is_empty()));
    assert!(report.writers.throughput_ratio.is_some());
}

#[test]
fn a_snapshot_costs_closed_loop_writers_progress_against_the_baseline() {
    // The qemu model on the slow disk blocks writers on the stream: closed-loop writers
    // never make the blocked time up, so they must lose writes.
    let mut config = small(ServiceModel::Qemu, PolicyConfig::None, DiskPreset::Hdd7200, 8192);
    config.writers.open_loop = false;
    let report = run_twice(9, &config);
    let ratio = report.writers.throughput_ratio.expect("baseline ran");
    assert!(ratio < 1.0, "ratio {ratio}");
    assert!(report.writers.baseline_writes.is_some_and(|b| b > report.writers.writes_during_snapshot));
}

#[test]
fn open_loop_writers_catch_up_after_their_blocks() {
    // The same run with the default open-loop writers: they are blocked as long, but write
    // back to back afterwards, so they lose fewer writes than closed-loop ones.
    let mut config = small(ServiceModel::Qemu, PolicyConfig::None, DiskPreset::Hdd7200, 8192);
    let open = run_twice(9, &config);
    config.writers.open_loop = false;
    let closed = run_twice(9, &config);
    assert!(open.writers.blocked_ns_total > 0, "no writer was blocked");
    let ratio = |r: &wpsnap_sim::SimReport| r.writers.throughput_ratio.expect("baseline ran");
    assert!(ratio(&open) > ratio(&closed), "open {} closed {}", ratio(&open), ratio(&closed));
}

#[test]
fn a_reports_config_is_a_config_file_that_replays_the_run() {
    let config = small(ServiceModel::Qemu, PolicyConfig::limit_scan_rate(), DiskPreset::SataSsd, 2048);
    let report = run_twice(11, &config);
    let text = serde_json::to_string(&report.config).expect("serialises");
    let replayed_config = wpsnap_sim::SimConfig::from_json(&text).expect("the report's config is a valid file");
    let replayed = wpsnap_sim::run(11, &replayed_config).expect("runs");
    assert_eq!(replayed.digest(), report.digest());
}
