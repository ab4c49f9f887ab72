//! The policy `limit-scan-rate` (the 2020 patch's `limit_scan_rate()`) with the patch's own constants: 5 ms threshold, 5 ms poll, 200 pages.

use wpsnap_core::policy::LimitScanRateParams;
use wpsnap_core::{Action, Capture, Cause, Engine, EngineConfig, Lane, Nanos, PageIndex, PolicyConfig, ServiceModel};

fn engine(policy: PolicyConfig) -> Engine {
    Engine::new(EngineConfig::new(4096, 10_000, ServiceModel::Qemu, policy), Nanos::ZERO).expect("valid")
}

fn complete(e: &mut Engine, now: Nanos, c: Capture) -> Vec<Action> {
    e.handle_captured(now, c).expect("in flight");
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// Serves one fault whose capture takes `save_time` (the seed's measured latency).
fn slow_fault(e: &mut Engine, now: Nanos, page: u64, save_time: Nanos) -> Nanos {
    e.handle_fault(now, PageIndex(page)).expect("in region");
    let c = e.poll_capture(now, Lane::Single).expect("fault first");
    assert_eq!(c.cause(), Cause::Fault);
    let done = now + save_time;
    let _ = complete(e, done, c);
    done
}

/// Scans with instant captures until `pages` scan pages are saved; returns the start time of
/// each and the time reached.
fn scan(e: &mut Engine, mut now: Nanos, pages: usize) -> (Vec<Nanos>, Nanos) {
    let mut starts = Vec::new();
    while starts.len() < pages {
        match e.poll_capture(now, Lane::Single) {
            Some(c) => {
                assert_eq!(c.cause(), Cause::Scan);
                starts.push(now);
                let _ = complete(e, now, c);
            }
            None => {
                now = e.poll_timeout().expect("a throttled scan has a timeout");
                e.handle_timeout(now);
            }
        }
    }
    (starts, now)
}

fn gaps(starts: &[Nanos], from: Nanos) -> Vec<Nanos> {
    let mut prev = from;
    starts
        .iter()
        .map(|&t| {
            let gap = t - prev;
            prev = t;
            gap
        })
        .collect()
}

#[test]
fn a_6ms_fault_makes_the_next_200_pages_wait_5ms_each() {
    let mut e = engine(PolicyConfig::limit_scan_rate());
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(6));
    let (starts, _) = scan(&mut e, t, 260);
    let gaps = gaps(&starts, t);
    // The fault's own save and the first 199 scan pages each arm a 5 ms poll: 200 in all.
    assert!(gaps[..200].iter().all(|&g| g == Nanos::from_ms(5)), "{:?}", &gaps[..3]);
    assert!(gaps[200..].iter().all(|&g| g == Nanos::ZERO), "unthrottled after 200 pages");
    assert!(e.stats().throttled_ns >= Nanos::from_ms(999).as_ns());
}

#[test]
fn a_4ms_fault_does_not_throttle() {
    let mut e = engine(PolicyConfig::limit_scan_rate());
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(4));
    let (starts, _) = scan(&mut e, t, 50);
    assert!(gaps(&starts, t).iter().all(|&g| g == Nanos::ZERO));
    assert_eq!(e.stats().throttled_ns, 0);
}

#[test]
fn exactly_the_threshold_does_not_throttle() {
    // The seed compares with `>`.
    let mut e = engine(PolicyConfig::limit_scan_rate());
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(5));
    let (starts, _) = scan(&mut e, t, 10);
    assert!(gaps(&starts, t).iter().all(|&g| g == Nanos::ZERO));
}

#[test]
fn a_fault_arriving_ends_the_poll_and_is_served_first() {
    let mut e = engine(PolicyConfig::limit_scan_rate());
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(6));
    assert!(e.poll_capture(t, Lane::Single).is_none(), "throttled");
    assert_eq!(e.poll_timeout(), Some(t + Nanos::from_ms(5)));
    // A fast fault 1 ms into the poll.
    let t2 = t + Nanos::from_ms(1);
    e.handle_fault(t2, PageIndex(10)).expect("in region");
    let c = e.poll_capture(t2, Lane::Single).expect("served at once");
    assert_eq!(c.cause(), Cause::Fault);
    let _ = complete(&mut e, t2 + Nanos::from_us(100), c);
    // The counter was not reset by the fast fault but is still running: the scan polls again.
    assert!(e.poll_capture(t2 + Nanos::from_us(100), Lane::Single).is_none());
    assert_eq!(e.poll_timeout(), Some(t2 + Nanos::from_us(100) + Nanos::from_ms(5)));
}

#[test]
fn every_slow_fault_resets_the_counter_to_200() {
    let mut e = engine(PolicyConfig::limit_scan_rate());
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(6));
    let (_, t) = scan(&mut e, t, 150);
    let t = slow_fault(&mut e, t, 9000, Nanos::from_ms(7));
    let (starts, _) = scan(&mut e, t, 210);
    let gaps = gaps(&starts, t);
    assert!(gaps[..200].iter().all(|&g| g == Nanos::from_ms(5)));
    assert!(gaps[200..].iter().all(|&g| g == Nanos::ZERO));
}

#[test]
fn the_seed_measure_misses_time_the_fault_spent_unread() {
    // A writer waited 40 ms (the fault sat unread behind a slow stream write) but the page was
    // saved 1 ms after the event was read: the seed's measure sees 1 ms and does not throttle.
    let mut e = engine(PolicyConfig::limit_scan_rate());
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(1));
    e.handle_fault_wait(t, Nanos::from_ms(40));
    let (starts, _) = scan(&mut e, t, 5);
    assert!(gaps(&starts, t).iter().all(|&g| g == Nanos::ZERO));
    assert_eq!(e.seed_latency().summary().log2_ms.counts[0], 1);
    assert_eq!(e.fault_wait().table().at_least_ms(32), 1);
}

#[test]
fn limit_scan_rate_true_latency_throttles_on_the_real_wait() {
    let mut e = engine(PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()));
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(1));
    e.handle_fault_wait(t, Nanos::from_ms(40));
    // The real wait is acted on after the next saved page, as the seed acts on its measure.
    let (starts, _) = scan(&mut e, t, 202);
    let gaps = gaps(&starts, t);
    assert_eq!(gaps[0], Nanos::ZERO);
    assert!(gaps[1..201].iter().all(|&g| g == Nanos::from_ms(5)), "{:?}", &gaps[..4]);
    assert_eq!(gaps[201], Nanos::ZERO);
}

#[test]
fn limit_scan_rate_true_latency_ignores_a_slow_seed_measure() {
    let mut e = engine(PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()));
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(6));
    e.handle_fault_wait(t, Nanos::from_ms(2));
    let (starts, _) = scan(&mut e, t, 20);
    assert!(gaps(&starts, t).iter().all(|&g| g == Nanos::ZERO));
}

#[test]
fn limit_scan_rate_true_latency_without_writer_reports_throttles_on_the_driver_measure() {
    let mut e = engine(PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()));
    // No writer reports a wait: the fault's service latency (6 ms) stands in for it.
    let t = slow_fault(&mut e, Nanos::ZERO, 5000, Nanos::from_ms(6));
    let (starts, _) = scan(&mut e, t, 3);
    let gaps = gaps(&starts, t);
    assert_eq!(gaps[0], Nanos::ZERO);
    assert_eq!(gaps[1], Nanos::from_ms(5), "{gaps:?}");
    let report = e.report();
    assert_eq!(report.latency_measure, Some(wpsnap_core::policy::LatencyMeasure::DriverMeasured));
    assert_eq!(report.policy_slowdowns, 1);
}
