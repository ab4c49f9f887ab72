//! The key-value store saves itself in the background while its writers run, then a second
//! process maps the image back at its address and checks the store's invariants and that it
//! equals the state at the snapshot instant.

use std::path::{Path, PathBuf};
use std::process::Command;
use wpsnap_linux::uffd::uffd_or_skip;

/// Saves (wpsnap or fork) and restores this many times in the main test.
const ROUNDS: usize = 20;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wpsnap-kvstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wpsnap-kvstore")).args(args).output().expect("run wpsnap-kvstore");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn save_and_restore(dir: &Path, backend: &str, round: usize) {
    let snap = dir.join(format!("{backend}-{round}.wps"));
    let expected = dir.join(format!("{backend}-{round}.json"));
    let (saved, text) = run(&[
        "save",
        "--backend",
        backend,
        "--out",
        snap.to_str().expect("utf-8"),
        "--expected",
        expected.to_str().expect("utf-8"),
    ]);
    assert!(saved, "{backend} round {round}: save failed:\n{text}");
    let report: serde_json::Value = serde_json::from_str(text.trim()).expect("save prints one JSON line");
    assert!(report["writes_during_snapshot"].as_u64().unwrap_or(0) >= 2000, "{text}");
    let (restored, text) = run(&["restore", snap.to_str().expect("utf-8"), expected.to_str().expect("utf-8")]);
    assert!(restored, "{backend} round {round}: restore check failed:\n{text}");
    assert!(text.contains("restore check: ok"), "{text}");
    let _ = std::fs::remove_file(&snap);
    let _ = std::fs::remove_file(&expected);
}

#[test]
fn wpsnap_bgsave_restores_to_the_instant_every_time() {
    if !uffd_or_skip("wpsnap_bgsave_restores_to_the_instant_every_time") {
        return;
    }
    let dir = scratch("wpsnap");
    for round in 0..ROUNDS {
        save_and_restore(&dir, "wpsnap", round);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fork_bgsave_restores_to_the_instant() {
    let dir = scratch("fork");
    for round in 0..3 {
        save_and_restore(&dir, "fork", round);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_restore_check_refuses_any_other_state() {
    if !uffd_or_skip("the_restore_check_refuses_any_other_state") {
        return;
    }
    let dir = scratch("refuse");
    let snap = dir.join("s.wps");
    let expected = dir.join("s.json");
    let (saved, text) = run(&[
        "save",
        "--backend",
        "wpsnap",
        "--out",
        snap.to_str().expect("utf-8"),
        "--expected",
        expected.to_str().expect("utf-8"),
    ]);
    assert!(saved, "{text}");
    // One value off by one: the state at the instant is not this one.
    let mut pairs: Vec<(u64, i64)> =
        serde_json::from_slice(&std::fs::read(&expected).expect("expected")).expect("json");
    pairs[7].1 += 1;
    std::fs::write(&expected, serde_json::to_vec(&pairs).expect("json")).expect("write");
    let (restored, text) = run(&["restore", snap.to_str().expect("utf-8"), expected.to_str().expect("utf-8")]);
    assert!(!restored && text.contains("differs from the state at the snapshot instant"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
