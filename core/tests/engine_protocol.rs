//! The engine's contract, pinned with small hand-driven scenarios.

use wpsnap_core::policy::{BandwidthParams, LimitScanRateParams};
use wpsnap_core::{
    Action, Capture, Cause, Engine, EngineConfig, EngineError, FaultError, FaultOutcome, IterationMode, Lane, Nanos,
    PageIndex, PageRun, PolicyConfig, ServiceModel,
};

const PAGE: u64 = 4096;

fn engine(pages: u64, model: ServiceModel, policy: PolicyConfig) -> Engine {
    Engine::new(EngineConfig::new(PAGE, pages, model, policy), Nanos::ZERO).expect("valid config")
}

fn drain(e: &mut Engine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn ms(n: u64) -> Nanos {
    Nanos::from_ms(n)
}

/// Completes `capture` at `now` and returns the actions it produced.
fn complete(e: &mut Engine, now: Nanos, capture: Capture) -> Vec<Action> {
    e.handle_captured(now, capture).expect("capture in flight");
    drain(e)
}

#[test]
fn faults_go_before_scan_pages_on_the_single_lane() {
    let mut e = engine(100, ServiceModel::Qemu, PolicyConfig::None);
    assert_eq!(e.handle_fault(Nanos(1), PageIndex(70)), Ok(FaultOutcome::Queued));
    assert_eq!(e.handle_fault(Nanos(2), PageIndex(30)), Ok(FaultOutcome::Queued));
    let first = e.poll_capture(Nanos(3), Lane::Single).expect("work");
    assert_eq!((first.run(), first.cause()), (PageRun::single(PageIndex(70)), Cause::Fault));
    // The lane is busy until the capture completes.
    assert!(e.poll_capture(Nanos(3), Lane::Single).is_none());
    assert_eq!(complete(&mut e, Nanos(4), first), vec![Action::Unprotect(PageRun::single(PageIndex(70)))]);
    let second = e.poll_capture(Nanos(5), Lane::Single).expect("work");
    assert_eq!((second.run().first, second.cause()), (PageIndex(30), Cause::Fault));
    let _ = complete(&mut e, Nanos(6), second);
    let scan = e.poll_capture(Nanos(7), Lane::Single).expect("scan resumes");
    assert_eq!(scan.cause(), Cause::Scan);
    // The cursor followed the last fault read (page 30), as QEMU's locality hint does.
    assert_eq!(scan.run().first, PageIndex(31));
}

#[test]
fn decoupled_scan_never_overtakes_a_queued_fault() {
    let mut e = engine(100, ServiceModel::Decoupled, PolicyConfig::None);
    let fault_lane_busy = {
        e.handle_fault(Nanos(1), PageIndex(10)).expect("in region");
        e.poll_capture(Nanos(1), Lane::Fault).expect("fault capture")
    };
    e.handle_fault(Nanos(2), PageIndex(20)).expect("in region");
    // Page 20 is queued behind a busy fault lane: the scan must not start a page now.
    assert!(e.poll_capture(Nanos(3), Lane::Scan).is_none());
    let _ = complete(&mut e, Nanos(4), fault_lane_busy);
    let next = e.poll_capture(Nanos(5), Lane::Fault).expect("queued fault");
    assert_eq!(next.run().first, PageIndex(20));
    assert!(e.poll_capture(Nanos(5), Lane::Scan).is_some(), "queue empty: scan may go");
    // Lanes of the other model are never offered work.
    assert!(e.poll_capture(Nanos(5), Lane::Single).is_none());
    let _ = next;
}

#[test]
fn a_fault_on_a_saved_page_only_wakes() {
    let mut e = engine(8, ServiceModel::Qemu, PolicyConfig::None);
    let c = e.poll_capture(Nanos(0), Lane::Single).expect("scan");
    assert_eq!(c.run().first, PageIndex(0));
    let _ = complete(&mut e, Nanos(1), c);
    assert_eq!(e.handle_fault(Nanos(2), PageIndex(0)), Ok(FaultOutcome::AlreadySaved));
    assert_eq!(drain(&mut e), vec![Action::Wake(PageIndex(0))]);
    assert_eq!(e.stats().duplicate_faults, 1);
    assert_eq!(e.stats().wakes_only, 1);
    assert_eq!(e.stats().pages_by_fault, 0, "never saved twice");
}

#[test]
fn a_fault_on_a_page_in_progress_waits_for_its_unprotect() {
    let mut e = engine(8, ServiceModel::Qemu, PolicyConfig::None);
    e.handle_fault(Nanos(1), PageIndex(3)).expect("in region");
    assert_eq!(e.handle_fault(Nanos(2), PageIndex(3)), Ok(FaultOutcome::AlreadyInProgress));
    let c = e.poll_capture(Nanos(3), Lane::Single).expect("fault");
    assert_eq!(e.handle_fault(Nanos(4), PageIndex(3)), Ok(FaultOutcome::AlreadyInProgress));
    assert!(drain(&mut e).is_empty(), "no wake before the unprotect");
    assert_eq!(complete(&mut e, Nanos(5), c), vec![Action::Unprotect(PageRun::single(PageIndex(3)))]);
    assert_eq!(e.stats().duplicate_faults, 2);
}

#[test]
fn fault_words_are_where_the_engine_keeps_the_page_s_fault_state() {
    // A driver prefetches these words ahead of a likely fault; they must hold the page's bit
    // of the pending set and of the fault queue, before and after the fault.
    let mut e = engine(200, ServiceModel::Decoupled, PolicyConfig::None);
    let bit = |word: Option<&u64>, page: u64| word.map(|w| w >> (page % 64) & 1);
    let [pending, queued] = e.fault_words(PageIndex(130));
    assert_eq!((bit(pending, 130), bit(queued, 130)), (Some(1), Some(0)));
    assert_eq!(e.handle_fault(Nanos(1), PageIndex(130)), Ok(FaultOutcome::Queued));
    let [pending, queued] = e.fault_words(PageIndex(130));
    assert_eq!((bit(pending, 130), bit(queued, 130)), (Some(0), Some(1)));
    assert_eq!(e.fault_words(PageIndex(200)), [None, None]);
}

#[test]
fn a_fault_outside_the_region_is_an_error_value() {
    let mut e = engine(8, ServiceModel::Qemu, PolicyConfig::None);
    assert_eq!(e.handle_fault(Nanos(1), PageIndex(8)), Err(FaultError::OutOfRegion { page: 8, page_count: 8 }));
    assert_eq!(e.stats().faults, 0);
}

#[test]
fn the_engine_holds_every_fault_itself() {
    // Far more faults than any old fixed queue held: the driver keeps no queue of its own.
    let mut e = engine(5000, ServiceModel::Qemu, PolicyConfig::None);
    for page in 0..3000 {
        assert_eq!(e.handle_fault(Nanos(page + 1), PageIndex(page)), Ok(FaultOutcome::Queued));
    }
    assert_eq!(e.faults_queued(), 3000);
    // A duplicate on a queued page needs no room and changes nothing.
    assert_eq!(e.handle_fault(Nanos(4000), PageIndex(1)), Ok(FaultOutcome::AlreadyInProgress));
    let c = e.poll_capture(Nanos(4001), Lane::Single).expect("fault");
    assert_eq!(c.run().first, PageIndex(0), "served in the order read");
    let _ = complete(&mut e, Nanos(4002), c);
    assert_eq!(e.faults_queued(), 2999);
    assert_eq!(e.stats().fault_queue_peak, 3000);
}

/// Runs a snapshot to completion with captures that take `capture_time` each and a fault
/// every `fault_every` captures; returns the engine and every page captured, in order.
fn run_to_completion(model: ServiceModel, pages: u64, batch: u64) -> (Engine, Vec<u64>) {
    let mut config = EngineConfig::new(PAGE, pages, model, PolicyConfig::None);
    config.scan_batch_pages = batch;
    config.budget_pages = 16;
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let mut captured = Vec::new();
    let mut now = Nanos::ZERO;
    let mut staged = 0;
    let mut step = 0u64;
    while !e.is_complete() {
        step += 1;
        assert!(step < 10 * pages + 100, "no progress");
        now = now + Nanos::from_us(10);
        if step.is_multiple_of(7) {
            let page = PageIndex((step * 31) % pages);
            e.handle_fault(now, page).expect("in region");
            drain(&mut e);
        }
        for &lane in model.lanes() {
            if let Some(c) = e.poll_capture(now, lane) {
                captured.extend(c.run().pages().map(|p| p.0));
                staged += c.run().count;
                let actions = complete(&mut e, now, c);
                assert!(matches!(actions[0], Action::Unprotect(_)));
            }
        }
        if model == ServiceModel::Decoupled && staged > 0 && step.is_multiple_of(3) {
            e.handle_sink_drained(now, staged).expect("staged");
            staged = 0;
            drain(&mut e);
        }
    }
    (e, captured)
}

#[test]
fn every_page_is_saved_exactly_once_in_both_models() {
    for model in [ServiceModel::Qemu, ServiceModel::Decoupled] {
        for batch in [1, 5] {
            let (mut e, mut captured) = run_to_completion(model, 300, batch);
            captured.sort_unstable();
            assert_eq!(captured, (0..300).collect::<Vec<_>>(), "{model:?} batch {batch}");
            let s = e.stats();
            assert_eq!(s.pages_saved(), 300);
            assert!(s.pages_by_fault > 0 && s.pages_by_scan > 0);
            assert!(e.poll_capture(Nanos::MAX, Lane::Scan).is_none());
        }
    }
}

#[test]
fn decoupled_completes_only_when_the_sink_has_drained() {
    let mut e = engine(2, ServiceModel::Decoupled, PolicyConfig::None);
    let c = e.poll_capture(Nanos(0), Lane::Scan).expect("scan");
    let _ = complete(&mut e, Nanos(1), c);
    let c = e.poll_capture(Nanos(1), Lane::Scan).expect("scan");
    let _ = complete(&mut e, Nanos(2), c);
    assert!(!e.is_complete());
    assert_eq!(e.handle_sink_drained(Nanos(3), 3), Err(EngineError::DrainedMoreThanStaged { drained: 3, used: 2 }));
    e.handle_sink_drained(Nanos(3), 2).expect("two staged");
    assert_eq!(drain(&mut e), vec![Action::Complete]);
    assert!(e.is_complete());
}

#[test]
fn the_scan_stops_at_its_high_water_mark_and_faults_use_the_rest_of_the_budget() {
    let mut config = EngineConfig::new(PAGE, 64, ServiceModel::Decoupled, PolicyConfig::None);
    config.budget_pages = 8;
    config.scan_high_water_percent = 50;
    config.scan_batch_pages = 16;
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let c = e.poll_capture(Nanos(0), Lane::Scan).expect("scan");
    assert_eq!(c.run().count, 4, "the scan stages up to half the budget");
    let _ = complete(&mut e, Nanos(1), c);
    assert!(e.poll_capture(Nanos(1), Lane::Scan).is_none(), "at the high-water mark");
    // Four faults find room: the budget is theirs above the mark.
    for (i, page) in [40u64, 50, 60, 61].into_iter().enumerate() {
        let now = Nanos(2 + i as u64);
        e.handle_fault(now, PageIndex(page)).expect("in region");
        let f = e.poll_capture(now, Lane::Fault).expect("room for the fault");
        let _ = complete(&mut e, now, f);
    }
    assert_eq!(e.staging_used(), 8);
    assert_eq!(e.stats().fault_blocked_on_budget, 0);
    // The fifth waits for the sink: the budget is exhausted. Nothing is dropped.
    e.handle_fault(Nanos(10), PageIndex(62)).expect("in region");
    assert!(e.poll_capture(Nanos(10), Lane::Fault).is_none(), "budget exhausted: back-pressure");
    assert!(e.poll_capture(Nanos(11), Lane::Fault).is_none());
    assert_eq!(e.faults_queued(), 1);
    e.handle_sink_drained(Nanos(30), 1).expect("staged");
    let f = e.poll_capture(Nanos(30), Lane::Fault).expect("room again");
    assert_eq!(f.run().first, PageIndex(62));
    assert_eq!(e.stats().fault_blocked_on_budget, 1, "counted once per fault");
    assert_eq!(e.stats().fault_blocked_on_budget_ns, 20, "from 10 to 30");
    let _ = f;
}

#[test]
fn once_the_rest_fits_in_the_budget_the_scan_may_use_all_of_it() {
    // Budget = region: the scan copies everything without waiting for the sink.
    let mut config = EngineConfig::new(PAGE, 64, ServiceModel::Decoupled, PolicyConfig::None);
    config.budget_pages = 64;
    config.scan_batch_pages = 16;
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let mut now = Nanos::ZERO;
    while let Some(c) = e.poll_capture(now, Lane::Scan) {
        now = now + Nanos(1);
        let _ = complete(&mut e, now, c);
    }
    assert_eq!(e.pages_pending(), 0);
    assert_eq!(e.stats().protection_window(), Some(Nanos(4)), "protection ends with the last unprotect");
    assert!(!e.is_complete(), "the sink has not drained yet");
    e.handle_sink_drained(Nanos(100), 64).expect("staged");
    assert_eq!(drain(&mut e), vec![Action::Complete]);
    assert_eq!(e.report().protection_window_ns, Some(4));
    assert_eq!(e.stats().finished_at, Some(Nanos(100)), "the total duration includes the drain");
    assert_eq!(e.stats().staging_blocked_ns, 0);
}

#[test]
fn completion_is_announced_once_and_nothing_is_offered_after() {
    let (mut e, _) = run_to_completion(ServiceModel::Qemu, 10, 1);
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.handle_fault(Nanos::from_secs(1), PageIndex(3)), Ok(FaultOutcome::AlreadySaved));
    assert_eq!(drain(&mut e), vec![Action::Wake(PageIndex(3))]);
    assert!(e.poll_capture(Nanos::from_secs(1), Lane::Single).is_none());
}

