//! Properties 4 and 5 (docs/testing.md): the snapshot invariant and a latency bound on the
//! real userfaultfd backend. Skipped, saying why, where userfaultfd is unavailable, unless
//! WPSNAP_REQUIRE_UFFD=1 (CI), which makes them fail instead.

mod real;

use proptest::prelude::*;
use real::{
    Case, Run, RunOptions, case, quantile_of_slowest, real_cases, scan_held_after_first_fault, snapshot_and_check,
    snapshot_and_check_with, uffd_available,
};
use std::time::Duration;
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_linux::region::Backing;
use wpsnap_workload::Pattern;

proptest! {
    #![proptest_config(ProptestConfig { cases: real_cases(), max_shrink_iters: 32, .. ProptestConfig::default() })]

    /// Property 4: over random sizes, backings, sparse regions, writers, patterns, kernel-side
    /// writes, policies and service models, the image equals a reference copy taken at the
    /// snapshot instant, and live memory afterwards holds every write.
    #[test]
    fn real_snapshot_is_the_instant_and_loses_no_write(c in case()) {
        if !uffd_available("real_snapshot_is_the_instant_and_loses_no_write") {
            return Ok(());
        }
        let run = snapshot_and_check(&c, None);
        prop_assert_eq!(run.report.engine.stats.pages_saved(), c.pages);
    }
}

