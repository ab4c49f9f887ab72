//! Shared helpers of the live-snapshot integration tests.
#![allow(dead_code)]

use std::time::Duration;
use wpsnap_core::{PolicyConfig, ServiceModel, policy::BandwidthParams};
use wpsnap_linux::region::{Backing, OwnedMapping, PageFill, Region};
use wpsnap_linux::snapshot::{DelayedSink, MemorySink, Snapshot, SnapshotConfig, SnapshotReport};
use wpsnap_linux::writers::{WriterConfig, WriterSet, WritersOutcome, expected_stamp_ok};
use wpsnap_workload::Pattern;

pub use wpsnap_linux::uffd::uffd_or_skip;

/// Fills pages with a recognisable pattern (after the 8 bytes writers stamp), leaving every
/// `untouched_every`-th page never touched (so it is unpopulated when the snapshot starts).
pub fn fill(mapping: &mut OwnedMapping, untouched_every: u64) {
    mapping.fill(8, |page| {
        if untouched_every != 0 && page % untouched_every == untouched_every - 1 {
            PageFill::Untouched
        } else {
            PageFill::Pattern
        }
    });
}

/// Copies the whole region (with writers paused).
pub fn copy_region(region: &Region) -> Vec<u8> {
    let mut out = vec![0u8; region.len()];
    region.copy_pages(0, region.page_count(), &mut out);
    out
}

pub struct Scenario {
    pub backing: Backing,
    pub bytes: usize,
    pub model: ServiceModel,
    pub writers: u32,
    pub writes_per_sec: f64,
    /// Scan bandwidth of the policy (paces the qemu model's scan; the decoupled model's scan
    /// is bounded by the sink and the budget below).
    pub scan_bytes_per_sec: u64,
    /// The sink's speed (a sleep per page) and the decoupled model's budget, a quarter of the
    /// region: together they bound what the scan can have saved by time t (the budget plus
    /// what the sink wrote), so for the first part of a second most pages, the last quarter
    /// among them, can only be saved by a writer's fault, however fast the scan and however
    /// loaded the machine. (Bandwidth alone did not bound the decoupled scan: it charges bytes
    /// when the sink writes them, and with a 2 MiB scan batch a THP region's scan finished
    /// before the writers ran in 1 of 5 runs under two CPU hogs.)
    pub sink_bytes_per_sec: u64,
    pub force_touch: bool,
}

impl Scenario {
    pub fn new(backing: Backing, model: ServiceModel) -> Scenario {
        Scenario {
            backing,
            bytes: 16 << 20,
            model,
            writers: 3,
            writes_per_sec: 20_000.0,
            // 2048 pages/s: a 16 MiB region's scan alone takes 2 s; the writers, which fault
            // on every page they reach first, usually finish it within a second.
            scan_bytes_per_sec: 8 << 20,
            // A 16 MiB region takes about 0.8 s to write.
            sink_bytes_per_sec: 20 << 20,
            force_touch: false,
        }
    }
}

pub struct Outcome {
    pub report: SnapshotReport,
    pub writers: WritersOutcome,
    pub mapping: OwnedMapping,
}

/// Runs writers, snapshots the region while they write, and checks that the image equals
/// the reference copy taken while writers were paused and that live memory holds every
/// writer's last write. `during` runs while the snapshot is running and returns the pages it
/// wrote itself (left out of the live-memory check).
pub fn run_and_check(s: &Scenario, during: impl FnOnce(&Region) -> Vec<u64>) -> Outcome {
    let mut mapping = OwnedMapping::new(s.bytes, s.backing).expect("mapping");
    fill(&mut mapping, 7);
    let region = mapping.region();
    let writers = WriterSet::start(
        region,
        &WriterConfig {
            threads: s.writers,
            pattern: Pattern::Uniform,
            writes_per_sec: Some(s.writes_per_sec),
            seed: 7,
            classify_faults: false,
        },
    )
    .expect("writers");
    std::thread::sleep(Duration::from_millis(20));
    let config = SnapshotConfig {
        service_model: s.model,
        policy: PolicyConfig::Bandwidth(BandwidthParams::new(s.scan_bytes_per_sec)),
        force_touch: s.force_touch,
        budget_bytes: Some((s.bytes as u64 / 4).max(region.page_size())),
        ..SnapshotConfig::default()
    };
    let (memory, image) = MemorySink::new(region.page_size(), region.page_count());
    let delay_per_page = Duration::from_nanos(region.page_size() * 1_000_000_000 / s.sink_bytes_per_sec.max(1));
    let sink = DelayedSink { inner: memory, delay_per_page };
    let prepared = Snapshot::prepare(region, config, Box::new(sink)).expect("prepare");
    let mut reference = Vec::new();
    let running = prepared
        .arm(|| {
            let pause = writers.pause();
            reference = copy_region(&region);
            pause
        })
        .expect("arm");
    writers.set_reporter(Some(running.fault_wait_reporter()));
    let written_by_during = during(&region);
    let report = running.finish().expect("snapshot");
    writers.set_reporter(None);
    std::thread::sleep(Duration::from_millis(10));
    let outcome = writers.stop().expect("writers stop");

    let image = image.lock().expect("image");
    assert!(image.finished);
    let page_size = region.page_size() as usize;
    for page in 0..region.page_count() as usize {
        assert_eq!(image.writes[page], 1, "page {page} saved {} times", image.writes[page]);
        let range = page * page_size..(page + 1) * page_size;
        assert!(image.data[range.clone()] == reference[range], "page {page}: image differs from the reference copy");
    }
    let live = copy_region(&region);
    for (page, &stamp) in outcome.last_seq.iter().enumerate() {
        if stamp != 0 && !written_by_during.contains(&(page as u64)) {
            assert!(expected_stamp_ok(&live[page * page_size..], stamp), "page {page}: live memory lost a write");
        }
    }
    assert_eq!(report.engine.stats.pages_saved(), region.page_count());
    assert!(outcome.writes > 0);
    drop(image);
    Outcome { report, writers: outcome, mapping }
}
