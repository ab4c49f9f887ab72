//! Many regions, one instant: a session over two regions (anonymous and memfd) protects both
//! in the same pause, and the image equals both regions as they were at that instant, while
//! writers keep writing both.

use wpsnap_core::{PolicyConfig, policy::BandwidthParams};
use wpsnap_linux::region::{Backing, OwnedMapping, PageFill, Regions};
use wpsnap_linux::snapshot::{Snapshot, SnapshotConfig};
use wpsnap_linux::uffd::uffd_or_skip;
use wpsnap_linux::writers::{WriterConfig, WriterSet};
use wpsnap_workload::Pattern;

fn filled(bytes: usize, backing: Backing) -> OwnedMapping {
    let mut mapping = OwnedMapping::new(bytes, backing).expect("mapping");
    mapping.fill(8, |page| if page % 5 == 4 { PageFill::Untouched } else { PageFill::Pattern });
    mapping
}

fn writers(mapping: &OwnedMapping, seed: u64) -> WriterSet<'_> {
    let config = WriterConfig {
        threads: 2,
        pattern: Pattern::Uniform,
        writes_per_sec: Some(20_000.0),
        seed,
        classify_faults: false,
    };
    WriterSet::start(mapping.region(), &config).expect("writers")
}

#[test]
fn a_two_region_session_equals_both_regions_at_one_instant() {
    if !uffd_or_skip("a_two_region_session_equals_both_regions_at_one_instant") {
        return;
    }
    let first = filled(4 << 20, Backing::Anonymous);
    let second = filled(2 << 20, Backing::Memfd);
    let (writers_first, writers_second) = (writers(&first, 1), writers(&second, 2));
    let regions = Regions::new(vec![first.region(), second.region()]).expect("regions");
    let config = SnapshotConfig {
        // Slow enough that writers meet protected pages in both regions.
        policy: PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 32 << 20, slice_ns: 10_000_000 }),
        ..SnapshotConfig::default()
    };
    let (prepared, slot) =
        Snapshot::builder_regions(regions).config(config).prepare_writer(Vec::new()).expect("prepare");
    let mut reference = Vec::new();
    // Both writer sets paused by one guard: one instant for both regions.
    let running = prepared
        .arm_observed(|| (writers_first.pause(), writers_second.pause()), |r| reference = r.copy_all())
        .expect("arm");
    let report = running.finish().expect("snapshot");
    let (outcome_first, outcome_second) =
        (writers_first.stop().expect("writers"), writers_second.stop().expect("writers"));
    assert!(outcome_first.writes > 0 && outcome_second.writes > 0);
    assert_eq!(report.regions.len(), 2);
    assert_eq!(report.region_bytes, 6 << 20);
    let bytes = slot.lock().expect("slot").take().expect("writer returned");
    let mut reader = wpsnap_format::read_snapshot(&bytes[..]).expect("header");
    let table = reader.header().regions.clone();
    assert_eq!((table[0].start, table[1].start), (first.as_ptr() as u64, second.as_ptr() as u64));
    assert_eq!((table[0].backing.as_str(), table[1].backing.as_str()), ("anonymous", "memfd"));
    let mut pages = 0u64;
    while let Some(page) = reader.next_page().expect("page") {
        let at = page.location.image_offset as usize;
        let expected = &reference[at..at + page.location.page_size as usize];
        match page.data {
            Some(data) => assert!(
                data == expected,
                "page {} (region {}) differs from the instant",
                page.index,
                page.location.region
            ),
            None => assert!(expected.iter().all(|&b| b == 0), "page {} should not be all zero", page.index),
        }
        pages += 1;
    }
    assert_eq!(pages, (6 << 20) / 4096);
}

#[test]
fn regions_of_different_page_sizes_or_overlapping_are_refused() {
    let a = OwnedMapping::new(1 << 20, Backing::Anonymous).expect("mapping");
    let overlap = Regions::new(vec![a.region(), a.region()]);
    assert!(matches!(overlap, Err(wpsnap_linux::region::RegionError::Overlap { .. })));
}
