//! Bad input gives a clear error, never a hang: a binary that is not a multiboot ELF, a guest
//! that exits or faults, a vCPU that does not stop, a snapshot whose region does not match.

mod common;

use common::{BOOT_WAIT, MEMORY_BYTES, boot_writing, kvm_available, scratch, vm_config};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use wpsnap_format::{Header, SnapshotWriter};
use wpsnap_linux::output::{OutputSpec, open_output};
use wpsnap_linux::snapshot::SnapshotConfig;
use wpsnap_vmm::snapshot::{restore, start_live_snapshot};
use wpsnap_vmm::{GUEST_ELF, GuestConfig, GuestLine, GuestStop, LoadError, Vm, VmConfig, VmError, VmSnapshotError};

#[test]
fn a_binary_that_is_not_a_multiboot_elf_is_refused() {
    if !kvm_available("not-multiboot") {
        return;
    }
    let guest = GuestConfig::default();
    let garbage = vec![0x90u8; 16 << 10];
    let err = Vm::boot(&garbage, &guest, vm_config(1)).expect_err("garbage boots");
    assert!(matches!(err, VmError::Load(LoadError::NoMultibootHeader)), "{err}");
    // A real ELF (this test binary) without a multiboot header.
    let exe = std::fs::read("/proc/self/exe").expect("reading the test binary");
    let err = Vm::boot(&exe, &guest, vm_config(1)).expect_err("an ELF64 program boots");
    assert!(matches!(err, VmError::Load(LoadError::NoMultibootHeader)), "{err}");
    // The guest with its ELF class byte changed to 64-bit: the header is found, the ELF refused.
    let mut elf64 = GUEST_ELF.to_vec();
    elf64[4] = 2;
    let err = Vm::boot(&elf64, &guest, vm_config(1)).expect_err("a broken ELF boots");
    assert!(matches!(err, VmError::Load(LoadError::NotElf32(_))), "{err}");
}

#[test]
fn bad_vm_settings_are_refused() {
    let guest = GuestConfig::default();
    let err = Vm::boot(GUEST_ELF, &guest, VmConfig { vcpus: 0, ..vm_config(1) }).expect_err("0 vCPUs");
    assert!(matches!(err, VmError::BadVcpuCount { .. }), "{err}");
    let err = Vm::boot(GUEST_ELF, &guest, VmConfig { memory_bytes: 4 << 20, ..vm_config(1) }).expect_err("4 MiB");
    assert!(matches!(err, VmError::Memory { .. }), "{err}");
}

#[test]
fn a_guest_that_exits_is_an_error() {
    if !kvm_available("guest-exits") {
        return;
    }
    let guest = GuestConfig { exit_after_ms: 1, report_ms: 10, ..Default::default() };
    let vm = Vm::boot(GUEST_ELF, &guest, vm_config(1)).expect("boots");
    let err = vm.wait_for("a line that never comes", BOOT_WAIT, |_| None::<()>).expect_err("the guest exited");
    assert!(matches!(err, VmError::GuestStopped { stop: GuestStop::Exited { code: 1 }, .. }), "{err}");
    assert!(vm.pause().is_err(), "pausing a stopped guest succeeded");
    assert!(vm.stop().is_err(), "stop hides the guest's exit");
}

#[test]
fn a_guest_that_faults_is_an_error() {
    if !kvm_available("guest-faults") {
        return;
    }
    let guest = GuestConfig { fault_after_ms: 1, report_ms: 10, ..Default::default() };
    let vm = Vm::boot(GUEST_ELF, &guest, vm_config(1)).expect("boots");
    let err = vm.wait_for("a line that never comes", BOOT_WAIT, |_| None::<()>).expect_err("the guest faulted");
    assert!(matches!(err, VmError::GuestStopped { stop: GuestStop::Shutdown, .. }), "{err}");
}

#[test]
fn a_guest_that_reports_an_error_is_an_error() {
    if !kvm_available("guest-error") {
        return;
    }
    let guest = GuestConfig { region_mb: 1 << 20, ..Default::default() };
    let vm = Vm::boot(GUEST_ELF, &guest, vm_config(1)).expect("boots");
    let err = vm.wait_for("a line that never comes", BOOT_WAIT, |_| None::<()>).expect_err("region too large");
    assert!(matches!(&err, VmError::GuestError(e) if e.contains("region")), "{err}");
}

