//! The real-backend harness shared by the model tests: live snapshots of a region written by
//! version-stamping writers, checked against a reference copy taken at the snapshot instant.
#![allow(dead_code)]

use proptest::prelude::*;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams, LimitScanRateParams};
use wpsnap_core::{LatencyRecorder, Nanos, PolicyConfig, ServiceModel};
use wpsnap_linux::region::{Backing, OwnedMapping, PageFill, Region};
use wpsnap_linux::snapshot::{
    DelayedSink, MemoryImage, MemorySink, PageSink, Progress, Running, SinkError, Snapshot, SnapshotConfig,
    SnapshotReport, ThreadPriority,
};
use wpsnap_linux::uffd::WpUffd;
use wpsnap_linux::writers::{WriterConfig, WriterSet, WritersOutcome, expected_stamp_ok};
use wpsnap_workload::Pattern;

/// Longest the harness waits for writers to fault every page while the sink is held, and the
/// longest a held sink waits to be let go. Normally milliseconds; the bound only turns a
/// broken property (faults waiting for the sink) into a failure instead of a hang.
const HOLD_WAIT_MAX: Duration = Duration::from_secs(30);

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

/// Qemu model: `limit-scan-rate` with every fault counted as slow and a 10 s poll. After the
/// first fault the scan takes a page only when no fault has come for 10 s, while every fault
/// is served at once, so writers fault on nearly every page whatever the load.
pub fn scan_held_after_first_fault() -> PolicyConfig {
    PolicyConfig::LimitScanRate(LimitScanRateParams {
        slow_fault_ns: 1,
        poll_timeout_ns: 10_000_000_000,
        throttle_pages: 1 << 20,
    })
}

/// What the harness does besides the [`Case`]: the sink's behaviour and the scan batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Sleep this long before writing each page: a disk that slow.
    pub stall_per_page: Option<Duration>,
    /// Hold the sink's first write until this many pages are saved (decoupled model only):
    /// they are all saved while the sink has written nothing. Writes are timed only until
    /// then (see [`Run::while_held`]).
    pub hold_sink_until_saved: Option<u64>,
    /// Pages per scan capture (default: the session's).
    pub scan_batch_pages: Option<u64>,
    /// The decoupled model's memory budget in pages (default: the session's rule).
    pub budget_pages: Option<u64>,
    /// The snapshot threads' scheduling (default: the session's).
    pub thread_priority: Option<ThreadPriority>,
    /// Classify the timed writes exactly (`WriterConfig::classify_faults`): the fault
    /// candidates land in `Run::writers.protected_write_latency`.
    pub classify_faults: bool,
}

/// A gate the test opens once; a held sink waits for it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }

    /// Waits until open, at most [`HOLD_WAIT_MAX`].
    fn wait(&self) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let _open = self.opened.wait_timeout_while(open, HOLD_WAIT_MAX, |open| !*open);
    }
}

/// Opens the gate when dropped, so a failing test never leaves the sink thread held.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A sink whose first write waits for the gate.
struct HeldSink {
    inner: Box<dyn PageSink>,
    gate: Arc<Gate>,
    let_go: bool,
}

impl PageSink for HeldSink {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        if !self.let_go {
            self.gate.wait();
            self.let_go = true;
        }
        self.inner.write_page(index, data)
    }
    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        self.inner.finish(report_json)
    }
    fn abort(self: Box<Self>) {
        self.inner.abort()
    }
}

