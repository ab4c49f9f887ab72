//! Failures during a snapshot (issue 5): in each case the snapshot returns an error naming what
//! happened, writers are never left blocked, and a file output is left only as NAME.partial.

mod common;

use common::{fill, uffd_or_skip};
use std::ffi::c_void;
use std::sync::mpsc;
use std::time::Duration;
use wpsnap_core::{PolicyConfig, ServiceModel, policy::BandwidthParams};
use wpsnap_linux::output::{FailingOutput, OutputSpec, open_output};
use wpsnap_linux::region::{Backing, OwnedMapping};
use wpsnap_linux::snapshot::{DelayedSink, FormatSink, MemorySink, Snapshot, SnapshotConfig, SnapshotError};
use wpsnap_linux::writers::{WriterConfig, WriterSet};
use wpsnap_workload::Pattern;

/// Writers must stop (join) within this bound once the snapshot has failed.
const WRITERS_STOP_BOUND: Duration = Duration::from_secs(20);

fn slow_scan_config(model: ServiceModel) -> SnapshotConfig {
    SnapshotConfig {
        service_model: model,
        // 16 MiB/s: a 16 MiB region takes about a second, so the failure lands mid-snapshot.
        policy: PolicyConfig::Bandwidth(BandwidthParams::new(16 << 20)),
        ..SnapshotConfig::default()
    }
}

/// A mapping that lives for the rest of the test process, so its writers can be stopped on a
/// helper thread (see `assert_writers_unblocked`); the test binary's exit reclaims it.
/// It is filled first (`common::fill` with `untouched_every`).
fn leaked(len: usize, backing: Backing, untouched_every: u64) -> &'static OwnedMapping {
    let mut mapping = OwnedMapping::new(len, backing).expect("mapping");
    fill(&mut mapping, untouched_every);
    Box::leak(Box::new(mapping))
}

/// A snapshot that cannot complete within the test, however late its next step runs: the
/// stream is held to one page per one-second bandwidth slice (the scan's pages; in the qemu
/// model the faults' too) and the writers of [`start_hot_set_writers`] touch under a third of
/// the pages, so the rest (over 2800 pages of a 16 MiB region) need an hour.
fn unfinishable_config(model: ServiceModel) -> SnapshotConfig {
    SnapshotConfig {
        service_model: model,
        policy: PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 4096, slice_ns: 1_000_000_000 }),
        ..SnapshotConfig::default()
    }
}

