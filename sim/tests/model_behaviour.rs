//! What the model must show, qualitatively, on the seed's kind of test bed (small regions, so
//! these run in a debug build).

mod common;

use common::{assert_clean_and_complete, run_twice};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_sim::SimConfig;
use wpsnap_sim::disk::DiskPreset;
use wpsnap_sim::sweep::{Job, run_all};

/// The hdd-7200 test bed scaled down: 64 MiB of non-zero pages through a page cache scaled
/// down with it, so the dump tool is dirty-throttled as in a multi-GiB run.
fn hdd_qemu(policy: PolicyConfig) -> SimConfig {
    let mut config = SimConfig::new(64 << 20, ServiceModel::Qemu, policy, DiskPreset::Hdd7200);
    config.zero_page_percent = 0;
    let mut disk = config.disk_params();
    if let Some(cache) = disk.page_cache.as_mut() {
        cache.dirty_background_bytes = 4 << 20;
        cache.dirty_limit_bytes = 8 << 20;
    }
    config.disk = Some(disk);
    config
}

#[test]
fn the_seeds_measure_misses_waits_spent_behind_a_stream_write() {
    let report = run_twice(1, &hdd_qemu(PolicyConfig::None));
    assert_clean_and_complete(1, &report);
    let engine = report.engine.as_ref().expect("engine ran");
    let true_slow = engine.fault_wait.log2_ms.at_least_ms(8);
    let seed_slow = engine.seed_latency.log2_ms.at_least_ms(8);
    assert!(true_slow > 0, "no slow fault at all: the disk model has no tail");
    assert!(seed_slow < true_slow, "seed measure saw {seed_slow} slow faults, true waits {true_slow}");
}

#[test]
fn a_latency_target_cuts_the_slow_faults_of_the_unthrottled_scan() {
    let none = run_twice(2, &hdd_qemu(PolicyConfig::None));
    let paced = run_twice(2, &hdd_qemu(PolicyConfig::LatencyTarget(Default::default())));
    let slow = |r: &wpsnap_sim::SimReport| r.engine.as_ref().map_or(0, |e| e.fault_wait.log2_ms.at_least_ms(8));
    assert!(slow(&paced) < slow(&none), "latency-target {} vs none {}", slow(&paced), slow(&none));
}

#[test]
fn a_sweep_gives_the_same_reports_on_one_thread_or_several() {
    let jobs: Vec<Job> = (1..=4)
        .map(|seed| {
            let mut config = hdd_qemu(PolicyConfig::limit_scan_rate());
            config.engine.page_count = 2048;
            Job { seed, label: format!("s{seed}"), config }
        })
        .collect();
    let digests = |threads| -> Vec<u64> {
        run_all(&jobs, threads, &|| {}).into_iter().map(|r| r.map(|r| r.digest()).unwrap_or(0)).collect()
    };
    let one = digests(1);
    assert!(one.iter().all(|&d| d != 0));
    assert_eq!(one, digests(3));
}
