//! When the qemu lane reads a fault: between captures only, after its work following each
//! capture (`handler.capture_fixed_ns`). A writer that faults again right after its wake-up
//! is then served before the next scan batch; without that work it waits for a whole batch.

use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_sim::SimConfig;
use wpsnap_sim::disk::DiskPreset;
use wpsnap_workload::Pattern;

/// A scan batch takes 16 pages x 100 us: far longer than a fault's round trip.
const PAGE_NS: u64 = 100_000;

fn median_fault_wait_ns(capture_fixed_ns: u64) -> u64 {
    let mut config = SimConfig::new(2048 * 4096, ServiceModel::Qemu, PolicyConfig::None, DiskPreset::Tmpfs);
    config.writers.count = 1;
    config.writers.pattern = Pattern::Uniform;
    // As fast as it can, back to back: it faults again at once after each wake-up.
    config.writers.writes_per_sec = 3_000_000.0;
    config.writers.open_loop = false;
    config.zero_page_percent = 0;
    config.baseline = false;
    config.engine.scan_batch_pages = 16;
    config.handler.capture_overhead_ns = PAGE_NS;
    config.handler.capture_fixed_ns = capture_fixed_ns;
    let report = wpsnap_sim::run(5, &config).expect("valid config");
    assert!(report.is_clean(), "simulator invariant: {:?}", report.invariants.first_violations);
    let wait = &report.engine.as_ref().expect("snapshot ran").fault_wait;
    assert!(wait.count >= 100, "too few faults ({})", wait.count);
    wait.p50_ns
}

#[test]
fn a_fault_arriving_during_the_lanes_work_is_read_before_the_next_batch() {
    // Fault delivery 4 us + wake 2 us + a store: the next fault is readable within ~7 us of
    // the unprotect, so 20 us of work after each capture lets the lane see it first.
    let with_work = median_fault_wait_ns(20_000);
    let without = median_fault_wait_ns(0);
    let batch_ns = 16 * PAGE_NS;
    assert!(without >= batch_ns / 2, "without the work the fault waits for a batch: p50 {without} ns");
    assert!(with_work < batch_ns / 4, "with it the fault is read first: p50 {with_work} ns");
}