#[test]
fn cancel_unprotects_everything_and_wakes_later_faults() {
    let mut e = engine(10, ServiceModel::Decoupled, PolicyConfig::None);
    e.handle_fault(Nanos(1), PageIndex(5)).expect("in region");
    let c = e.poll_capture(Nanos(1), Lane::Fault).expect("fault");
    e.handle_fault(Nanos(2), PageIndex(6)).expect("in region");
    e.cancel(Nanos(3), "user interrupt");
    assert_eq!(drain(&mut e), vec![Action::UnprotectAll]);
    assert!(e.is_cancelled());
    assert!(e.poll_capture(Nanos(4), Lane::Scan).is_none());
    assert!(e.poll_capture(Nanos(4), Lane::Fault).is_none(), "queued faults were dropped: UnprotectAll wakes them");
    // A capture in flight at cancel time completes quietly.
    assert_eq!(complete(&mut e, Nanos(5), c), vec![]);
    assert_eq!(e.handle_fault(Nanos(6), PageIndex(7)), Ok(FaultOutcome::AlreadySaved));
    assert_eq!(drain(&mut e), vec![Action::Wake(PageIndex(7))]);
    assert_eq!(e.staging_used(), 0);
}

#[test]
fn a_capture_from_another_engine_is_refused() {
    let mut a = engine(4, ServiceModel::Qemu, PolicyConfig::None);
    let mut b = engine(4, ServiceModel::Qemu, PolicyConfig::None);
    let from_a = a.poll_capture(Nanos(0), Lane::Single).expect("scan");
    let from_b = b.poll_capture(Nanos(0), Lane::Single).expect("scan");
    let _ = complete(&mut b, Nanos(1), from_b);
    let next_b = b.poll_capture(Nanos(1), Lane::Single).expect("scan");
    assert!(matches!(b.handle_captured(Nanos(2), from_a), Err(EngineError::UnknownCapture { .. })));
    let _ = next_b;
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "drain poll_action")]
fn an_undrained_action_is_caught_at_the_next_input() {
    let mut e = engine(4, ServiceModel::Qemu, PolicyConfig::None);
    let c = e.poll_capture(Nanos(0), Lane::Single).expect("scan");
    e.handle_captured(Nanos(1), c).expect("in flight");
    // The Unprotect was not drained.
    let _ = e.handle_fault(Nanos(2), PageIndex(1));
}

