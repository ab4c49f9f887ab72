//! While `Vm::pause`'s guard lives, the guest does not run: its memory does not change; after
//! the guard is dropped it runs again.

mod common;

use common::{BOOT_WAIT, boot_writing, kvm_available};
use std::time::Duration;
use wpsnap_vmm::GuestConfig;

/// Long enough for a running guest to make thousands of stores even on a loaded host.
const PAUSED_FOR: Duration = Duration::from_millis(200);

fn memory_copy(vm: &wpsnap_vmm::Vm) -> Vec<u8> {
    let mut copy = vec![0u8; vm.memory().len() as usize];
    vm.memory().read(0, &mut copy).expect("reading guest memory");
    copy
}

#[test]
fn a_paused_guest_does_not_run_until_resumed() {
    if !kvm_available("pause") {
        return;
    }
    let vm = boot_writing(&GuestConfig { report_ms: 100, ..Default::default() }, 2);
    let paused = vm.pause().expect("the vCPUs park");
    assert_eq!(paused.states().len(), 2, "one register set per vCPU");
    let before = memory_copy(&vm);
    std::thread::sleep(PAUSED_FOR);
    let after = memory_copy(&vm);
    assert!(before == after, "guest memory changed while the vCPUs were paused");
    drop(paused);

    let stats_at_resume = vm.with_serial(|s| s.stats.len());
    vm.wait_for("a stats line after the resume", BOOT_WAIT, |s| (s.stats.len() > stats_at_resume).then_some(()))
        .expect("the guest runs again");
    assert!(memory_copy(&vm) != after, "the resumed guest did not write");
    vm.stop().expect("stops");
}
