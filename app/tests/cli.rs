//! The `wpsnap` command end to end: a small `run` with its image check, `verify`/`inspect`/
//! `restore` on its output, interruption by SIGINT, and clap errors for bad arguments.

use wpsnap_linux::uffd::uffd_or_skip;

use std::process::{Command, Stdio};
use std::time::Duration;

fn wpsnap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wpsnap"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn run_checks_its_image_and_the_file_commands_read_it() {
    if !uffd_or_skip("run_checks_its_image_and_the_file_commands_read_it") {
        return;
    }
    let dir = temp_dir("run");
    let snap = dir.join("s.wps");
    let report = dir.join("r.json");
    let out = wpsnap()
        .args(["run", "--size", "8M", "--writers", "2", "--warmup-ms", "20", "--check", "--json"])
        .args(["--policy", "bandwidth", "--scan-bandwidth", "64M", "--classify-faults"])
        .arg("--out")
        .arg(&snap)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run wpsnap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "run failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(json["image_matches_reference"], serde_json::Value::Bool(true));
    assert_eq!(json["live_memory_ok"], serde_json::Value::Bool(true));
    assert_eq!(
        json["snapshot"]["engine"]["stats"]["pages_by_scan"].as_u64().unwrap_or(0)
            + json["snapshot"]["engine"]["stats"]["pages_by_fault"].as_u64().unwrap_or(0),
        2048
    );
    assert!(report.exists());
    // --classify-faults: the exact figures are there, and no more writes met a protected page
    // than were timed.
    let exact =
        json["writer_fault_wait_exact"]["count"].as_u64().expect("writer_fault_wait_exact with --classify-faults");
    assert!(exact <= json["writer_write_latency"]["count"].as_u64().unwrap_or(0), "{exact} exact fault waits");

    let verify = wpsnap().arg("verify").arg(&snap).output().expect("verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let inspect = wpsnap().arg("inspect").arg(&snap).output().expect("inspect");
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let raw = dir.join("s.raw");
    let restore = wpsnap().arg("restore").arg(&snap).arg("--raw").arg(&raw).output().expect("restore");
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    assert_eq!(std::fs::metadata(&raw).map(|m| m.len()).unwrap_or(0), 8 << 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigint_mid_snapshot_exits_non_zero_and_leaves_only_partial() {
    if !uffd_or_skip("sigint_mid_snapshot_exits_non_zero_and_leaves_only_partial") {
        return;
    }
    let dir = temp_dir("sigint");
    let snap = dir.join("s.wps");
    // A run that cannot finish by itself: the scan is held to one page (4 KiB) per second and
    // the writers only touch a hot tenth of the pages, so the other ~14000 pages of 64 MiB
    // would take hours. Whenever the SIGINT lands, before or after the arm, it interrupts.
    let child = wpsnap()
        .args(["run", "--size", "64M", "--writers", "2", "--warmup-ms", "0", "--pattern", "hot-set:100/10"])
        .args(["--policy", "bandwidth", "--scan-bandwidth", "4K"])
        .arg("--out")
        .arg(&snap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wpsnap");
    let partial = dir.join("s.wps.partial");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !partial.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Most likely after the arm by then; the verdict does not depend on it.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "interrupted run exited 0");
    assert!(stderr.contains("SIGINT"), "error does not name the signal: {stderr}");
    assert!(!snap.exists(), "file under the final name after an interrupt");
    assert!(partial.exists(), ".partial missing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_clap_errors_not_panics() {
    for args in [
        vec!["run", "--size", "lots"],
        vec!["run", "--backing", "floppy"],
        vec!["run", "--pattern", "zipf:-1"],
        vec!["run", "--policy-json", "{not json}", "--size", "1M"],
        vec!["frobnicate"],
    ] {
        let out = wpsnap().args(&args).output().expect("run wpsnap");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.to_lowercase().contains("error"), "{args:?}: no error message: {stderr}");
    }
}
