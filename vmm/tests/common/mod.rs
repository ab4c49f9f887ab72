//! Shared by the KVM tests: the skip-or-require rule and scratch folders.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;
use wpsnap_vmm::{GuestConfig, Vm, VmConfig};

/// Guest memory of the tests: small, so a snapshot takes well under a second.
pub const MEMORY_BYTES: u64 = 64 << 20;
/// Bound on the guest's lines (boot is ~3 ms; generous for two CPU hogs and a busy host).
pub const BOOT_WAIT: Duration = Duration::from_secs(60);

/// True if /dev/kvm can be used. Without it: a printed skip, or a failure when
/// `WPSNAP_REQUIRE_KVM=1` (CI sets it).
pub fn kvm_available(test: &str) -> bool {
    let reason = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => return true,
        Err(e) => format!("/dev/kvm cannot be opened: {e}"),
    };
    if std::env::var("WPSNAP_REQUIRE_KVM").is_ok_and(|v| v == "1") {
        panic!("{test}: WPSNAP_REQUIRE_KVM=1 but {reason}");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

/// A fresh scratch folder for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-vmm-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch folder");
    dir
}

/// How long the tests let a pause wait for the vCPUs to park. The default bound (200 ms) is
/// the product's: a pause that long fails the snapshot loudly. A test asks whether the vCPUs
/// park at all, and on a host loaded to 10 (two CPU hogs beside other builds) both vCPU
/// threads once took over 200 ms to be scheduled and leave KVM_RUN (1 run in 30).
pub const PAUSE_WAIT_MS_TESTS: u64 = 5_000;

/// The tests' VM settings.
pub fn vm_config(vcpus: u32) -> VmConfig {
    VmConfig { memory_bytes: MEMORY_BYTES, vcpus, pause_wait_ms_max: PAUSE_WAIT_MS_TESTS, ..Default::default() }
}

/// Stores a vCPU must have reported (summed over its periods) before a test snapshots it:
/// past the warm-up (first touches of shadow page tables take milliseconds each), and many
/// self-check transfers (one per 64 stores) done. A sum, not a rate: it is reached however
/// slowly a loaded host runs the guest.
pub const WARM_STORES_MIN: u64 = 100_000;

/// Boots the guest and waits until every vCPU reports stores past its warm-up.
pub fn boot_writing(guest: &GuestConfig, vcpus: u32) -> Vm {
    let vm = Vm::boot(wpsnap_vmm::GUEST_ELF, guest, vm_config(vcpus)).expect("the guest boots");
    vm.wait_for("a stats line from every vCPU", BOOT_WAIT, |s| {
        let stores = |cpu| s.stats.iter().filter(|l| l.cpu == cpu).map(|l| l.stores).sum::<u64>();
        (0..vcpus).all(|cpu| stores(cpu) >= WARM_STORES_MIN).then_some(())
    })
    .expect("the guest writes");
    vm
}
