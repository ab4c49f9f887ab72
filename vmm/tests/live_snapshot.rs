//! The VMM end to end: boot the guest, snapshot it live while it writes, compare the image with
//! a reference copy taken while the vCPUs were paused, restore it into a new VM and see the
//! guest's self-check pass there.

mod common;

use common::{BOOT_WAIT, MEMORY_BYTES, boot_writing, kvm_available, scratch, vm_config};
use std::path::Path;
use wpsnap_core::policy::{BANDWIDTH_SLICE_NS_DEFAULT, BandwidthParams};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_linux::output::{Output, OutputSpec, SlowDevice, SlowDeviceProfile, open_output};
use wpsnap_linux::snapshot::SnapshotConfig;
use wpsnap_vmm::snapshot::{restore, start_live_snapshot};
use wpsnap_vmm::{GuestConfig, GuestPattern};

/// Scan pace: 64 MiB at this rate takes ~1 s, so the guest (resumed at once) stores into
/// unsaved pages and faults, even when two CPU hogs delay its thread by many milliseconds.
/// The qemu model's thread is paced by the bandwidth policy (it charges each capture); the
/// decoupled model's scan is not (its stream bytes are charged when the sink writes them, and
/// with the default budget the scan stages the whole region at memcpy speed: once the staging
/// pool made that fast, 1 run in 30 finished before the guest stored anything). So the sink is
/// an emulated device at this rate too, and the decoupled budget is small: the scan can run
/// only `DECOUPLED_BUDGET_BYTES` ahead of it.
const SCAN_BYTES_PER_SEC: u64 = 64 << 20;
/// The decoupled model's memory budget in this test.
const DECOUPLED_BUDGET_BYTES: u64 = 4 << 20;

fn snapshot_and_restore(test: &str, model: ServiceModel, vcpus: u32) {
    if !kvm_available(test) {
        return;
    }
    let dir = scratch(test);
    let path = dir.join("vm.wps");
    let guest = GuestConfig { pattern: GuestPattern::Uniform, report_ms: 100, ..Default::default() };
    let vm = boot_writing(&guest, vcpus);

    let file = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("output file");
    let device = SlowDeviceProfile {
        name: "test-64MiB/s".to_string(),
        bandwidth_bytes_per_sec: SCAN_BYTES_PER_SEC,
        stalls: Vec::new(),
        seed: 1,
    };
    let output: Box<dyn Output> = Box::new(SlowDevice::new(file, device));
    let config = SnapshotConfig {
        service_model: model,
        budget_bytes: Some(DECOUPLED_BUDGET_BYTES),
        policy: PolicyConfig::Bandwidth(BandwidthParams {
            bytes_per_sec: SCAN_BYTES_PER_SEC,
            slice_ns: BANDWIDTH_SLICE_NS_DEFAULT,
        }),
        ..Default::default()
    };
    let mut reference = Vec::new();
    let snapshot = start_live_snapshot(&vm, output, config, |region| {
        reference.resize(region.len(), 0);
        region.copy_pages(0, region.page_count(), &mut reference);
    })
    .expect("the live snapshot starts");
    let report = snapshot.finish().expect("the live snapshot completes");
    assert!(report.session.engine.stats.pages_by_fault > 0, "the guest never faulted: nothing was live");
    assert!(report.pause.downtime_ns >= report.pause.park_ns);
    vm.check().expect("the guest kept running through the snapshot");
    vm.stop().expect("the VM stops");

    assert_image_equals(&path, &reference);
    let restored = restore(&path, vm_config(vcpus)).expect("the snapshot restores");
    let asked = restored.request_verify().expect("mailbox");
    let checks = restored
        .wait_for("every vCPU's self-check after the restore", BOOT_WAIT, |s| {
            let checks: Vec<_> = s.checks.iter().cloned().collect();
            (checks.len() >= vcpus as usize).then_some(checks)
        })
        .unwrap_or_else(|e| {
            panic!("{e}: {:?}", restored.with_serial(|s| (s.stats.clone(), s.checks.clone(), s.ready.clone())))
        });
    assert!(asked > 0);
    for check in &checks {
        assert!(check.ok, "self-check failed after restore: {check:?}");
        assert!(check.transfers > 0, "the snapshot was taken before any transfer: {check:?}");
    }
    restored
        .wait_for("stores after the restore", BOOT_WAIT, |s| s.stats.iter().any(|l| l.stores > 0).then_some(()))
        .expect("the restored guest goes on storing");
    restored.stop().expect("the restored VM stops cleanly");
    let _ = std::fs::remove_dir_all(dir);
}

fn assert_image_equals(path: &Path, reference: &[u8]) {
    let mut image = vec![0u8; MEMORY_BYTES as usize];
    wpsnap_format::load_into(path, &mut image).expect("the snapshot loads");
    if image != reference {
        let differing: Vec<usize> =
            (0..image.len() / 4096).filter(|&p| image[p * 4096..][..4096] != reference[p * 4096..][..4096]).collect();
        panic!(
            "the image differs from the pause-instant copy in {} pages, first {:?}",
            differing.len(),
            differing.first()
        );
    }
}

#[test]
fn live_snapshot_equals_the_pause_instant_and_restores_decoupled() {
    snapshot_and_restore("decoupled", ServiceModel::Decoupled, 1);
}

#[test]
fn live_snapshot_equals_the_pause_instant_and_restores_qemu_model_two_vcpus() {
    snapshot_and_restore("qemu-2vcpu", ServiceModel::Qemu, 2);
}