fn start_writers(mapping: &'static OwnedMapping) -> WriterSet<'static> {
    start_writers_with(mapping, Pattern::Uniform)
}

/// Writers that only ever write a tenth of the pages (and their owners' neighbours: at most
/// 3 x 10%), so the other pages wait for the scan.
fn start_hot_set_writers(mapping: &'static OwnedMapping) -> WriterSet<'static> {
    start_writers_with(mapping, Pattern::HotSet { hot_write_percent: 100, hot_page_percent: 10 })
}

fn start_writers_with(mapping: &'static OwnedMapping, pattern: Pattern) -> WriterSet<'static> {
    WriterSet::start(
        mapping.region(),
        &WriterConfig { threads: 3, pattern, writes_per_sec: Some(20_000.0), seed: 3, classify_faults: false },
    )
    .expect("writers")
}

/// Stops the writers in a helper thread and fails if that takes longer than the bound (a
/// writer left blocked on a protected page would never return).
fn assert_writers_unblocked(writers: WriterSet<'static>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(writers.stop().map(|o| o.writes));
    });
    match rx.recv_timeout(WRITERS_STOP_BOUND) {
        Ok(Ok(writes)) => assert!(writes > 0),
        Ok(Err(e)) => panic!("writers failed: {e}"),
        Err(_) => panic!("writers still blocked {WRITERS_STOP_BOUND:?} after the snapshot failed"),
    }
}

#[test]
fn sink_failing_after_some_bytes_aborts_and_releases_writers() {
    if !uffd_or_skip("sink_failing_after_some_bytes_aborts_and_releases_writers") {
        return;
    }
    for model in [ServiceModel::Decoupled, ServiceModel::Qemu] {
        let mapping = leaked(16 << 20, Backing::Anonymous, 5);
        let region = mapping.region();
        let writers = start_writers(mapping);
        let failing = FailingOutput::new(2 << 20, std::io::ErrorKind::StorageFull, "no space left on device");
        let probe = failing.probe();
        let (sink, _) = FormatSink::new(Box::new(failing), &region, "{}".into()).expect("sink");
        let running = Snapshot::prepare(region, slow_scan_config(model), Box::new(sink))
            .expect("prepare")
            .arm(|| writers.pause())
            .expect("arm");
        writers.set_reporter(Some(running.fault_wait_reporter()));
        let result = running.finish();
        writers.set_reporter(None);
        match result {
            Err(SnapshotError::Sink(e)) => assert!(e.to_string().contains("no space"), "{e}"),
            other => panic!("{model:?}: expected a sink error, got {other:?}"),
        }
        assert!(probe.failed() && !probe.committed(), "{model:?}: output committed after failing");
        assert!(probe.aborted(), "{model:?}: output not aborted");
        assert_writers_unblocked(writers);
    }
}

#[test]
fn cancel_leaves_only_a_partial_file_and_releases_writers() {
    if !uffd_or_skip("cancel_leaves_only_a_partial_file_and_releases_writers") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("wpsnap-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("snap.wps");
    let mapping = leaked(16 << 20, Backing::Memfd, 5);
    let region = mapping.region();
    let writers = start_hot_set_writers(mapping);
    let output = open_output(&OutputSpec::File { path: path.clone(), direct_io: false }).expect("output");
    let (sink, _) = FormatSink::new(output, &region, "{}".into()).expect("sink");
    let running = Snapshot::prepare(region, unfinishable_config(ServiceModel::Decoupled), Box::new(sink))
        .expect("prepare")
        .arm(|| writers.pause())
        .expect("arm");
    // Let writers fault for a while (so some are blocked or served when the cancel comes); the
    // snapshot cannot finish meanwhile, whatever this sleep turns out to be.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!running.is_done());
    let error = running.cancel("test cancel");
    assert!(matches!(error, SnapshotError::Cancelled(ref r) if r == "test cancel"), "{error}");
    assert!(!path.exists(), "a cancelled snapshot left a file under the final name");
    let partial = dir.join("snap.wps.partial");
    assert!(partial.exists(), "no .partial file left");
    assert!(wpsnap_format::verify_file(&partial, None).is_err(), "verify accepted an incomplete file");
    assert_writers_unblocked(writers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a snapshot of a 16 MiB region that cannot complete (see [`unfinishable_config`]),
/// applies `change` to its last 4 pages (which the scan, from page 0 at one page per second,
/// cannot reach for an hour), and checks that the snapshot aborts with `RegionChanged` naming
/// one of `expected` (or the kernel refusing an unprotect while the change's event was
/// pending). With `with_writers`, writers run on a hot set and must be released.
/// `change` returns ranges to unmap once the snapshot is over (see `mremap_mid_snapshot_aborts`).
fn region_change_aborts(
    test: &str,
    with_writers: bool,
    expected: &[&str],
    change: impl FnOnce(*mut c_void, usize) -> Vec<(*mut c_void, usize)>,
) {
    if !uffd_or_skip(test) {
        return;
    }
    let mapping = leaked(16 << 20, Backing::Anonymous, 0);
    let region = mapping.region();
    let writers = with_writers.then(|| start_hot_set_writers(mapping));
    let (sink, _) = MemorySink::new(region.page_size(), region.page_count());
    let running = Snapshot::prepare(region, unfinishable_config(ServiceModel::Decoupled), Box::new(sink))
        .expect("prepare")
        .arm(|| writers.as_ref().map(WriterSet::pause))
        .expect("arm");
    // Let the snapshot run a little first; it cannot finish meanwhile.
    std::thread::sleep(Duration::from_millis(50));
    let unmap_afterwards = change(region.page_addr(region.page_count() - 4) as *mut c_void, 4 * 4096);
    let result = running.finish();
    for (addr, len) in unmap_afterwards {
        // SAFETY: ranges the change mapped for this test; nothing refers to them.
        let _ = unsafe { rustix::mm::munmap(addr, len) };
    }
    match result {
        Err(SnapshotError::RegionChanged(what)) => {
            assert!(expected.iter().chain([&"address space changed"]).any(|e| what.contains(e)), "{test}: {what}")
        }
        other => panic!("{test}: expected RegionChanged, got {other:?}"),
    }
    if let Some(writers) = writers {
        assert_writers_unblocked(writers);
    }
}

/// MADV_DONTNEED on the region mid-snapshot discards pages the image may not have yet: the
/// snapshot must abort rather than save zeros as the point-in-time state.
#[test]
fn madvise_dontneed_mid_snapshot_aborts() {
    region_change_aborts("madvise_dontneed_mid_snapshot_aborts", true, &["discarded"], |addr, len| {
        // SAFETY: the range is inside the test's own mapping; discarding it is the point.
        unsafe { rustix::mm::madvise(addr, len, rustix::mm::Advice::LinuxDontNeed) }.expect("madvise");
        Vec::new()
    });
}

/// munmap of part of the region mid-snapshot aborts it too. (No writers: they would touch the
/// hole.)
#[test]
fn munmap_mid_snapshot_aborts() {
    region_change_aborts("munmap_mid_snapshot_aborts", false, &["unmapped"], |addr, len| {
        // SAFETY: inside the test's own mapping; OwnedMapping's final munmap of the whole range
        // tolerates the hole.
        unsafe { rustix::mm::munmap(addr, len) }.expect("munmap");
        Vec::new()
    });
}

/// mremap moving part of the region elsewhere mid-snapshot aborts it: the moved pages are no
/// longer where the snapshot reads them.
#[test]
fn mremap_mid_snapshot_aborts() {
    region_change_aborts("mremap_mid_snapshot_aborts", false, &["mremap", "unmapped"], |addr, len| {
        use rustix::mm::{MapFlags, MremapFlags, ProtFlags};
        // SAFETY: a fresh anonymous reservation of our own, the target of the move.
        let target =
            unsafe { rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, ProtFlags::empty(), MapFlags::PRIVATE) }
                .expect("reserve a target");
        // SAFETY: both ranges are this test's own mappings with no references into them;
        // OwnedMapping's final munmap tolerates the hole the move leaves.
        let moved = unsafe { rustix::mm::mremap_fixed(addr, len, len, MremapFlags::MAYMOVE, target) }.expect("mremap");
        // The moved pages stay registered with the snapshot's userfaultfd. Unmapping them now
        // would wait for that fd's reader, which a snapshot that has already failed no longer
        // runs (a hang whenever the failure won the race): unmap them after `finish`.
        vec![(moved, len)]
    });
}

#[test]
fn full_staging_applies_back_pressure_without_dropping_pages() {
    if !uffd_or_skip("full_staging_applies_back_pressure_without_dropping_pages") {
        return;
    }
    let mapping = leaked(2 << 20, Backing::Anonymous, 3);
    let region = mapping.region();
    let writers = start_writers(mapping);
    let (inner, image) = MemorySink::new(region.page_size(), region.page_count());
    // A sink that stalls: the staging buffer fills, writers wait (back-pressure), nothing is
    // dropped, and the image is complete.
    let sink = DelayedSink { inner, delay_per_page: Duration::from_micros(200) };
    let config = SnapshotConfig {
        service_model: ServiceModel::Decoupled,
        policy: PolicyConfig::None,
        budget_bytes: Some(8 * 4096),
        scan_batch_pages: Some(2),
        ..SnapshotConfig::default()
    };
    let mut reference = Vec::new();
    let running = Snapshot::prepare(region, config, Box::new(sink))
        .expect("prepare")
        .arm_observed(|| writers.pause(), |r| reference = r.copy_all())
        .expect("arm");
    writers.set_reporter(Some(running.fault_wait_reporter()));
    let report = running.finish().expect("snapshot");
    writers.set_reporter(None);
    assert!(report.engine.stats.staging_peak_pages <= 8);
    let image = image.lock().expect("image");
    assert!(image.writes.iter().all(|&w| w == 1), "a page was dropped or saved twice");
    assert!(image.data == reference, "image differs from the reference");
    drop(image);
    assert_writers_unblocked(writers);
}

/// Dropping a running session without finish or cancel releases the writers too.
#[test]
fn dropping_a_running_session_releases_writers() {
    if !uffd_or_skip("dropping_a_running_session_releases_writers") {
        return;
    }
    let mapping = leaked(16 << 20, Backing::Thp, 5);
    let region = mapping.region();
    let writers = start_hot_set_writers(mapping);
    let (sink, image) = MemorySink::new(region.page_size(), region.page_count());
    let running = Snapshot::prepare(region, unfinishable_config(ServiceModel::Qemu), Box::new(sink))
        .expect("prepare")
        .arm(|| writers.pause())
        .expect("arm");
    writers.set_reporter(Some(running.fault_wait_reporter()));
    // Let writers fault for a while; the snapshot cannot finish meanwhile.
    std::thread::sleep(Duration::from_millis(100));
    drop(running);
    writers.set_reporter(None);
    assert!(!image.lock().expect("image").finished, "a dropped session finished its sink");
    assert_writers_unblocked(writers);
}