// ---- Iteration limits ----

/// Scans with every capture taking `per_page`; returns the page counts at iteration ends.
fn iteration_ends(mode: IterationMode, per_page: Nanos, pages: u64) -> Vec<(u64, Nanos)> {
    let mut config = EngineConfig::new(PAGE, pages, ServiceModel::Qemu, PolicyConfig::None);
    config.iteration_mode = Some(mode);
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let mut now = Nanos::ZERO;
    let mut ends = Vec::new();
    let mut saved = 0;
    while let Some(c) = e.poll_capture(now, Lane::Single) {
        now = now + per_page;
        saved += c.run().count;
        for action in complete(&mut e, now, c) {
            if let Action::IterationEnd(summary) = action {
                ends.push((saved, summary.elapsed));
            }
        }
    }
    ends
}

#[test]
fn ordinary_iterations_end_after_50_ms_at_a_multiple_of_64_pages() {
    // 1 ms per page: the 50 ms limit is passed at page 51 but only checked at page 64.
    let ends = iteration_ends(IterationMode::Ordinary, ms(1), 200);
    assert_eq!(ends, vec![(64, ms(64)), (128, ms(64)), (192, ms(64))]);
    // 0.5 ms per page: 64 pages take 32 ms, under the limit; the check at 128 ends it.
    let ends = iteration_ends(IterationMode::Ordinary, Nanos::from_us(500), 300);
    assert_eq!(ends, vec![(128, ms(64)), (256, ms(64))]);
}