/// A serial hook that blocks the vCPU thread (outside KVM_RUN) until the test lets it go.
/// Returns the hook, a receiver told when the hook blocks, and a sender whose drop releases it.
fn blocking_hook() -> (wpsnap_vmm::SerialHook, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(Some(entered_tx));
    let release_rx = Mutex::new(release_rx);
    let hook: wpsnap_vmm::SerialHook = Arc::new(move |line: &GuestLine| {
        if !matches!(line, GuestLine::Stat(_)) {
            return;
        }
        // Block once, on the first stats line.
        if let Some(tx) = entered_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
            if let Ok(rx) = release_rx.lock() {
                let _ = rx.recv();
            }
        }
    });
    (hook, entered_rx, release_tx)
}

#[test]
fn a_vcpu_that_does_not_stop_fails_the_pause_and_the_snapshot() {
    if !kvm_available("vcpu-stuck") {
        return;
    }
    let dir = scratch("vcpu-stuck");
    let (hook, entered, release) = blocking_hook();
    // The tests' long pause bound: the stuck pauses below wait it out, and the pause after the
    // release must not fail because a loaded host was slow to schedule the vCPU thread.
    let config = VmConfig { serial_hook: Some(hook), ..vm_config(1) };
    let guest = GuestConfig { report_ms: 50, ..Default::default() };
    let vm = Vm::boot(GUEST_ELF, &guest, config).expect("boots");
    entered.recv_timeout(BOOT_WAIT).expect("the vCPU reaches the blocking hook");

    let err = vm.pause().expect_err("a stuck vCPU parked");
    assert!(matches!(&err, VmError::VcpuDidNotStop { vcpus, .. } if vcpus == "0"), "{err}");

    let path = dir.join("stuck.wps");
    let output = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("output");
    let err = start_live_snapshot(&vm, output, SnapshotConfig::default(), |_| {}).expect_err("snapshot of a stuck VM");
    assert!(matches!(err, VmSnapshotError::Vm(VmError::VcpuDidNotStop { .. })), "{err}");
    assert!(!path.exists(), "a failed snapshot left a file under its final name");

    // Released, the vCPU parks and resumes normally.
    drop(release);
    let paused = vm.pause().expect("the released vCPU parks");
    assert_eq!(paused.states().len(), 1);
    drop(paused);
    vm.stop().expect("stops");
    let _ = std::fs::remove_dir_all(dir);
}

/// A valid snapshot file of `pages` zero pages, with a given report.
fn write_snapshot(path: &std::path::Path, pages: u64, report: &str) {
    let header = Header::single(4096, pages, "anonymous", 0, "{}".into());
    let file = std::fs::File::create(path).expect("creating a snapshot file");
    let mut writer = SnapshotWriter::new(std::io::BufWriter::new(file), &header).expect("header");
    let zero = vec![0u8; 4096];
    for page in 0..pages {
        writer.write_page(page, &zero).expect("page");
    }
    writer.finish(report).expect("trailer");
}

#[test]
fn a_snapshot_that_does_not_match_the_vm_is_refused() {
    let dir = scratch("mismatch");
    let small = dir.join("small.wps");
    write_snapshot(&small, 16, "{}");
    let err = restore(&small, vm_config(1)).expect_err("a 64 KiB image restored into 64 MiB");
    assert!(matches!(err, VmSnapshotError::RegionMismatch { .. }), "{err}");

    if kvm_available("mismatch") {
        let stateless = dir.join("stateless.wps");
        write_snapshot(&stateless, MEMORY_BYTES / 4096, "{\"engine\":{}}");
        let err = restore(&stateless, vm_config(1)).expect_err("a snapshot without VM state restored");
        assert!(matches!(err, VmSnapshotError::NoVmState(_)), "{err}");
        let future = dir.join("future.wps");
        write_snapshot(&future, MEMORY_BYTES / 4096, "{\"vm_state\":{\"version\":99}}");
        let err = restore(&future, vm_config(1)).expect_err("a future VM state restored");
        assert!(matches!(&err, VmSnapshotError::NoVmState(e) if e.contains("99")), "{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_snapshot_with_another_vcpu_count_is_refused() {
    if !kvm_available("vcpu-count") {
        return;
    }
    let dir = scratch("vcpu-count");
    let path = dir.join("one.wps");
    let vm = boot_writing(&GuestConfig { report_ms: 100, ..Default::default() }, 1);
    let output = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("output");
    start_live_snapshot(&vm, output, SnapshotConfig::default(), |_| {}).and_then(|s| s.finish()).expect("snapshot");
    vm.stop().expect("stops");
    let err = restore(&path, vm_config(2)).expect_err("one vCPU's state restored into two");
    assert!(matches!(err, VmSnapshotError::NoVmState(_)), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