/// Property 5: with a sink that stalls 30 ms per page, decoupled writers do not wait for the
/// sink while the memory budget has room; qemu writers wait for a stall on every fault.
///
/// Nothing here hopes for enough faults or a quiet machine:
/// - decoupled: 48 pages, a budget of 32 and the sink held (writing nothing) until 32 pages are
///   saved. With more outstanding than the budget, the scan stops at its high-water mark (16
///   pages), so at least 16 pages can only be saved by writers' faults, and only while the
///   sink is held: a fault that needed the sink would keep the budget from filling and fail
///   the test. Only those writes are timed;
/// - qemu: one-page scan captures and `limit-scan-rate` holding the scan for 10 s after every
///   fault while faults keep coming (a bandwidth limit would not do: the qemu thread sleeps out
///   a used-up slice reading no fault), so at least half the pages are saved by fault;
/// - the writers classify their writes exactly (`RunOptions::classify_faults`: the page's
///   pagemap entry read just before each store), so the decoupled bound holds the writes to
///   write-protected pages only, not the stores a CPU hog preempted: their median under half
///   a stall. Every fault saved while the sink was held is among them except the at most one
///   per writer still waking when the timing stopped (timing starts at the instant, inside
///   the arm's pause);
/// - the decoupled p99 is printed, not asserted: the "p99 under 5 ms" holds in
///   `memory_budget.rs` (a 100 ms sink, a region 16x the budget, 120 timed faults) but not
///   here under two CPU hogs, although these are real fault waits: the p99 (the max of 16-32
///   waits) was over 5 ms in 9 of 20 runs (5.8-12.9 ms; 57 ms once in an earlier series,
///   docs/testing.md). The writer's own run-queue wait explains one of the nine, the
///   `SCHED_FIFO` fault thread's (tens of µs per run) none: the fault thread was blocked,
///   most likely behind the nice-5 scan and sink threads (40-120 ms run-queue wait per run);
/// - the qemu faulting writes' median and p99 at least a stall (each qemu fault waits for
///   its own page's stalled write, by construction of that model), from the slowest writes
///   as many as the engine counted faults (a preempted store only makes a write slower).
#[test]
fn a_stalling_sink_stalls_qemu_writers_but_not_decoupled_ones() {
    if !uffd_available("a_stalling_sink_stalls_qemu_writers_but_not_decoupled_ones") {
        return;
    }
    const BUDGET_PAGES: u64 = 32;
    // The scan's high-water mark: 50% of the budget (the session's default).
    const SCAN_HIGH_WATER_PAGES: u64 = BUDGET_PAGES / 2;
    let stall = Duration::from_millis(30);
    let decoupled_case = Case {
        backing: Backing::Anonymous,
        pages: 48,
        untouched_every: 0,
        writers: 2,
        writes_per_sec: 5_000.0,
        pattern: Pattern::Uniform,
        model: ServiceModel::Decoupled,
        policy: PolicyConfig::None,
        kernel_writes: Vec::new(),
    };
    let qemu_case = Case { model: ServiceModel::Qemu, policy: scan_held_after_first_fault(), ..decoupled_case.clone() };
    let decoupled = snapshot_and_check_with(
        &decoupled_case,
        RunOptions {
            stall_per_page: Some(stall),
            hold_sink_until_saved: Some(BUDGET_PAGES),
            budget_pages: Some(BUDGET_PAGES),
            classify_faults: true,
            ..RunOptions::default()
        },
    );
    let qemu = snapshot_and_check_with(
        &qemu_case,
        RunOptions {
            stall_per_page: Some(stall),
            scan_batch_pages: Some(1),
            classify_faults: true,
            ..RunOptions::default()
        },
    );
    let held = decoupled.while_held.expect("the decoupled sink was held");
    let faulting = |run: &Run, faults: u64, q: f64| quantile_of_slowest(&run.writers.fault_wait, faults, q);
    let runs =
        [("decoupled", &decoupled, held.pages_by_fault), ("qemu", &qemu, qemu.report.engine.stats.pages_by_fault)];
    let less_run_delay = |run: &Run| run.writers.protected_write_latency_less_run_delay.clone().unwrap_or_default();
    for (name, run, faults) in runs {
        let exact = run.writers.protected_write_latency.as_ref().expect("classified");
        eprintln!(
            "{name}: {faults} pages by fault (timed), {} in all; slowest-{faults} writes p50 {} us, p99 {} us; \
             {} writes to protected pages p50 {} us, p99 {} us, max {} us; less run delay p50 {} us, p99 {} us",
            run.report.engine.stats.pages_by_fault,
            faulting(run, faults, 0.5).as_ns() / 1000,
            faulting(run, faults, 0.99).as_ns() / 1000,
            exact.count(),
            exact.quantile(0.5).as_ns() / 1000,
            exact.quantile(0.99).as_ns() / 1000,
            exact.quantile(1.0).as_ns() / 1000,
            less_run_delay(run).quantile(0.5).as_ns() / 1000,
            less_run_delay(run).quantile(0.99).as_ns() / 1000,
        );
    }
    assert!(
        held.pages_by_fault >= BUDGET_PAGES - SCAN_HIGH_WATER_PAGES,
        "decoupled: only {} pages saved by fault while the sink was held; the scan should have stopped at {SCAN_HIGH_WATER_PAGES}",
        held.pages_by_fault
    );
    assert!(
        qemu.report.engine.stats.pages_by_fault >= qemu_case.pages / 2,
        "qemu: only {} of {} pages saved by fault although the scan was held back",
        qemu.report.engine.stats.pages_by_fault,
        qemu_case.pages
    );
    let decoupled_faults = decoupled.writers.protected_write_latency.as_ref().expect("classified");
    let faults_timed_min = held.pages_by_fault.saturating_sub(decoupled_case.writers as u64);
    assert!(
        decoupled_faults.count() >= faults_timed_min,
        "decoupled: {} timed writes met a write-protected page, {} pages were saved by fault while the sink was held",
        decoupled_faults.count(),
        held.pages_by_fault
    );
    let d50 = decoupled_faults.quantile(0.5);
    assert!(d50.as_ns() < stall.as_nanos() as u64 / 2, "decoupled median {d50} should stay under half a stall");
    for q in [0.5, 0.99] {
        let wait = faulting(&qemu, qemu.report.engine.stats.pages_by_fault, q);
        assert!(wait.as_ns() >= stall.as_nanos() as u64, "qemu quantile {q} {wait} should include a whole stall");
    }
}