#[test]
fn write_tracking_iterations_end_after_1000_ms() {
    let ends = iteration_ends(IterationMode::WriteTracking, ms(1), 2100);
    // 1000 ms is reached at page 1000 but is not over the limit; 1024 is the next check.
    assert_eq!(ends, vec![(1024, ms(1024)), (2048, ms(1024))]);
}

#[test]
fn seed_policies_default_to_write_tracking_and_the_rest_to_ordinary() {
    let e = engine(4, ServiceModel::Qemu, PolicyConfig::limit_scan_rate());
    assert_eq!(e.iteration_wait_max(), ms(1000));
    let e = engine(4, ServiceModel::Qemu, PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()));
    assert_eq!(e.iteration_wait_max(), ms(1000));
    let e = engine(4, ServiceModel::Qemu, PolicyConfig::None);
    assert_eq!(e.iteration_wait_max(), ms(50));
}

// ---- Bandwidth policy ----

#[test]
fn bandwidth_caps_stream_bytes_per_slice_but_not_faults() {
    // 100 pages of stream bytes per second: 10 pages per 100 ms slice.
    let policy = PolicyConfig::Bandwidth(BandwidthParams::new(100 * PAGE));
    let mut e = engine(1000, ServiceModel::Decoupled, policy);
    let mut now = Nanos::ZERO;
    let mut scan_pages = 0;
    while now < Nanos::from_secs(1) {
        match e.poll_capture(now, Lane::Scan) {
            Some(c) => {
                let pages = c.run().count;
                scan_pages += pages;
                let _ = complete(&mut e, now, c);
                e.handle_stream_bytes(now, pages * PAGE);
                e.handle_sink_drained(now, pages).expect("staged");
                drain(&mut e);
            }
            None => {
                let next = e.poll_timeout().expect("paced scan sets a timeout");
                assert!(next > now);
                now = next;
                e.handle_timeout(now);
            }
        }
    }
    // Ten slices of 10 pages each.
    assert_eq!(scan_pages, 100);
    // A fault is served at once with the slice used up.
    e.handle_fault(now, PageIndex(999)).expect("in region");
    let c = e.poll_capture(now, Lane::Fault).expect("fault is exempt");
    assert_eq!(c.cause(), Cause::Fault);
    let _ = c;
}

