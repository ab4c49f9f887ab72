//! The tail from mechanisms (issue 14): a `pv -L`-like consumer that sleeps out its slices
//! makes qemu-model faults wait most of a slice; a smooth consumer of the same rate does not;
//! with no heavy-tailed stall configured anywhere. Every run twice, byte-identical.

mod common;

use common::{assert_clean_and_complete, run_twice};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_sim::SimConfig;
use wpsnap_sim::disk::{DiskPreset, MeterParams, PipeParams, StallParams};

/// 32 MiB, one fast uniform writer, the consumer metered at 20 MB/s in slices of `slice_ns`.
fn consumer(model: ServiceModel, slice_ns: u64, burst_slices: u32) -> SimConfig {
    let mut c = SimConfig::new(32 << 20, model, PolicyConfig::None, DiskPreset::Tmpfs);
    c.writers.count = 1;
    c.writers.pattern = wpsnap_workload::Pattern::Uniform;
    c.writers.writes_per_sec = 1_000_000.0;
    c.zero_page_percent = 0;
    c.baseline = false;
    c.engine.scan_batch_pages = 16;
    let mut disk = DiskPreset::Tmpfs.params();
    disk.write_stall = StallParams::NONE;
    disk.device_stall = StallParams::NONE;
    disk.user_buffer_bytes = 256 << 10;
    disk.pipe = Some(PipeParams {
        capacity_bytes: 64 << 10,
        wake_ns: 20_000,
        read_bytes_max: 64 << 10,
        meter: Some(MeterParams { rate_bytes_per_sec: 20_000_000, slice_ns, burst_slices }),
    });
    c.disk = Some(disk);
    c
}

fn waits_at_least_ms(config: &SimConfig, ms: u64) -> u64 {
    let report = run_twice(3, config);
    assert_clean_and_complete(3, &report);
    let engine = report.engine.as_ref().expect("snapshot ran");
    engine.fault_wait.log2_ms.at_least_ms(ms)
}

#[test]
fn a_bursty_consumer_makes_slice_long_waits_in_the_qemu_model_and_a_smooth_one_does_not() {
    // 32 MiB at 20 MB/s: about 17 slices of 100 ms; at least one slice-long wait in most.
    let bursty = waits_at_least_ms(&consumer(ServiceModel::Qemu, 100_000_000, 1), 64);
    assert!((8..=40).contains(&bursty), "{bursty} waits >= 64 ms with 100 ms slices");
    // One 16 KiB read per slice: a write waits a few ms at most.
    let smooth = waits_at_least_ms(&consumer(ServiceModel::Qemu, 819_200, 1), 16);
    assert_eq!(smooth, 0, "{smooth} waits >= 16 ms with a smooth consumer");
}

#[test]
fn within_the_budget_decoupled_faults_do_not_wait_for_the_bursty_consumer() {
    let mut config = consumer(ServiceModel::Decoupled, 100_000_000, 1);
    config.engine.budget_pages = config.engine.page_count;
    assert_eq!(waits_at_least_ms(&config, 16), 0);
}
