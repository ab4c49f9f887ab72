//! Synthetic writer threads: they write version-stamped pages of a region at a chosen rate and
//! pattern (`wpsnap-workload`), time every write, and report the slow ones (writes that waited
//! for a write-protect fault) to the running snapshot and to their own histograms.
//!
//! With [`WriterConfig::classify_faults`] the writers also classify each timed write exactly:
//! just before the store they read the page's `/proc/self/pagemap` entry ([`PagemapReader`]);
//! a write to a page that was write-protected then is a fault candidate and goes to
//! [`WritersOutcome::protected_write_latency`]; a write to an unprotected page never faulted.
//! The check and the store run under the same pause gate the arm takes, so no protection can
//! be added between them. The one race left: the snapshot may unprotect the page (scan or
//! another fault) between the check and the store; that store is fast and still counted as
//! a fault candidate, so the exact figures can only err towards more, faster fault waits.
//! Off by default: the extra `pread` per write (about a microsecond) would slow full-rate
//! writers.
//!
//! Each writer owns the pages `p` with `p % writers == index`, so the last stamp each page
//! should hold afterwards is known exactly, and a lost write can be detected.

mod pagemap;
mod run_delay;
mod stamp;

pub use pagemap::{PAGEMAP_UFFD_WP_BIT, PagemapError, PagemapReader};
pub use run_delay::RunDelayReader;
pub use stamp::{STAMP_OFFSETS, expected_stamp_ok, stamp_value};

use crate::region::Region;
use crate::snapshot::FaultWaitReporter;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use wpsnap_core::{LatencyRecorder, Nanos};
use wpsnap_workload::{PageSampler, Pattern, WriteTiming};

/// Most writer threads.
pub const WRITERS_MAX: u32 = 256;
/// A write slower than this is counted as a fault wait (a plain store takes well under 1 µs;
/// a write-protect fault round trip takes several).
pub const FAULT_WAIT_NS_MIN: u64 = 1_000;
/// Writers sleep only when they are this far ahead of their schedule (sleeping is coarse).
const SLEEP_AHEAD_NS_MIN: u64 = 200_000;

/// Writer settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriterConfig {
    pub threads: u32,
    pub pattern: Pattern,
    /// Writes per second per writer; `None`: as fast as possible.
    pub writes_per_sec: Option<f64>,
    pub seed: u64,
    /// Read each page's pagemap entry before a timed write to tell fault candidates from
    /// writes that were only preempted ([`WritersOutcome::protected_write_latency`]).
    #[serde(default)]
    pub classify_faults: bool,
}

#[derive(Debug, Error)]
pub enum WriterError {
    #[error("writer threads must be 1..={WRITERS_MAX} and at most the page count ({page_count}), got {threads}")]
    Threads { threads: u32, page_count: u64 },
    #[error("write pattern: {0}")]
    Pattern(#[from] wpsnap_workload::PatternError),
    #[error("write timing: {0}")]
    Timing(#[from] wpsnap_workload::TimingError),
    #[error("starting a writer thread: {0}")]
    Spawn(std::io::Error),
    #[error("a writer thread panicked")]
    Panicked,
    #[error("classifying fault waits: {0}")]
    Classify(#[source] PagemapError),
}

/// What the writers did.
#[derive(Clone, Debug)]
pub struct WritersOutcome {
    pub writes: u64,
    /// Writes slower than [`FAULT_WAIT_NS_MIN`] while a snapshot was running.
    pub fault_wait: LatencyRecorder,
    /// Every write timed while a snapshot was running.
    pub write_latency: LatencyRecorder,
    /// With [`WriterConfig::classify_faults`]: the timed writes to pages write-protected just
    /// before the store (fault waits, plus the rare store the snapshot unprotected first);
    /// `None` when not classified.
    pub protected_write_latency: Option<LatencyRecorder>,
    /// The same writes, each less the writer's own run-queue delay during it (the time it
    /// was runnable but had no CPU: after its fault was served, or preempted). What is left
    /// is the fault's service as the writer saw it, without the machine's CPU contention.
    /// `None` when not classified or where `/proc/thread-self/schedstat` is missing.
    pub protected_write_latency_less_run_delay: Option<LatencyRecorder>,
    /// The sequence number last written to each page (0: never written).
    pub last_seq: Vec<u64>,
}

struct Control {
    gate: RwLock<()>,
    stop: AtomicBool,
    reporter: Mutex<Option<FaultWaitReporter>>,
    /// Bumped when a reporter is set or cleared; writers re-read it then.
    reporter_version: AtomicU64,
    /// Time and record writes (set while a snapshot of either backend runs).
    recording: AtomicBool,
}

/// Running writer threads over a region borrowed for `'a`. Stop them with
/// [`stop`](WriterSet::stop); dropping the set stops and joins them too.
pub struct WriterSet<'a> {
    control: Arc<Control>,
    handles: Vec<JoinHandle<WriterResult>>,
    page_count: u64,
    classify_faults: bool,
    _region: std::marker::PhantomData<Region<'a>>,
}

impl std::fmt::Debug for WriterSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterSet").field("threads", &self.handles.len()).finish_non_exhaustive()
    }
}