#[test]
fn zero_pages_cost_the_bandwidth_limit_only_their_header() {
    let policy = PolicyConfig::Bandwidth(BandwidthParams::new(100 * PAGE));
    let mut e = engine(1000, ServiceModel::Decoupled, policy);
    let mut pages = 0;
    // All-zero pages: 8 bytes of record header each.
    while let Some(c) = e.poll_capture(Nanos(0), Lane::Scan) {
        let n = c.run().count;
        pages += n;
        let _ = complete(&mut e, Nanos(0), c);
        e.handle_stream_bytes(Nanos(0), n * 8);
        e.handle_sink_drained(Nanos(0), n).expect("staged");
        drain(&mut e);
        if pages > 1000 {
            break;
        }
    }
    assert_eq!(pages, 1000, "a slice of 10 pages' bytes carries 1000 zero pages");
}

// ---- QEMU's iteration end: the thread sleeps out the rate limit ----

#[test]
fn qemu_iteration_end_sleeps_out_the_bandwidth_slice_and_reads_no_fault() {
    // 2 pages per 100 ms slice.
    let policy = PolicyConfig::Bandwidth(BandwidthParams::new(20 * PAGE));
    let mut e = engine(100, ServiceModel::Qemu, policy);
    for (i, at) in [Nanos(0), Nanos(10)].into_iter().enumerate() {
        let c = e.poll_capture(at, Lane::Single).expect("scan");
        e.handle_stream_bytes(at, PAGE);
        let actions = complete(&mut e, at, c);
        if i == 0 {
            assert_eq!(actions.len(), 1, "slice not used up: no iteration end");
        } else {
            assert!(matches!(actions[1], Action::IterationEnd(_)), "{actions:?}");
        }
    }
    assert_eq!(e.lane_asleep_until(Lane::Single, Nanos(11)), Some(ms(100)));
    assert_eq!(e.poll_timeout(), Some(ms(100)));
    // A fault read meanwhile (a driver should not read one) waits for the sleep to end.
    e.handle_fault(Nanos(20), PageIndex(90)).expect("in region");
    assert!(e.poll_capture(ms(50), Lane::Single).is_none(), "asleep: not even a fault");
    e.handle_timeout(ms(100));
    let c = e.poll_capture(ms(100), Lane::Single).expect("awake");
    assert_eq!(c.cause(), Cause::Fault);
    assert_eq!(e.stats().iteration_sleeps, 1);
    assert_eq!(e.stats().iteration_sleep_ns, ms(100).as_ns() - 10);
    let _ = c;
}

