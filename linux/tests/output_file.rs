//! File output: commit publishes NAME, abort leaves only NAME.partial; the slow-device
//! emulation passes bytes through and labels its report; the failing helper fails on cue.

use std::io::Write;
use std::path::Path;
use wpsnap_format::{Header, SnapshotWriter};
use wpsnap_linux::output::{
    FailingOutput, Output, OutputError, OutputSpec, SlowDevice, SlowDeviceProfile, StallLength, StallSource,
    open_output,
};

const PAGE_SIZE: u64 = 4096;
const PAGE_COUNT: u64 = 16;

fn header() -> Header {
    Header::single(PAGE_SIZE, PAGE_COUNT, "test", 1, "{}".into())
}

fn region() -> Vec<u8> {
    (0..PAGE_SIZE * PAGE_COUNT).map(|i| (i / PAGE_SIZE * 7 + i % 251) as u8).collect()
}

fn write_snapshot(out: Box<dyn Output>, region: &[u8]) -> Box<dyn Output> {
    let mut w = SnapshotWriter::new(out, &header()).expect("header");
    // Backwards, to show order does not matter to the output.
    for i in (0..PAGE_COUNT).rev() {
        let at = (i * PAGE_SIZE) as usize;
        w.write_page(i, &region[at..at + PAGE_SIZE as usize]).expect("page");
    }
    w.finish("{}").expect("trailer")
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-output-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn loaded(path: &Path) -> Vec<u8> {
    let mut back = vec![0_u8; (PAGE_SIZE * PAGE_COUNT) as usize];
    wpsnap_format::load_into(path, &mut back).expect("load");
    back
}

#[test]
fn committed_file_holds_the_snapshot_under_its_final_name() {
    let dir = scratch_dir("commit");
    let path = dir.join("snap.wps");
    let region = region();
    let out = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("open");
    let summary = write_snapshot(out, &region).commit().expect("commit");
    assert_eq!(summary.kind, "file");
    assert!(summary.confirmed);
    assert_eq!(summary.bytes, std::fs::metadata(&path).expect("final file").len());
    assert!(!dir.join("snap.wps.partial").exists());
    assert_eq!(loaded(&path), region);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aborted_file_leaves_only_the_partial() {
    let dir = scratch_dir("abort");
    let path = dir.join("snap.wps");
    let mut out = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("open");
    out.write_all(b"half a snapshot").expect("write");
    out.abort();
    assert!(!path.exists(), "no file under the final name after abort");
    assert!(dir.join("snap.wps.partial").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_in_a_missing_folder_is_a_clear_error() {
    let spec = OutputSpec::File { path: "/nonexistent-wpsnap-dir/x.wps".into(), direct_io: false };
    match open_output(&spec) {
        Err(e @ (OutputError::Create { .. } | OutputError::Target(_))) => {
            assert!(e.to_string().contains("/nonexistent-wpsnap-dir"), "{e}")
        }
        Err(other) => panic!("expected a Create error, got {other}"),
        Ok(_) => panic!("opening in a missing folder succeeded"),
    }
}

#[test]
fn slow_device_over_a_file_commits_and_labels_the_emulation() {
    let dir = scratch_dir("slow");
    let path = dir.join("snap.wps");
    let region = region();
    let profile = SlowDeviceProfile {
        name: "test-slow".into(),
        // 64 KiB + header at 10 MB/s is about 7 ms: short, but enough to be charged.
        bandwidth_bytes_per_sec: 10_000_000,
        stalls: vec![StallSource {
            what: "test".into(),
            every_bytes_mean: 16 * 1024,
            length: StallLength::Pareto { scale_us: 100, shape: 2.0 },
            us_max: 2_000,
        }],
        seed: 3,
    };
    let file = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("open");
    let slow: Box<dyn Output> = Box::new(SlowDevice::new(file, profile));
    let summary = write_snapshot(slow, &region).commit().expect("commit");
    let emulation = summary.slow_device_emulation.expect("emulation report attached");
    assert!(emulation.emulation);
    assert_eq!(emulation.bytes, summary.bytes);
    assert!(emulation.sleep_ns_total >= 6_000_000, "bandwidth cap was applied: {}", emulation.sleep_ns_total);
    assert_eq!(loaded(&path), region);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_output_stops_a_snapshot_midway() {
    let out = FailingOutput::new(10_000, std::io::ErrorKind::StorageFull, "no space left (test)");
    let probe = out.probe();
    let mut w = SnapshotWriter::new(Box::new(out) as Box<dyn Output>, &header()).expect("header fits");
    let region = region();
    let failed_at = (0..PAGE_COUNT).find(|&i| {
        let at = (i * PAGE_SIZE) as usize;
        w.write_page(i, &region[at..at + PAGE_SIZE as usize]).is_err()
    });
    assert_eq!(failed_at, Some(2), "header + two pages exceed 10000 bytes");
    assert!(probe.failed());
    assert_eq!(probe.bytes(), 10_000);
}
