//! The memory budget (issue 15): the engine and the simulator never stage more than the budget;
//! a snapshot taken with any budget is the instant; with a sink stalled far longer than the
//! faults take, faults do not wait for it while the budget has room.

mod real;

use proptest::prelude::*;
use real::uffd_available;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wpsnap_core::{Action, Engine, EngineConfig, Lane, Nanos, PageIndex, PolicyConfig, ServiceModel};
use wpsnap_linux::region::{Backing, OwnedMapping, Region};
use wpsnap_linux::snapshot::{MemorySink, NoWriters, PageSink, SchedStat, SinkError, Snapshot, SnapshotConfig};
use wpsnap_linux::writers::{RunDelayReader, WriterConfig, WriterSet, expected_stamp_ok};
use wpsnap_sim::SimConfig;
use wpsnap_sim::disk::DiskPreset;
use wpsnap_workload::Pattern;

const PAGE: u64 = 4096;

fn drain(e: &mut Engine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// Drives a decoupled engine with faults, both lanes and sink drains chosen by `steps`, and
/// checks the budget after every input; then drains to completion.
fn drive_within_budget(config: EngineConfig, steps: &[(u8, u64)]) -> Engine {
    let budget = config.budget_pages;
    let page_count = config.page_count;
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let mut staged = 0u64;
    let mut held = [None, None];
    let mut now = Nanos::ZERO;
    let lanes = [Lane::Fault, Lane::Scan];
    let mut step = |e: &mut Engine, kind: u8, value: u64, now: Nanos, staged: &mut u64| match kind % 4 {
        0 => {
            e.handle_fault(now, PageIndex(value % page_count)).expect("in region");
            drain(e);
        }
        1 | 2 => {
            let slot = (kind % 2) as usize;
            match held[slot].take() {
                Some(capture) => {
                    let pages = wpsnap_core::Capture::run(&capture).count;
                    e.handle_captured(now, capture).expect("in flight");
                    *staged += pages;
                    drain(e);
                }
                None => held[slot] = e.poll_capture(now, lanes[slot]),
            }
        }
        _ => {
            let pages = (value % 64).min(*staged);
            if pages > 0 {
                e.handle_sink_drained(now, pages).expect("staged");
                *staged -= pages;
                drain(e);
            }
        }
    };
    for &(kind, value) in steps {
        now = now + Nanos(1_000);
        step(&mut e, kind, value, now, &mut staged);
        assert!(e.staging_used() <= budget, "staging {} over the budget {budget}", e.staging_used());
    }
    let mut rounds = 0u64;
    while !e.is_complete() {
        rounds += 1;
        assert!(rounds <= 4 * page_count + 64, "no completion: {e:?}");
        now = now + Nanos(1_000);
        for kind in [1, 2, 1, 2, 3] {
            step(&mut e, kind, u64::MAX, now, &mut staged);
            assert!(e.staging_used() <= budget);
        }
    }
    assert!(e.stats().staging_peak_pages <= budget);
    e
}

proptest! {
    /// The engine never stages more than its budget, over region sizes, budgets, high-water
    /// marks and capture units, whatever the faults and the sink do.
    #[test]
    fn the_engine_never_exceeds_its_budget(
        pages in 1u64..=600,
        budget_units in 1u64..=64,
        high_water in 1u8..=90,
        unit in prop_oneof![Just(1u64), Just(4), Just(16)],
        batch in 1u64..=64,
        steps in proptest::collection::vec((any::<u8>(), any::<u64>()), 0..400),
    ) {
        let mut config = EngineConfig::new(PAGE, pages, ServiceModel::Decoupled, PolicyConfig::None);
        config.budget_pages = budget_units * unit;
        config.scan_high_water_percent = high_water;
        config.capture_unit_pages = unit;
        config.scan_batch_pages = batch;
        let e = drive_within_budget(config, &steps);
        prop_assert_eq!(e.stats().pages_saved(), pages);
    }

    /// The same in the simulator, counted by its driver: the pages it holds captured and not
    /// yet written never exceed the budget, and the image is the instant.
    #[test]
    fn the_simulator_never_exceeds_the_budget(
        pages in 64u64..=3000,
        budget in 1u64..=4096,
        high_water in 1u8..=90,
        writers in 1u32..=6,
        seed in any::<u64>(),
    ) {
        let mut c = SimConfig::new(pages * PAGE, ServiceModel::Decoupled, PolicyConfig::None, DiskPreset::Hdd7200);
        c.engine.budget_pages = budget;
        c.engine.scan_high_water_percent = high_water;
        c.writers.count = writers;
        c.writers.writes_per_sec = 20_000.0;
        c.baseline = false;
        let report = wpsnap_sim::run(seed, &c).expect("valid config");
        prop_assert!(report.snapshot.driver_staged_peak_pages <= budget, "{} > {budget}", report.snapshot.driver_staged_peak_pages);
        prop_assert!(report.snapshot.staging_peak_pages <= budget);
        prop_assert_eq!(report.invariants.violations, 0, "{:?}", report.invariants.first_violations);
        prop_assert_eq!(report.invariants.image_equals_snapshot_instant, Some(true));
        if budget >= pages {
            prop_assert_eq!(report.snapshot.fault_blocked_on_budget, 0, "a budget of the region never blocks a fault");
        }
    }
}

fn fill(region: &Region) {
    for page in 0..region.page_count() {
        // SAFETY: the mapping is ours and nothing else runs on it yet.
        unsafe {
            std::ptr::write_bytes(
                region.page_addr(page) as *mut u8,
                (page % 251) as u8 + 1,
                region.page_size() as usize,
            )
        };
    }
}

fn copy_region(region: &Region) -> Vec<u8> {
    let mut out = vec![0u8; region.len()];
    region.copy_pages(0, region.page_count(), &mut out);
    out
}

/// With every budget from one page to the default (the region), the image equals a reference
/// copy taken at the instant and live memory keeps every write.
#[test]
fn a_snapshot_with_any_budget_is_the_instant() {
    if !uffd_available("a_snapshot_with_any_budget_is_the_instant") {
        return;
    }
    let pages = 2048u64;
    for budget in [Some(PAGE), Some(pages / 16 * PAGE), Some(pages / 2 * PAGE), None] {
        let mapping = OwnedMapping::new((pages * PAGE) as usize, Backing::Anonymous).expect("mapping");
        let region = mapping.region();
        fill(&region);
        let writers = WriterSet::start(
            region,
            &WriterConfig {
                threads: 2,
                pattern: Pattern::Uniform,
                writes_per_sec: Some(20_000.0),
                seed: 3,
                classify_faults: false,
            },
        )
        .expect("writers");
        let config = SnapshotConfig { policy: PolicyConfig::None, budget_bytes: budget, ..SnapshotConfig::default() };
        let (sink, image) = MemorySink::new(PAGE, pages);
        let prepared = Snapshot::prepare(region, config, Box::new(sink)).expect("prepare");
        let mut reference = Vec::new();
        let running = prepared
            .arm(|| {
                let pause = writers.pause();
                reference = copy_region(&region);
                pause
            })
            .expect("arm");
        let report = running.finish().expect("snapshot completes");
        let outcome = writers.stop().expect("writers stop");
        let image = image.lock().expect("image");
        assert!(image.writes.iter().all(|&w| w == 1), "budget {budget:?}: a page not saved exactly once");
        assert!(image.data == reference, "budget {budget:?}: the image is not the instant");
        let live = copy_region(&region);
        for (page, &stamp) in outcome.last_seq.iter().enumerate() {
            if stamp != 0 {
                assert!(expected_stamp_ok(&live[page * PAGE as usize..], stamp), "page {page}: a write was lost");
            }
        }
        let budget_pages = budget.map_or(pages, |b| b / PAGE);
        assert_eq!(report.budget_bytes, budget_pages * PAGE, "budget in force");
        assert!(report.engine.stats.staging_peak_pages <= budget_pages);
        assert!(report.staging_mapped_peak_bytes <= budget_pages * PAGE + 2 * (2 << 20), "staging memory over budget");
    }
}

/// A sink that stalls 100 ms at a time until its gate opens, having written at most
/// `pages_before_gate` pages by then.
struct GatedStallSink {
    inner: MemorySink,
    written: u64,
    pages_before_gate: u64,
    gate: Arc<(Mutex<bool>, Condvar)>,
    stalls: Arc<Mutex<u64>>,
}

/// One stall of the gated sink.
const SINK_STALL: Duration = Duration::from_millis(100);
/// Longest the test waits for the sink to reach its gate (it always does: the scan alone
/// stages more pages than the sink may write before the gate).
const GATE_REACHED_WAIT_MAX: Duration = Duration::from_secs(60);

impl PageSink for GatedStallSink {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        if self.written >= self.pages_before_gate {
            let (open, cv) = &*self.gate;
            let mut open = open.lock().map_err(|_| SinkError::custom("gate poisoned"))?;
            while !*open {
                *self.stalls.lock().map_err(|_| SinkError::custom("stalls poisoned"))? += 1;
                open = cv.wait_timeout(open, SINK_STALL).map_err(|_| SinkError::custom("gate poisoned"))?.0;
            }
        }
        self.written += 1;
        self.inner.write_page(index, data)
    }
    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        Box::new(self.inner).finish(report_json)
    }
    fn abort(self: Box<Self>) {
        Box::new(self.inner).abort()
    }
}

