//! Issue 11, finding 3: without permission to use userfaultfd, the error names the causes
//! and the fixes, and every fix it prints works. Runs the binary as user `nobody` with
//! setpriv; toggles `vm.unprivileged_userfaultfd` (restored afterwards, also on failure) and
//! bind-mounts a node made with mknod over /dev/userfaultfd inside a private mount namespace
//! only (the real /dev is never touched). One test, so the sysctl changes never overlap.
//! Needs root, setpriv and unshare; otherwise it says why it skipped.

mod common;

use common::{is_root, scratch};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SYSCTL: &str = "/proc/sys/vm/unprivileged_userfaultfd";
const NOBODY: &str = "65534";

/// Restores the sysctl to what it was when dropped.
struct SysctlGuard(String);

impl SysctlGuard {
    fn set(&self, value: &str) {
        std::fs::write(SYSCTL, value).expect("write the sysctl");
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// A world-readable copy of the binary and a world-writable work folder for `nobody`.
fn nobody_setup() -> (PathBuf, PathBuf) {
    let dir = scratch("noperm");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let bin = dir.join("wpsnap");
    std::fs::copy(env!("CARGO_BIN_EXE_wpsnap"), &bin).expect("copy binary");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, bin)
}

/// `wpsnap ARGS` as nobody, with extra setpriv options; (success, stdout, stderr).
fn as_nobody(bin: &Path, dir: &Path, setpriv_extra: &[&str], args: &[&str]) -> (bool, String, String) {
    let out = Command::new("setpriv")
        .args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups"])
        .args(setpriv_extra)
        .arg(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run setpriv");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

const RUN: [&str; 9] = ["run", "--size", "1M", "--writers", "1", "--warmup-ms", "0", "--out", "s.wps"];

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_permission_error_names_fixes_that_each_work() {
    if !is_root() || !have("setpriv") || !have("unshare") {
        eprintln!("SKIPPED the_permission_error_names_fixes_that_each_work: needs root, setpriv and unshare");
        return;
    }
    let Ok(original) = std::fs::read_to_string(SYSCTL) else {
        eprintln!("SKIPPED the_permission_error_names_fixes_that_each_work: no {SYSCTL} (no userfaultfd?)");
        return;
    };
    let device_mode = std::fs::metadata("/dev/userfaultfd").map(|m| m.permissions().mode() & 0o777).ok();
    if device_mode.is_some_and(|m| m & 0o006 != 0) {
        eprintln!("SKIPPED the_permission_error_names_fixes_that_each_work: /dev/userfaultfd is open to everyone");
        return;
    }
    let sysctl = SysctlGuard(original);
    let (dir, bin) = nobody_setup();

    // Not permitted: every fix is named; demo says which command works without userfaultfd.
    sysctl.set("0");
    let (ok, _, stderr) = as_nobody(&bin, &dir, &[], &RUN);
    assert!(!ok, "run as nobody succeeded without permission");
    for fix in ["CAP_SYS_PTRACE", "/dev/userfaultfd", "vm.unprivileged_userfaultfd=1", "--backend fork"] {
        assert!(stderr.contains(fix), "the error lacks {fix:?}: {stderr}");
    }
    assert_eq!(stderr.matches("fixes:").count(), 1, "the fixes are printed more than once: {stderr}");
    let (ok, _, stderr) = as_nobody(&bin, &dir, &[], &["demo", "--dir", "demo"]);
    assert!(!ok && stderr.contains("--backend fork"), "demo: {stderr}");

    // Fix: --backend fork.
    let (ok, _, stderr) = as_nobody(&bin, &dir, &[], &[&RUN[..], &["--backend", "fork"]].concat());
    assert!(ok, "--backend fork as nobody: {stderr}");

    // Fix: CAP_SYS_PTRACE (the system call then allows kernel-mode faults).
    let caps = ["--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace"];
    let (ok, stdout, stderr) = as_nobody(&bin, &dir, &caps, &RUN);
    assert!(ok, "with CAP_SYS_PTRACE: {stderr}");
    assert!(stdout.contains("opened via the userfaultfd(2) system call"), "{stdout}");

    // Fix: vm.unprivileged_userfaultfd=1, with /dev/userfaultfd still refused (mode 600).
    sysctl.set("1");
    let (ok, stdout, stderr) = as_nobody(&bin, &dir, &[], &RUN);
    sysctl.set("0");
    assert!(ok, "with vm.unprivileged_userfaultfd=1: {stderr}");
    assert!(stdout.contains("opened via the userfaultfd(2) system call"), "{stdout}");

    // Fix: read/write access to /dev/userfaultfd, given in a private mount namespace to a
    // node of the same device owned by nobody.
    device_access_fix(&bin, &dir);
    drop(sysctl);
    let _ = std::fs::remove_dir_all(&dir);
}

fn device_access_fix(bin: &Path, dir: &Path) {
    let Some(dev) = std::fs::metadata("/dev/userfaultfd").ok().map(|m| std::os::unix::fs::MetadataExt::rdev(&m)) else {
        eprintln!("SKIPPED the device-access fix: this kernel has no /dev/userfaultfd");
        return;
    };
    let node = dir.join("userfaultfd-node");
    let mode = rustix::fs::Mode::from(0o600);
    rustix::fs::mknodat(rustix::fs::CWD, &node, rustix::fs::FileType::CharacterDevice, mode, dev).expect("mknod");
    let nobody = rustix::process::Uid::from_raw(65534);
    rustix::fs::chown(&node, Some(nobody), None).expect("chown");
    let script = format!(
        "mount --bind {node} /dev/userfaultfd && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {bin} {run}",
        node = node.display(),
        bin = bin.display(),
        run = RUN.join(" ")
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(dir)
        .output()
        .expect("unshare");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if stderr.contains("mount:") || stderr.contains("unshare:") {
        eprintln!("SKIPPED the device-access fix: a private mount namespace is not available here: {stderr}");
        return;
    }
    assert!(out.status.success(), "with read/write access to the device: {stderr}");
    assert!(stdout.contains("opened via /dev/userfaultfd"), "{stdout}");
}
