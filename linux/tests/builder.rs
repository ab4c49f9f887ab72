//! One call for the common case: `Snapshot::builder(region).policy(..).to_writer / to_file`.

use std::path::Path;
use std::sync::Mutex;
use wpsnap_core::{PolicyConfig, policy::BandwidthParams};
use wpsnap_linux::region::{Backing, OwnedMapping};
use wpsnap_linux::snapshot::{Snapshot, SnapshotConfig};
use wpsnap_linux::uffd::uffd_or_skip;

fn filled(bytes: usize) -> OwnedMapping {
    let mapping = OwnedMapping::new(bytes, Backing::Anonymous).expect("mapping");
    let region = mapping.region();
    for page in 0..region.page_count() {
        // SAFETY: the test owns the mapping; nothing else uses it yet.
        unsafe { std::ptr::write_bytes(region.page_addr(page) as *mut u8, (page % 200) as u8 + 1, 64) };
    }
    mapping
}

#[test]
fn to_writer_gives_back_a_verified_stream_with_the_typed_config() {
    if !uffd_or_skip("to_writer_gives_back_a_verified_stream_with_the_typed_config") {
        return;
    }
    let mapping = filled(2 << 20);
    let writers = Mutex::new(());
    let policy = PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 256 << 20, slice_ns: 10_000_000 });
    let (report, bytes) = Snapshot::builder(mapping.region())
        .policy(policy.clone())
        .to_writer(Vec::new(), || writers.lock())
        .expect("snapshot");
    assert_eq!(report.region_bytes, 2 << 20);
    let mut reader = wpsnap_format::read_snapshot(&bytes[..]).expect("header");
    let stored: SnapshotConfig =
        serde_json::from_str(&reader.header().config_json).expect("the stored config is typed JSON");
    assert_eq!(stored.policy, policy);
    assert_eq!(reader.header().regions[0].start, mapping.as_ptr() as u64);
    let mut pages = 0;
    while let Some(page) = reader.next_page().expect("page") {
        let expected = (page.index % 200) as u8 + 1;
        assert_eq!(page.data.map(|d| d[0]), Some(expected), "page {}", page.index);
        pages += 1;
    }
    assert_eq!(pages, 512);
}

#[test]
fn to_file_publishes_the_file_only_when_complete() {
    if !uffd_or_skip("to_file_publishes_the_file_only_when_complete") {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wpsnap-builder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("b.wps");
    let mapping = filled(1 << 20);
    let writers = Mutex::new(());
    Snapshot::builder(mapping.region()).to_file(&path, || writers.lock()).expect("snapshot");
    assert!(!dir.join("b.wps.partial").exists());
    let verified = wpsnap_format::verify_file(&path, None).expect("complete and verified");
    assert_eq!(verified.summary.region_len, 1 << 20);
    let _ = std::fs::remove_dir_all(&dir);
}