/// Issue 15: a sink stalled in 100 ms steps for the whole time the writer faults, a region 16x
/// the budget. Faults are guaranteed: the writer writes distinct pages in the upper half,
/// downward, which the scan cannot reach (it can hold at most the budget plus what the sink
/// wrote before its gate, far below the upper half, and a fault moves its cursor past the top).
/// Their number fits in the budget above the scan's high-water mark, so none may wait for the
/// sink: none waits for budget room, and the fault wait p99 stays under 5 ms.
///
/// Both waits are judged: the engine's (fault event read to unprotect issued) and the writer's
/// (store to store returned) less the writer's own wait for a CPU during it (schedstat). The
/// writer's raw wait also holds that CPU wait, which the two CPU hogs of the flake check decide:
/// its p99 (the second slowest of 120) passed 40 of 40 runs at most 3.9 ms with the scan's
/// 16-page batch, and went to 7.0 ms in 1 of 5 runs once the batch was 2 MiB, with the
/// engine's p99 at 29 us and the writer 37.6 ms on a run queue while it faulted. What stays in
/// the judged wait is the snapshot's part, the fault thread's own wait for a CPU included
/// (`SCHED_FIFO` by default: at most 58 us per run queue wait under the hogs,
/// docs/results/2026-11-30-fault-latency.md; with the threads inherited it waited 5-116 ms).
/// The raw p99 is printed.
#[test]
fn faults_do_not_wait_for_a_stalled_sink_while_the_budget_has_room() {
    if !uffd_available("faults_do_not_wait_for_a_stalled_sink_while_the_budget_has_room") {
        return;
    }
    const BUDGET_PAGES: u64 = 256;
    const REGION_PAGES: u64 = 16 * BUDGET_PAGES;
    const SINK_PAGES_BEFORE_GATE: u64 = 64;
    // Below the room above the high-water mark (50 % of 256 = 128 pages).
    const FAULTS: u64 = 120;
    let mapping = OwnedMapping::new((REGION_PAGES * PAGE) as usize, Backing::Anonymous).expect("mapping");
    let region = mapping.region();
    fill(&region);
    let reference = copy_region(&region);
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let stalls = Arc::new(Mutex::new(0));
    let (memory, image) = MemorySink::new(PAGE, REGION_PAGES);
    let sink = GatedStallSink {
        inner: memory,
        written: 0,
        pages_before_gate: SINK_PAGES_BEFORE_GATE,
        gate: gate.clone(),
        stalls: stalls.clone(),
    };
    let config = SnapshotConfig {
        policy: PolicyConfig::None,
        budget_bytes: Some(BUDGET_PAGES * PAGE),
        ..SnapshotConfig::default()
    };
    let running = Snapshot::prepare(region, config, Box::new(sink)).expect("prepare").arm(|| NoWriters).expect("arm");
    // The writer starts only once the sink sits stalled at its gate (the scan stages more than
    // the sink writes before it), so every fault below meets a stalled sink.
    let deadline = Instant::now() + GATE_REACHED_WAIT_MAX;
    while *stalls.lock().expect("stalls") == 0 {
        assert!(Instant::now() < deadline, "the sink never reached its gate");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut waits = Vec::with_capacity(FAULTS as usize);
    // Each wait less the writer's own run-queue wait during it (schedstat around the write):
    // its wait for a CPU after the fault was served, which the two CPU hogs decide, not the
    // snapshot. What is left is the snapshot's part: the fault thread's wake-up and run-queue
    // wait, the engine, the copy, the unprotect, and any wait for the sink.
    let mut waits_less_own_delay = Vec::with_capacity(FAULTS as usize);
    let writer_sched_before = SchedStat::of_current_thread();
    let run_delay = RunDelayReader::open_for_this_thread();
    let run_delay_ns = || run_delay.as_ref().and_then(RunDelayReader::run_delay_ns);
    for i in 0..FAULTS {
        let page = REGION_PAGES - 1 - i;
        let delay_before_ns = run_delay_ns();
        let started = Instant::now();
        // SAFETY: inside the live mapping; the write to a protected page blocks until the
        // snapshot saves it.
        unsafe { std::ptr::write_volatile(region.page_addr(page) as *mut u64, 0xfeed_0000 + i) };
        let wait = started.elapsed();
        let own_delay = delay_before_ns
            .zip(run_delay_ns())
            .map_or(Duration::ZERO, |(before, after)| Duration::from_nanos(after.saturating_sub(before)));
        waits.push(wait);
        waits_less_own_delay.push(wait.saturating_sub(own_delay));
    }
    let writer_sched = writer_sched_before.zip(SchedStat::of_current_thread()).map(|(a, b)| b.since(&a));
    let stalls_during_faults = *stalls.lock().expect("stalls");
    {
        let (open, cv) = &*gate;
        *open.lock().expect("gate") = true;
        cv.notify_all();
    }
    let report = running.finish().expect("snapshot completes");
    let image = image.lock().expect("image");
    assert!(image.data == reference, "the image is not the instant");

    let stats = &report.engine.stats;
    waits.sort_unstable();
    waits_less_own_delay.sort_unstable();
    let p99_of = |sorted: &[Duration]| sorted[(sorted.len() * 99).div_ceil(100) - 1];
    let (p99, p99_less_own_delay) = (p99_of(&waits), p99_of(&waits_less_own_delay));
    let service = &report.engine.service_latency;
    eprintln!(
        "{} faults ({} pages by fault); writer wait p50 {:?} p99 {p99:?} max {:?} (less its own run-queue wait: p99 \
         {p99_less_own_delay:?}); engine service p99 {} us max {} us; \
         {stalls_during_faults} sink stalls of 100 ms while faulting; staging peak {} of {BUDGET_PAGES}",
        waits.len(),
        stats.pages_by_fault,
        waits[waits.len() / 2],
        waits[waits.len() - 1],
        service.p99_ns / 1000,
        service.max_ns / 1000,
        stats.staging_peak_pages
    );
    eprintln!("writer thread while faulting: {writer_sched:?}; snapshot threads: {:?}", report.thread_priorities);
    assert_eq!(stats.pages_by_fault, FAULTS, "every write was a fault (the scan cannot reach these pages)");
    assert!(stalls_during_faults >= 1, "the sink was stalled while the writer faulted");
    assert!(report.engine.stats.pages_by_scan >= SINK_PAGES_BEFORE_GATE);
    assert_eq!(stats.fault_blocked_on_budget, 0, "a fault waited for the stalled sink");
    assert_eq!(service.count, FAULTS, "one service latency per fault");
    assert!(service.p99_ns < 5_000_000, "engine-side fault wait p99 {} us", service.p99_ns / 1000);
    assert!(
        p99_less_own_delay < Duration::from_millis(5),
        "the writer's fault wait less its own wait for a CPU: p99 {p99_less_own_delay:?} (with it: {p99:?})"
    );
}