/// Writers are paused while this lives.
#[derive(Debug)]
pub struct WriterPause<'a> {
    _guard: RwLockWriteGuard<'a, ()>,
}

struct WriterResult {
    writes: u64,
    fault_wait: LatencyRecorder,
    write_latency: LatencyRecorder,
    protected_write_latency: LatencyRecorder,
    protected_write_latency_less_run_delay: LatencyRecorder,
    /// The writer could not read its run-queue delay for every protected write.
    run_delay_missing: bool,
    /// The first pagemap read that failed (the writer stopped classifying then).
    classify_error: Option<PagemapError>,
    last_seq: Vec<(u64, u64)>,
}

impl<'a> WriterSet<'a> {
    /// Starts `config.threads` writers on `region`.
    pub fn start(region: Region<'a>, config: &WriterConfig) -> Result<WriterSet<'a>, WriterError> {
        // SAFETY: the set carries `'a` and joins every writer in `stop` or `Drop`.
        let region = unsafe { region.erase() };
        let page_count = region.page_count();
        if config.threads == 0 || config.threads > WRITERS_MAX || config.threads as u64 > page_count {
            return Err(WriterError::Threads { threads: config.threads, page_count });
        }
        let timing = match config.writes_per_sec {
            Some(rate) => Some(WriteTiming::for_pattern(&config.pattern, rate)?),
            None => None,
        };
        let pagemap = if config.classify_faults {
            Some(Arc::new(PagemapReader::open().map_err(WriterError::Classify)?))
        } else {
            None
        };
        let control = Arc::new(Control {
            gate: RwLock::new(()),
            stop: AtomicBool::new(false),
            reporter: Mutex::new(None),
            reporter_version: AtomicU64::new(0),
            recording: AtomicBool::new(false),
        });
        let mut set = WriterSet {
            control: control.clone(),
            handles: Vec::new(),
            page_count,
            classify_faults: config.classify_faults,
            _region: std::marker::PhantomData,
        };
        for index in 0..config.threads {
            let sampler = PageSampler::new(&config.pattern, page_count, index)?;
            let rng = ChaCha8Rng::seed_from_u64(config.seed ^ ((index as u64 + 1) << 32));
            let control = control.clone();
            let timing = timing.clone();
            let writers = config.threads;
            let pagemap = pagemap.clone();
            let handle = std::thread::Builder::new()
                .name(format!("wpsnap-writer-{index}"))
                .spawn(move || {
                    let plan = WriterPlan { region, index, writers, timing, pagemap };
                    writer_loop(plan, sampler, rng, &control)
                })
                .map_err(WriterError::Spawn);
            match handle {
                Ok(h) => set.handles.push(h),
                Err(e) => {
                    let _ = set.stop();
                    return Err(e);
                }
            }
        }
        Ok(set)
    }

    /// Pauses every writer between two writes; they resume when the guard is dropped.
    pub fn pause(&self) -> WriterPause<'_> {
        let guard = match self.control.gate.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        WriterPause { _guard: guard }
    }

    /// Sends slow writes to a running snapshot's engine (and starts timing writes), or stops.
    pub fn set_reporter(&self, reporter: Option<FaultWaitReporter>) {
        self.control.recording.store(reporter.is_some(), Ordering::Release);
        *lock(&self.control.reporter) = reporter;
        self.control.reporter_version.fetch_add(1, Ordering::Release);
    }

    /// Times and records writes without reporting them anywhere (the fork backend, whose
    /// waits are copy-on-write faults no engine needs to hear about).
    pub fn set_recording(&self, on: bool) {
        self.control.recording.store(on, Ordering::Release);
    }

