//! Issue 5: the disk fills up mid-snapshot. A 4 MiB tmpfs receives a 16 MiB snapshot: the run
//! must fail with an error that says so, exit non-zero, release its writers (the process ends),
//! leave nothing under the final name, and name the `.partial` it left with its size.

use wpsnap_linux::uffd::uffd_or_skip;

use std::path::Path;
use std::process::Command;

/// Mounts a tmpfs of `size` at `dir`; `false` (with the reason printed) where mounting is not
/// permitted here.
fn mount_small_tmpfs(dir: &Path, size: &str) -> bool {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("SKIPPED full_disk: cannot create {}: {e}", dir.display());
        return false;
    }
    let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status();
    match status {
        Ok(s) if s.success() => true,
        other => {
            eprintln!("SKIPPED full_disk: cannot mount a tmpfs at {} ({other:?}); needs root", dir.display());
            false
        }
    }
}

#[test]
fn a_full_file_system_fails_the_snapshot_loudly_and_keeps_the_final_name_free() {
    if !uffd_or_skip("a_full_file_system_fails_the_snapshot_loudly_and_keeps_the_final_name_free") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("wpsnap-full-{}", std::process::id()));
    if !mount_small_tmpfs(&dir, "4m") {
        return;
    }
    let snap = dir.join("s.wps");
    let out = Command::new(env!("CARGO_BIN_EXE_wpsnap"))
        .args(["run", "--size", "16M", "--writers", "2", "--warmup-ms", "10"])
        .arg("--out")
        .arg(&snap)
        .output()
        .expect("run wpsnap");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let final_exists = snap.exists();
    let _ = Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir(&dir);

    assert!(!out.status.success(), "a snapshot larger than the file system succeeded");
    assert!(stderr.to_lowercase().contains("no space left"), "the error should say the disk is full, got: {stderr}");
    assert!(!final_exists, "an incomplete snapshot was left under its final name");
    // Issue 11, finding 6: the .partial that keeps the disk full is named, with its size.
    assert!(stderr.contains("s.wps.partial was left behind (") && stderr.contains(" MiB)"), "{stderr}");
}
