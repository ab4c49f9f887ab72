//! `wpsnap-sim sweep --shard I/N` then `merge` gives byte for byte what the unsharded sweep
//! prints and writes; merge refuses an incomplete set of shards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small grid: 2 seeds x 2 models x 2 disks x 2 policies = 16 cells of 4 MiB.
const GRID: &[&str] = &[
    "sweep",
    "--seeds",
    "2",
    "--region-mib",
    "4",
    "--policies",
    "none,latency-target",
    "--models",
    "qemu,decoupled",
    "--disks",
    "tmpfs,nvme",
];

fn sim(args: &[&str], extra: &[&Path]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wpsnap-sim")).args(args).args(extra).output().expect("run wpsnap-sim");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-sim-shards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn merged_shards_equal_the_unsharded_sweep_byte_for_byte() {
    let dir = temp_dir("merge");
    let whole_jsonl = dir.join("whole.jsonl");
    let whole = sim(&[GRID, &["--threads", "2", "--out"]].concat(), &[&whole_jsonl]);

    // 3 shards (16 cells do not divide evenly), run on one thread each, merged in another order.
    let shard_files: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("shard-{i}.json"))).collect();
    for (i, file) in shard_files.iter().enumerate() {
        let spec = format!("{}/3", i + 1);
        sim(&[GRID, &["--threads", "1", "--shard", &spec, "--out"]].concat(), &[file]);
    }
    let merged_jsonl = dir.join("merged.jsonl");
    let order = [&shard_files[2], &shard_files[0], &shard_files[1]];
    let merged = sim(&["merge", "--out", merged_jsonl.to_str().unwrap_or_default()], &order.map(|p| p.as_path()));

    let whole_lines = std::fs::read(&whole_jsonl).expect("whole");
    assert_eq!(String::from_utf8_lossy(&whole_lines).lines().count(), 16);
    assert!(whole_lines == std::fs::read(&merged_jsonl).expect("merged"), "JSON lines differ");
    assert!(whole.stdout == merged.stdout, "printed tables differ");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merge_refuses_a_missing_shard() {
    let dir = temp_dir("missing");
    let file = dir.join("shard-1.json");
    sim(&[GRID, &["--shard", "1/2", "--out"]].concat(), &[&file]);
    let out = Command::new(env!("CARGO_BIN_EXE_wpsnap-sim")).arg("merge").arg(&file).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("shard 2/2 is missing"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