    /// Stops and joins the writers.
    pub fn stop(mut self) -> Result<WritersOutcome, WriterError> {
        self.control.stop.store(true, Ordering::Release);
        let mut outcome = WritersOutcome {
            writes: 0,
            fault_wait: LatencyRecorder::new(),
            write_latency: LatencyRecorder::new(),
            protected_write_latency: self.classify_faults.then(LatencyRecorder::new),
            protected_write_latency_less_run_delay: self.classify_faults.then(LatencyRecorder::new),
            last_seq: vec![0; self.page_count as usize],
        };
        let mut panicked = false;
        let mut classify_error = None;
        for handle in self.handles.drain(..) {
            match handle.join() {
                Ok(r) => {
                    outcome.writes += r.writes;
                    outcome.fault_wait.merge(&r.fault_wait);
                    outcome.write_latency.merge(&r.write_latency);
                    if let Some(protected) = &mut outcome.protected_write_latency {
                        protected.merge(&r.protected_write_latency);
                    }
                    if r.run_delay_missing {
                        outcome.protected_write_latency_less_run_delay = None;
                    }
                    if let Some(protected) = &mut outcome.protected_write_latency_less_run_delay {
                        protected.merge(&r.protected_write_latency_less_run_delay);
                    }
                    classify_error = classify_error.or(r.classify_error);
                    for (page, seq) in r.last_seq {
                        outcome.last_seq[page as usize] = seq;
                    }
                }
                Err(_) => panicked = true,
            }
        }
        match classify_error {
            _ if panicked => Err(WriterError::Panicked),
            Some(e) => Err(WriterError::Classify(e)),
            None => Ok(outcome),
        }
    }
}

impl Drop for WriterSet<'_> {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Release);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The page writer `index` of `writers` writes when the pattern picks `page`.
fn owned_page(page: u64, index: u32, writers: u32, page_count: u64) -> u64 {
    let owned = page - page % writers as u64 + index as u64;
    if owned < page_count { owned } else { index as u64 }
}

/// What one writer thread writes, and how.
struct WriterPlan {
    region: Region<'static>,
    index: u32,
    writers: u32,
    timing: Option<WriteTiming>,
    /// Present when the writes are classified ([`WriterConfig::classify_faults`]).
    pagemap: Option<Arc<PagemapReader>>,
}

/// One writer's histograms of its timed writes.
struct WriterRecord {
    fault_wait: LatencyRecorder,
    write_latency: LatencyRecorder,
    protected_write_latency: LatencyRecorder,
    protected_write_latency_less_run_delay: LatencyRecorder,
}

impl WriterRecord {
    /// Records one timed write.
    fn record(&mut self, write: &TimedWrite, reporter: Option<&FaultWaitReporter>) {
        let took = write.took;
        let ns = Nanos(took.as_nanos() as u64);
        self.write_latency.record(ns);
        if write.protected {
            self.protected_write_latency.record(ns);
            if let Some(run_delay_ns) = write.run_delay_ns {
                self.protected_write_latency_less_run_delay.record(Nanos(ns.as_ns().saturating_sub(run_delay_ns)));
            }
        }
        if ns.as_ns() >= FAULT_WAIT_NS_MIN {
            self.fault_wait.record(ns);
            if let Some(reporter) = reporter {
                reporter.report(took);
            }
        }
    }
}

/// One writer's exact fault classification ([`WriterConfig::classify_faults`]).
struct Classifier {
    pagemap: Arc<PagemapReader>,
    /// `None` where the kernel has no schedstat.
    run_delay: Option<RunDelayReader>,
    /// A run-delay read failed (the less-run-delay figure is then incomplete).
    run_delay_missing: bool,
    /// The first pagemap read that failed; classification stopped then.
    error: Option<PagemapError>,
}

/// One store and what is known about it.
struct TimedWrite {
    took: Duration,
    /// The page was write-protected just before the store.
    protected: bool,
    /// The writer's run-queue delay during a protected write.
    run_delay_ns: Option<u64>,
}