#[test]
fn without_a_rate_limit_an_iteration_end_does_not_sleep() {
    let mut config = EngineConfig::new(PAGE, 200, ServiceModel::Qemu, PolicyConfig::None);
    config.iteration_mode = Some(IterationMode::Ordinary);
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let mut now = Nanos::ZERO;
    let mut ends = 0;
    while let Some(c) = e.poll_capture(now, Lane::Single) {
        now = now + ms(1);
        for action in complete(&mut e, now, c) {
            if matches!(action, Action::IterationEnd(_)) {
                ends += 1;
                assert_eq!(e.lane_asleep_until(Lane::Single, now), None);
            }
        }
    }
    assert_eq!(ends, 3);
    assert_eq!(e.stats().iteration_sleeps, 0);
}

// ---- Capture units (huge pages) and unprotect runs ----

#[test]
fn capture_units_take_whole_aligned_units_for_scan_and_fault() {
    // 4 units of 8 pages plus a partial unit of 3 at the end.
    let mut config = EngineConfig::new(PAGE, 35, ServiceModel::Decoupled, PolicyConfig::None);
    config.capture_unit_pages = 8;
    config.scan_batch_pages = 12; // rounded down to one unit
    config.budget_pages = 64;
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    assert_eq!(e.handle_fault(Nanos(1), PageIndex(19)), Ok(FaultOutcome::Queued));
    // Another page of the same unit is already in progress.
    assert_eq!(e.handle_fault(Nanos(2), PageIndex(23)), Ok(FaultOutcome::AlreadyInProgress));
    let f = e.poll_capture(Nanos(3), Lane::Fault).expect("fault");
    assert_eq!(f.run(), PageRun { first: PageIndex(16), count: 8 });
    assert_eq!(complete(&mut e, Nanos(4), f), vec![Action::Unprotect(PageRun { first: PageIndex(16), count: 8 })]);
    let mut runs = Vec::new();
    while let Some(c) = e.poll_capture(Nanos(5), Lane::Scan) {
        runs.push(c.run());
        let actions = complete(&mut e, Nanos(5), c);
        assert_eq!(actions[0], Action::Unprotect(*runs.last().expect("pushed")), "one unprotect per run");
    }
    // The cursor followed the fault to page 24; every run starts on a unit boundary.
    let firsts: Vec<(u64, u64)> = runs.iter().map(|r| (r.first.0, r.count)).collect();
    assert_eq!(firsts, vec![(24, 8), (32, 3), (0, 8), (8, 8)]);
    // A fault on a saved unit only wakes the faulting page.
    assert_eq!(e.handle_fault(Nanos(6), PageIndex(33)), Ok(FaultOutcome::AlreadySaved));
    assert_eq!(drain(&mut e), vec![Action::Wake(PageIndex(33))]);
}

