//! The C example (`capi/examples/snapshot.c`) compiled with the system's `cc` against the
//! header and the cdylib, and run: it snapshots its own memory while a thread writes it, and
//! the snapshot must equal the region at the instant (the reference it saved in its pause).

use std::path::{Path, PathBuf};
use std::process::Command;
use wpsnap_linux::uffd::uffd_or_skip;

/// The directory cargo put this crate's cdylib in (this test binary lives in its `deps/`).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        if dir.join("libwpsnap_capi.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!("libwpsnap_capi.so not found next to {}", exe.display());
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wpsnap-capi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn the_c_example_builds_runs_and_its_snapshot_equals_the_instant() {
    if !uffd_or_skip("the_c_example_builds_runs_and_its_snapshot_equals_the_instant") {
        return;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir();
    let dir = scratch("example");
    let exe = dir.join("snapshot");
    let compiled = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"])
        .arg(crate_dir.join("examples/snapshot.c"))
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lwpsnap_capi", "-lpthread", "-o"])
        .arg(&exe)
        .output()
        .expect("running cc (scripts/setup.sh installs a C compiler)");
    assert!(compiled.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&compiled.stderr));
    let snap = dir.join("c.wps");
    let reference = dir.join("c.raw");
    let run = Command::new(&exe).arg(&snap).arg(&reference).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "the C example failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("refused as expected: WPSNAP_ERR_REGION: region start"), "{stdout}");
    assert!(!dir.join("c.wps.partial").exists(), "the partial file was renamed");
    let verified =
        wpsnap_format::verify_file(&snap, Some(&reference)).expect("the snapshot equals the reference image");
    assert_eq!(verified.summary.region_len, 8 << 20);
    let _ = std::fs::remove_dir_all(&dir);
}