/// Waits until `pages` pages are saved while the sink is held, calls `before_release`, then
/// lets the sink go and returns the progress then. Panics (after letting it go) if that takes
/// longer than [`HOLD_WAIT_MAX`].
fn release_when_saved(running: &Running, gate: Arc<Gate>, pages: u64, before_release: impl FnOnce()) -> Progress {
    let _open = OpenOnDrop(gate);
    let deadline = Instant::now() + HOLD_WAIT_MAX;
    loop {
        let progress = running.progress();
        if progress.pages_saved >= pages {
            before_release();
            return progress;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of the {pages} pages saved after {HOLD_WAIT_MAX:?} while the sink was held: \
             faults waited for the sink",
            progress.pages_saved,
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The `q` quantile of the `n` slowest samples of `all` (all of them if `n` is not smaller):
/// the quantile q of the slowest n of m samples is the quantile 1 - (n / m)(1 - q) of all m.
/// Writers record every write over 1 us, which includes slow writes that did not fault
/// (interrupts, preemption); the faulting writes are the slowest, as many as the engine read.
/// An estimate: under load preempted stores outrank real fault waits; [`RunOptions::classify_faults`]
/// gives the exact ones.
pub fn quantile_of_slowest(all: &LatencyRecorder, n: u64, q: f64) -> Nanos {
    let m = all.count();
    let share = if n == 0 || n >= m { 1.0 } else { n as f64 / m as f64 };
    all.quantile(1.0 - share * (1.0 - q))
}

pub struct Run {
    pub report: SnapshotReport,
    /// Writes are timed while the snapshot runs, or only while the sink was held if it was.
    pub writers: WritersOutcome,
    /// Progress when a held sink was let go.
    pub while_held: Option<Progress>,
}

/// Snapshots a live region and checks the image against the reference copy taken at the
/// instant, and live memory against every writer's last write.
pub fn snapshot_and_check(c: &Case, sink_stall: Option<Duration>) -> Run {
    snapshot_and_check_with(c, RunOptions { stall_per_page: sink_stall, ..RunOptions::default() })
}

/// [`snapshot_and_check`] with more options (see [`RunOptions`]).
pub fn snapshot_and_check_with(c: &Case, options: RunOptions) -> Run {
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
            classify_faults: options.classify_faults,
        },
    )
    .expect("writers");
    std::thread::sleep(Duration::from_millis(5));
    let defaults = SnapshotConfig::default();
    let config = SnapshotConfig {
        service_model: c.model,
        policy: c.policy.clone(),
        scan_batch_pages: options.scan_batch_pages.or(defaults.scan_batch_pages),
        budget_bytes: options.budget_pages.map(|pages| pages * page_size).or(defaults.budget_bytes),
        thread_priority: options.thread_priority.unwrap_or(defaults.thread_priority),
        ..defaults
    };
    let (memory, image) = MemorySink::new(page_size, c.pages);
    let mut sink: Box<dyn PageSink> = match options.stall_per_page {
        Some(stall) => Box::new(DelayedSink { inner: memory, delay_per_page: stall }),
        None => Box::new(memory),
    };
    let gate = options.hold_sink_until_saved.map(|_| Arc::new(Gate::default()));
    if let Some(gate) = &gate {
        // The qemu model writes each page inside its capture: a held sink would hold the faults.
        assert_eq!(c.model, ServiceModel::Decoupled, "only the decoupled model can save pages while its sink is held");
        sink = Box::new(HeldSink { inner: sink, gate: gate.clone(), let_go: false });
    }
    let prepared = Snapshot::prepare(region, config, sink).expect("prepare");
    let mut reference = Vec::new();
    let running = prepared
        .arm(|| {
            let pause = writers.pause();
            reference = copy_region(&region);
            // Time from the first write after the instant: on a loaded machine the faults
            // right after it may all come before this thread gets to set the reporter.
            writers.set_recording(true);
            pause
        })
        .expect("arm");
    writers.set_reporter(Some(running.fault_wait_reporter()));
    for &page in &c.kernel_writes {
        kernel_write(&region, page);
    }
    let while_held = gate.zip(options.hold_sink_until_saved).map(|(gate, pages)| {
        // Time only the writes that end while the sink is held: recording stops before the
        // sink writes anything, so a fault that waited for the sink (once the budget is full)
        // ends after it and is not recorded.
        release_when_saved(&running, gate, pages, || writers.set_reporter(None))
    });
    let report = running.finish().expect("snapshot completes");
    writers.set_reporter(None);
    let outcome = writers.stop().expect("writers stop");
    let image = image.lock().expect("image");
    check_image_and_live_memory(c, &region, &image, &reference, &outcome);
    drop(image);
    Run { report, writers: outcome, while_held }
}

/// The image is the instant's reference copy, page for page; live memory holds the kernel's
/// bytes and every writer's last write.
fn check_image_and_live_memory(
    c: &Case,
    region: &Region,
    image: &MemoryImage,
    reference: &[u8],
    outcome: &WritersOutcome,
) {
    let ps = region.page_size() as usize;
    assert!(image.finished, "the sink was not finished");
    for page in 0..c.pages as usize {
        assert_eq!(image.writes[page], 1, "page {page} saved {} times", image.writes[page]);
        let range = page * ps..(page + 1) * ps;
        assert!(image.data[range.clone()] == reference[range], "page {page}: image is not the snapshot instant");
    }
    let live = copy_region(region);
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
}
