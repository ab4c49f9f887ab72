//! Policies that work without writer cooperation: with no writer reporting its waits and a
//! sink that stalls, `latency-target` slows the scan on what the driver measures itself (a
//! queued fault's age, event-read-to-unprotect), and the report says that measure drove it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wpsnap_core::PolicyConfig;
use wpsnap_core::policy::{LatencyMeasure, LatencyTargetParams};
use wpsnap_linux::region::{Backing, OwnedMapping, PageFill};
use wpsnap_linux::snapshot::{MemorySink, NoWriters, PageSink, SinkError, Snapshot, SnapshotConfig};
use wpsnap_linux::uffd::uffd_or_skip;

/// Pages of the region.
const PAGES: usize = 256;
/// The staging budget: the scan stages at most this many pages before the stalled sink.
const BUDGET_PAGES: u64 = 16;
/// Writer threads, each writing one page the scan cannot have reached: more than the budget,
/// so some faults must wait in the queue while the sink is stalled.
const WRITERS: usize = 24;
/// Bound on every wait of the test (a failure, never a verdict).
const WAIT_MAX: Duration = Duration::from_secs(30);

type Gate = Arc<(Mutex<bool>, Condvar)>;

/// A memory sink that does not return from a write until the gate opens.
struct GatedSink {
    inner: MemorySink,
    gate: Gate,
}

impl PageSink for GatedSink {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        let (open, cv) = &*self.gate;
        let mut open = open.lock().map_err(|_| SinkError::custom("gate poisoned"))?;
        let deadline = Instant::now() + WAIT_MAX;
        while !*open {
            if Instant::now() > deadline {
                return Err(SinkError::custom("the gate never opened"));
            }
            open = cv.wait_timeout(open, Duration::from_millis(10)).map_err(|_| SinkError::custom("gate poisoned"))?.0;
        }
        drop(open);
        self.inner.write_page(index, data)
    }
    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        Box::new(self.inner).finish(report_json)
    }
    fn abort(self: Box<Self>) {}
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_MAX;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {WAIT_MAX:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn latency_target_slows_the_scan_on_driver_measures_when_no_writer_reports() {
    if !uffd_or_skip("latency_target_slows_the_scan_on_driver_measures_when_no_writer_reports") {
        return;
    }
    let mut mapping = OwnedMapping::new(PAGES * 4096, Backing::Anonymous).expect("mapping");
    mapping.fill(0, |_| PageFill::Pattern);
    let region = mapping.region();
    let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
    let (memory, image) = MemorySink::new(4096, PAGES as u64);
    let sink = GatedSink { inner: memory, gate: gate.clone() };
    // latency-target with its 1 ms target (the qemu model's default), a small budget, and no
    // reporter.
    let config = SnapshotConfig {
        policy: PolicyConfig::LatencyTarget(LatencyTargetParams::default()),
        budget_bytes: Some(BUDGET_PAGES * 4096),
        ..SnapshotConfig::default()
    };
    let mut reference = Vec::new();
    let running = Snapshot::prepare(region, config, Box::new(sink))
        .expect("prepare")
        .arm_observed(|| NoWriters, |r| reference = r.copy_all())
        .expect("arm");
    let base = region.page_addr(0);
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            // Pages from the middle on: the scan stops at the budget, far before them.
            let page = PAGES / 2 + w;
            scope.spawn(move || {
                // SAFETY: a page of the test's own mapping; the store waits for its page to be
                // saved, which is the point.
                unsafe { std::ptr::write_volatile((base + page * 4096) as *mut u8, 0xEE) };
            });
        }
        wait_until("a fault queued behind the stalled sink", || running.progress().faults_queued > 0);
        wait_until("the policy slowing the scan", || running.progress().policy_slowdowns > 0);
        let (open, cv) = &*gate;
        *open.lock().expect("gate") = true;
        cv.notify_all();
    });
    let report = running.finish().expect("snapshot");
    assert_eq!(report.engine.fault_wait.count, 0, "no writer reported a wait");
    assert_eq!(report.engine.latency_measure, Some(LatencyMeasure::DriverMeasured));
    assert!(report.engine.policy_slowdowns > 0);
    let image = image.lock().expect("image");
    assert!(image.data == reference, "the image is the region at the instant");
}
