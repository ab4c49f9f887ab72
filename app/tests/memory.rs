//! Issue 11, finding 4: `run` does not copy the region to check live memory (peak RSS at
//! most region + staging + 5 %), and refuses up front a region that its memory cgroup cannot
//! hold instead of being OOM-killed after the work.

mod common;

use common::{is_root, null_device, scratch, wpsnap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use wpsnap_linux::uffd::uffd_or_skip;

const REGION_MIB: u64 = 512;
const STAGING_MIB: u64 = 16;

/// Peak RSS of a finished child, in KiB, from wait4's rusage.
fn wait_peak_rss_kib(child: std::process::Child) -> (i32, u64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; both out pointers are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4");
    std::mem::forget(child); // Reaped above.
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64)
}

#[test]
fn peak_memory_is_region_plus_staging_plus_five_percent() {
    if !uffd_or_skip("peak_memory_is_region_plus_staging_plus_five_percent") {
        return;
    }
    let dir = scratch("rss");
    // A /dev/null-like node as the output: no disk traffic, and the live-memory check runs.
    let Some(node) = null_device(&dir, "peak_memory_is_region_plus_staging_plus_five_percent") else {
        return;
    };
    let child = wpsnap()
        .args(["run", "--size", &format!("{REGION_MIB}M"), "--staging", &format!("{STAGING_MIB}M")])
        .args(["--writers", "2", "--warmup-ms", "0", "--policy", "none", "--json", "--out"])
        .arg(&node)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let (code, peak_kib) = wait_peak_rss_kib(child);
    assert_eq!(code, 0, "run failed");
    let limit_kib = (REGION_MIB + STAGING_MIB) * 1024 + REGION_MIB * 1024 * 5 / 100;
    eprintln!(
        "peak RSS {peak_kib} KiB for a {REGION_MIB} MiB region + {STAGING_MIB} MiB staging (limit {limit_kib} KiB)"
    );
    assert!(peak_kib <= limit_kib, "peak RSS {peak_kib} KiB exceeds region + staging + 5 % = {limit_kib} KiB");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A memory cgroup of `limit` bytes under our own (v1 or v2), or `None` with the reason.
fn memory_cgroup(limit: u64) -> Option<(PathBuf, &'static str)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let (mount, path, limit_file) = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            Some(("/sys/fs/cgroup/memory", path.to_string(), "memory.limit_in_bytes"))
        } else if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            Some(("/sys/fs/cgroup", path.to_string(), "memory.max"))
        } else {
            None
        }
    })?;
    let dir = Path::new(mount).join(path.trim_start_matches('/')).join(format!("wpsnap-test-{}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    if std::fs::write(dir.join(limit_file), limit.to_string()).is_err() {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    Some((dir, "cgroup.procs"))
}

#[test]
fn a_region_the_cgroup_cannot_hold_is_refused_up_front() {
    if !uffd_or_skip("a_region_the_cgroup_cannot_hold_is_refused_up_front") {
        return;
    }
    if !is_root() {
        eprintln!("SKIPPED a_region_the_cgroup_cannot_hold_is_refused_up_front: needs root to make a memory cgroup");
        return;
    }
    let Some((cgroup, procs)) = memory_cgroup(96 << 20) else {
        eprintln!("SKIPPED a_region_the_cgroup_cannot_hold_is_refused_up_front: cannot make a memory cgroup here");
        return;
    };
    let dir = scratch("cgroup");
    let script = format!(
        "echo $$ > {procs} && exec {bin} run --size 128M --writers 1 --warmup-ms 0 --out {out}",
        procs = cgroup.join(procs).display(),
        bin = env!("CARGO_BIN_EXE_wpsnap"),
        out = dir.join("s.wps").display()
    );
    let out = std::process::Command::new("sh").args(["-c", &script]).output().expect("sh");
    let _ = std::fs::remove_dir(&cgroup);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected a refusal (exit 1), got {:?}: {stderr}", out.status);
    assert!(stderr.contains("memory cgroup's limit"), "{stderr}");
    assert!(!dir.join("s.wps.partial").exists(), "work started before the refusal");
    let _ = std::fs::remove_dir_all(&dir);
}