/// Stores a stamp and times it; with a classifier, reads the page's protection first and,
/// for a protected page, the writer's run-queue delay around the store.
fn timed_write(region: &Region, page: u64, seq: u64, value: u64, classifier: Option<&mut Classifier>) -> TimedWrite {
    let Some(classifier) = classifier.filter(|c| c.error.is_none()) else {
        let t0 = Instant::now();
        stamp::write_stamp(region, page, seq, value);
        return TimedWrite { took: t0.elapsed(), protected: false, run_delay_ns: None };
    };
    let protected = match classifier.pagemap.is_write_protected(region.page_addr(page)) {
        Ok(protected) => protected,
        Err(e) => {
            // Stop classifying; `stop` reports the error.
            classifier.error = Some(e);
            false
        }
    };
    let run_delay = classifier.run_delay.as_ref().filter(|_| protected);
    let before_ns = run_delay.and_then(RunDelayReader::run_delay_ns);
    let t0 = Instant::now();
    stamp::write_stamp(region, page, seq, value);
    let took = t0.elapsed();
    let after_ns = run_delay.and_then(RunDelayReader::run_delay_ns);
    let run_delay_ns = before_ns.zip(after_ns).map(|(before, after)| after.saturating_sub(before));
    if protected && run_delay.is_some() && run_delay_ns.is_none() {
        classifier.run_delay_missing = true;
    }
    TimedWrite { took, protected, run_delay_ns }
}

fn writer_loop(plan: WriterPlan, mut sampler: PageSampler, mut rng: ChaCha8Rng, control: &Control) -> WriterResult {
    let WriterPlan { region, index, writers, timing, pagemap } = plan;
    let mut classifier = pagemap.map(|pagemap| Classifier {
        pagemap,
        run_delay: RunDelayReader::open_for_this_thread(),
        run_delay_missing: false,
        error: None,
    });
    let page_count = region.page_count();
    // Pages this writer owns: index, index + writers, ...
    let owned_pages = (page_count - index as u64).div_ceil(writers as u64);
    let mut last = vec![0u64; owned_pages as usize];
    let mut seq = 0u64;
    let mut record = WriterRecord {
        fault_wait: LatencyRecorder::new(),
        write_latency: LatencyRecorder::new(),
        protected_write_latency: LatencyRecorder::new(),
        protected_write_latency_less_run_delay: LatencyRecorder::new(),
    };
    let mut reporter: Option<FaultWaitReporter> = None;
    let mut reporter_seen = u64::MAX;
    let started = Instant::now();
    let mut due_ns = 0u64;
    while !control.stop.load(Ordering::Acquire) {
        let version = control.reporter_version.load(Ordering::Acquire);
        if version != reporter_seen {
            reporter = lock(&control.reporter).clone();
            reporter_seen = version;
        }
        if let Some(timing) = &timing {
            due_ns += timing.next_gap_ns(due_ns, &mut rng);
            let now_ns = started.elapsed().as_nanos() as u64;
            if due_ns > now_ns + SLEEP_AHEAD_NS_MIN {
                std::thread::sleep(Duration::from_nanos((due_ns - now_ns).min(10_000_000)));
            }
        }
        let page = owned_page(sampler.next_page(&mut rng), index, writers, page_count);
        seq += 1;
        let value = stamp_value(index, seq);
        let write = {
            // The arm protects the region under this gate's write side, so a page read as
            // unprotected here stays so until the store.
            let _pause = match control.gate.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            timed_write(&region, page, seq, value, classifier.as_mut())
        };
        last[(page / writers as u64) as usize] = seq;
        // Read after the store: a write that ends after recording stopped is not recorded
        // (the tests stop recording before anything the write may wait for can happen).
        if control.recording.load(Ordering::Acquire) {
            record.record(&write, reporter.as_ref());
        }
    }
    let last_seq = last
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != 0)
        .map(|(i, s)| (i as u64 * writers as u64 + index as u64, stamp_value(index, *s)))
        .collect();
    WriterResult {
        writes: seq,
        fault_wait: record.fault_wait,
        write_latency: record.write_latency,
        protected_write_latency: record.protected_write_latency,
        protected_write_latency_less_run_delay: record.protected_write_latency_less_run_delay,
        run_delay_missing: classifier.as_ref().is_some_and(|c| c.run_delay_missing || c.run_delay.is_none()),
        classify_error: classifier.and_then(|c| c.error),
        last_seq,
    }
}

#[cfg(test)]
mod tests {
    use super::owned_page;

    #[test]
    fn owned_pages_stay_in_range_and_belong_to_the_writer() {
        for page_count in [3u64, 10, 17] {
            for writers in 1..=3u32 {
                for index in 0..writers {
                    for page in 0..page_count {
                        let p = owned_page(page, index, writers, page_count);
                        assert!(p < page_count);
                        assert_eq!(p % writers as u64, index as u64);
                    }
                }
            }
        }
    }
}