#[test]
fn a_scan_run_is_one_unprotect_and_adjacent_runs_coalesce() {
    let mut config = EngineConfig::new(PAGE, 64, ServiceModel::Qemu, PolicyConfig::None);
    config.scan_batch_pages = 32;
    let mut e = Engine::new(config, Nanos::ZERO).expect("valid");
    let c = e.poll_capture(Nanos(0), Lane::Single).expect("scan");
    assert_eq!(complete(&mut e, Nanos(1), c), vec![Action::Unprotect(PageRun { first: PageIndex(0), count: 32 })]);
    let mut actions = vec![
        Action::Unprotect(PageRun { first: PageIndex(0), count: 4 }),
        Action::Unprotect(PageRun { first: PageIndex(4), count: 2 }),
        Action::Unprotect(PageRun { first: PageIndex(9), count: 1 }),
        Action::Wake(PageIndex(3)),
        Action::Unprotect(PageRun { first: PageIndex(10), count: 1 }),
    ];
    wpsnap_core::coalesce_unprotects(&mut actions);
    assert_eq!(
        actions,
        vec![
            Action::Unprotect(PageRun { first: PageIndex(0), count: 6 }),
            Action::Unprotect(PageRun { first: PageIndex(9), count: 1 }),
            Action::Wake(PageIndex(3)),
            Action::Unprotect(PageRun { first: PageIndex(10), count: 1 }),
        ]
    );
}

#[test]
fn budget_and_units_are_validated_naming_the_field() {
    let mut config = EngineConfig::new(PAGE, 64, ServiceModel::Decoupled, PolicyConfig::None);
    config.capture_unit_pages = 3;
    assert_eq!(Engine::new(config.clone(), Nanos::ZERO).map(|_| ()).expect_err("invalid").field, "capture_unit_pages");
    config.capture_unit_pages = 8;
    config.budget_pages = 4;
    assert_eq!(Engine::new(config.clone(), Nanos::ZERO).map(|_| ()).expect_err("invalid").field, "budget_pages");
    config.budget_pages = 8;
    config.scan_high_water_percent = 95;
    assert_eq!(Engine::new(config, Nanos::ZERO).map(|_| ()).expect_err("invalid").field, "scan_high_water_percent");
}
