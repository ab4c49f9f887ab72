//! The real-backend harness shared by the model tests: live snapshots of a region written by
//! version-stamping writers, checked against a reference copy taken at the snapshot instant.
#![allow(dead_code)]

use proptest::prelude::*;
use std::time::Duration;
use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_linux::region::{Backing, OwnedMapping, PageFill, Region};
use wpsnap_linux::snapshot::{DelayedSink, MemorySink, PageSink, Snapshot, SnapshotConfig, SnapshotReport};
use wpsnap_linux::uffd::WpUffd;
use wpsnap_linux::writers::{WriterConfig, WriterSet, WritersOutcome, expected_stamp_ok};
use wpsnap_workload::Pattern;

/// Real-backend cases per run: each is a live snapshot of up to a few MiB (tenths of a second).
pub fn real_cases() -> u32 {
    std::env::var("WPSNAP_REAL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

pub fn uffd_available(test: &str) -> bool {
    match WpUffd::open() {
        Ok(_) => true,
        Err(e) if std::env::var("WPSNAP_REQUIRE_UFFD").is_ok_and(|v| v == "1") => {
            panic!("{test}: userfaultfd required (WPSNAP_REQUIRE_UFFD=1) but unavailable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: userfaultfd unavailable: {e}");
            false
        }
    }
}

#[derive(Clone, Debug)]
pub struct Case {
    pub backing: Backing,
    pub pages: u64,
    /// Every n-th page is never touched before the snapshot (0: all touched).
    pub untouched_every: u64,
    pub writers: u32,
    /// Writes per second per writer.
    pub writes_per_sec: f64,
    pub pattern: Pattern,
    pub model: ServiceModel,
    pub policy: PolicyConfig,
    /// Pages written by the kernel with read(2) from a pipe during the snapshot.
    pub kernel_writes: Vec<u64>,
}

pub fn case() -> impl Strategy<Value = Case> {
    let backing = prop_oneof![Just(Backing::Anonymous), Just(Backing::Thp), Just(Backing::Memfd)];
    let pattern = prop_oneof![
        Just(Pattern::Uniform),
        Just(Pattern::Zipf { theta: 0.99 }),
        Just(Pattern::HotSet { hot_write_percent: 90, hot_page_percent: 10 }),
        Just(Pattern::Sequential),
    ];
    let model = prop_oneof![Just(ServiceModel::Decoupled), Just(ServiceModel::Qemu)];
    let policy = prop_oneof![
        // Slow enough that writers meet protected pages.
        (4u64..=32).prop_map(|mib| PolicyConfig::Bandwidth(BandwidthParams::new(mib << 20))),
        Just(PolicyConfig::seed()),
        Just(PolicyConfig::LatencyTarget(LatencyTargetParams::default())),
        Just(PolicyConfig::None),
    ];
    // Sizes that are not a multiple of a 2 MiB huge page are included on purpose.
    (backing, 64u64..=1500, prop_oneof![Just(0u64), Just(3), Just(7), Just(50)], 1u32..=4, pattern, model, policy)
        .prop_flat_map(|(backing, pages, untouched_every, writers, pattern, model, policy)| {
            proptest::collection::vec(0..pages, 0..=3).prop_map(move |kernel_writes| Case {
                backing,
                pages,
                untouched_every,
                writers,
                writes_per_sec: 5_000.0,
                pattern: pattern.clone(),
                model,
                policy: policy.clone(),
                kernel_writes,
            })
        })
}

/// Every `untouched_every`-th page never touched, the others filled whole.
fn fill(mapping: &mut OwnedMapping, untouched_every: u64) {
    mapping.fill(0, |page| {
        if untouched_every != 0 && page % untouched_every == untouched_every - 1 {
            PageFill::Untouched
        } else {
            PageFill::Pattern
        }
    });
}

fn copy_region(region: &Region) -> Vec<u8> {
    let mut out = vec![0u8; region.len()];
    region.copy_pages(0, region.page_count(), &mut out);
    out
}

/// Has the kernel write one page of the region: read(2) from a pipe into it.
fn kernel_write(region: &Region, page: u64) {
    let (rx, tx) = rustix::pipe::pipe().expect("pipe");
    let page_size = region.page_size() as usize;
    let bytes = vec![0xA5u8; page_size];
    let mut sent = 0;
    let mut received = 0;
    while received < page_size {
        if sent < page_size {
            sent += rustix::io::write(&tx, &bytes[sent..(sent + 4096).min(page_size)]).expect("pipe write");
        }
        // SAFETY: the destination is inside the live mapping; the kernel's write to a
        // write-protected page faults and waits for the snapshot to save it (not EFAULT).
        let dest = unsafe {
            std::slice::from_raw_parts_mut((region.page_addr(page) as *mut u8).add(received), page_size - received)
        };
        received += rustix::io::read(&rx, dest).expect("read(2) into a protected page must not fail");
    }
}

pub struct Run {
    pub report: SnapshotReport,
    pub writers: WritersOutcome,
}

/// Snapshots a live region and checks the image against the reference copy taken at the
/// instant, and live memory against every writer's last write.
pub fn snapshot_and_check(c: &Case, sink_stall: Option<Duration>) -> Run {
    let page_size = c.backing.page_size();
    let mut mapping = OwnedMapping::new((c.pages * page_size) as usize, c.backing).expect("mapping");
    fill(&mut mapping, c.untouched_every);
    let region = mapping.region();
    let writers = WriterSet::start(
        region,
        &WriterConfig {
            threads: c.writers,
            pattern: c.pattern.clone(),
            writes_per_sec: Some(c.writes_per_sec),
            seed: 11,
        },
    )
    .expect("writers");
    std::thread::sleep(Duration::from_millis(5));
    let config = SnapshotConfig { service_model: c.model, policy: c.policy.clone(), ..SnapshotConfig::default() };
    let (memory, image) = MemorySink::new(page_size, c.pages);
    let sink: Box<dyn PageSink> = match sink_stall {
        Some(stall) => Box::new(DelayedSink { inner: memory, delay_per_page: stall }),
        None => Box::new(memory),
    };
    let prepared = Snapshot::prepare(region, config, sink).expect("prepare");
    let mut reference = Vec::new();
    let running = prepared
        .arm(|| {
            let pause = writers.pause();
            reference = copy_region(&region);
            pause
        })
        .expect("arm");
    writers.set_reporter(Some(running.fault_wait_reporter()));
    for &page in &c.kernel_writes {
        kernel_write(&region, page);
    }
    let report = running.finish().expect("snapshot completes");
    writers.set_reporter(None);
    let outcome = writers.stop().expect("writers stop");

    let image = image.lock().expect("image");
    assert!(image.finished, "the sink was not finished");
    let ps = page_size as usize;
    for page in 0..c.pages as usize {
        assert_eq!(image.writes[page], 1, "page {page} saved {} times", image.writes[page]);
        let range = page * ps..(page + 1) * ps;
        assert!(image.data[range.clone()] == reference[range], "page {page}: image is not the snapshot instant");
    }
    let live = copy_region(&region);
    for &page in &c.kernel_writes {
        // Writers may have stamped words of this page after the kernel wrote it; every other
        // word must hold the kernel's bytes, none the page's old content.
        let p = page as usize;
        for word in live[p * ps..(p + 1) * ps].chunks_exact(8) {
            let value = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
            let writer = value >> 48;
            assert!(
                value == u64::from_ne_bytes([0xA5; 8]) || (1..=c.writers as u64).contains(&writer),
                "page {page}: kernel write lost (found {value:#x})"
            );
        }
    }
    for (page, &stamp) in outcome.last_seq.iter().enumerate() {
        if stamp != 0 && !c.kernel_writes.contains(&(page as u64)) {
            assert!(expected_stamp_ok(&live[page * ps..], stamp), "page {page}: a writer's write was lost");
        }
    }
    Run { report, writers: outcome }
}
