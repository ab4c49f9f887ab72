//! `latency-target`: an AIMD controller that paces the scan to keep fault waits under a target.
//!
//! The rule (also in docs/policies.md):
//! 1. Start unpaced: the scan runs as fast as the service model lets it.
//! 2. Judge every `window_ns`: the window is *violated* if more than 1% of the fault waits seen
//!    in it exceeded `target_p99_ns` (with fewer than 100 waits, any one over target violates).
//! 3. On a violation, halve the scan rate (from the rate the scan actually achieved in the
//!    window when it was unpaced), never below `rate_min_pages_per_sec`.
//! 4. After a clean window, raise the paced rate by a quarter; once it exceeds twice what the
//!    scan achieved unpaced, drop pacing altogether.
//!
//! It listens to the writers' real waits when the driver reports them. Until it has seen a real
//! wait it uses what the driver measures itself, so it works with writers that do not time
//! themselves: the service latency (event read to unprotect) of every served fault, and the age
//! of the oldest fault still queued (a writer blocked that long), which counts as one wait over
//! target whenever it exceeds the target. The report says which measure drove it
//! ([`LatencyMeasure`]).

use super::{Gate, LatencyMeasure, LatencyTargetParams, Observation, ThrottlePolicy, TokenBucket};
use crate::time::Nanos;

#[derive(Debug)]
pub struct LatencyTargetPolicy {
    params: LatencyTargetParams,
    /// `None` while unpaced.
    bucket: Option<TokenBucket>,
    /// Highest rate the scan reached while unpaced, in pages per second.
    unpaced_rate_seen: u64,
    window_start: Nanos,
    window_waits: u64,
    window_over: u64,
    window_scan_pages: u64,
    true_waits_seen: bool,
    driver_measures_seen: bool,
    /// Times the controller lowered / raised the rate, for reports.
    pub decreases: u64,
    pub increases: u64,
}

impl LatencyTargetPolicy {
    pub fn new(params: LatencyTargetParams) -> LatencyTargetPolicy {
        LatencyTargetPolicy {
            params,
            bucket: None,
            unpaced_rate_seen: 0,
            window_start: Nanos::ZERO,
            window_waits: 0,
            window_over: 0,
            window_scan_pages: 0,
            true_waits_seen: false,
            driver_measures_seen: false,
            decreases: 0,
            increases: 0,
        }
    }

    /// Current scan rate in pages per second; `None` while unpaced.
    pub fn rate_pages_per_sec(&self) -> Option<u64> {
        self.bucket.as_ref().map(TokenBucket::pages_per_sec)
    }

    fn record_wait(&mut self, wait: Nanos) {
        self.window_waits += 1;
        if wait.as_ns() > self.params.target_p99_ns {
            self.window_over += 1;
        }
    }

    fn judge_windows(&mut self, now: Nanos) {
        let window = Nanos(self.params.window_ns);
        if now < self.window_start + window {
            return;
        }
        let elapsed = now.saturating_since(self.window_start).as_ns().max(1);
        let achieved = (self.window_scan_pages as u128 * 1_000_000_000 / elapsed as u128) as u64;
        let violated = self.window_over * 100 > self.window_waits;
        let rate_min = self.params.rate_min_pages_per_sec;
        match (&mut self.bucket, violated) {
            (None, false) => self.unpaced_rate_seen = self.unpaced_rate_seen.max(achieved),
            (None, true) => {
                self.unpaced_rate_seen = self.unpaced_rate_seen.max(achieved);
                let from = achieved.max(self.unpaced_rate_seen).max(rate_min);
                self.bucket = Some(TokenBucket::new((from / 2).max(rate_min), self.params.burst_pages, now));
                self.decreases += 1;
            }
            (Some(bucket), true) => {
                let rate = (bucket.pages_per_sec() / 2).max(rate_min);
                bucket.set_rate(now, rate);
                self.decreases += 1;
            }
            (Some(bucket), false) => {
                let rate = bucket.pages_per_sec().saturating_add(bucket.pages_per_sec() / 4).max(rate_min + 1);
                if self.unpaced_rate_seen > 0 && rate > self.unpaced_rate_seen.saturating_mul(2) {
                    self.bucket = None;
                } else {
                    bucket.set_rate(now, rate);
                }
                self.increases += 1;
            }
        }
        self.window_start = now;
        self.window_waits = 0;
        self.window_over = 0;
        self.window_scan_pages = 0;
    }
}

impl ThrottlePolicy for LatencyTargetPolicy {
    fn observe(&mut self, now: Nanos, observation: Observation) {
        self.judge_windows(now);
        match observation {
            Observation::FaultWait(wait) => {
                self.true_waits_seen = true;
                self.record_wait(wait);
            }
            Observation::ServiceLatency(latency) if !self.true_waits_seen => {
                self.driver_measures_seen = true;
                self.record_wait(latency);
            }
            // Only an age over target is evidence: a young queued fault may still be served fast.
            Observation::FaultQueueAge(age) if !self.true_waits_seen && age.as_ns() > self.params.target_p99_ns => {
                self.driver_measures_seen = true;
                self.record_wait(age);
            }
            Observation::ScanStarted { pages } => {
                self.window_scan_pages += pages;
                if let Some(bucket) = &mut self.bucket {
                    bucket.take(now, pages);
                }
            }
            _ => {}
        }
    }

    fn latency_measure(&self) -> Option<LatencyMeasure> {
        if self.true_waits_seen {
            Some(LatencyMeasure::WriterReported)
        } else if self.driver_measures_seen {
            Some(LatencyMeasure::DriverMeasured)
        } else {
            None
        }
    }

    fn slowdowns(&self) -> u64 {
        self.decreases
    }

    fn scan_gate(&mut self, now: Nanos) -> Gate {
        self.judge_windows(now);
        let Some(bucket) = &mut self.bucket else {
            return Gate::Open { pages_max: u64::MAX };
        };
        let window_end = self.window_start + Nanos(self.params.window_ns);
        match bucket.available(now) {
            Ok(pages_max) => Gate::Open { pages_max },
            // Wake at the window end too, so a raise is not missed while the scan waits.
            Err(until) => Gate::Closed { until: Some(until.min(window_end)) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Nanos {
        Nanos(LatencyTargetParams::default().window_ns)
    }

    #[test]
    fn a_slow_window_starts_pacing_at_half_the_achieved_rate() {
        let mut p = LatencyTargetPolicy::new(LatencyTargetParams::default());
        // 1000 scan pages in the first 20 ms: 50,000 pages/s.
        p.observe(Nanos::ZERO, Observation::ScanStarted { pages: 1000 });
        p.observe(Nanos(1), Observation::FaultWait(Nanos::from_ms(3)));
        assert_eq!(p.scan_gate(window()), Gate::Open { pages_max: 16 });
        assert_eq!(p.rate_pages_per_sec(), Some(25_000));
    }

    #[test]
    fn clean_windows_raise_the_rate_until_pacing_ends() {
        let mut p = LatencyTargetPolicy::new(LatencyTargetParams::default());
        p.observe(Nanos::ZERO, Observation::ScanStarted { pages: 1000 });
        p.observe(Nanos(1), Observation::FaultWait(Nanos::from_ms(3)));
        p.scan_gate(window());
        let mut now = window();
        for _ in 0..20 {
            now = now + window();
            p.observe(now, Observation::FaultWait(Nanos::from_us(50)));
        }
        assert_eq!(p.rate_pages_per_sec(), None, "back to unpaced after clean windows");
        assert!(p.increases > 0 && p.decreases == 1);
    }

    #[test]
    fn one_percent_over_target_is_tolerated() {
        let mut p = LatencyTargetPolicy::new(LatencyTargetParams::default());
        for i in 0..200 {
            let wait = if i < 2 { Nanos::from_ms(2) } else { Nanos::from_us(10) };
            p.observe(Nanos(i), Observation::FaultWait(wait));
        }
        p.scan_gate(window());
        assert_eq!(p.rate_pages_per_sec(), None);
    }

    #[test]
    fn without_writer_waits_the_driver_measures_drive_it_and_a_stuck_fault_slows_the_scan() {
        let mut p = LatencyTargetPolicy::new(LatencyTargetParams::default());
        assert_eq!(p.latency_measure(), None);
        p.observe(Nanos::ZERO, Observation::ScanStarted { pages: 1000 });
        // A young queued fault says nothing; one queued past the target is a wait over it.
        p.observe(Nanos(1), Observation::FaultQueueAge(Nanos::from_us(10)));
        assert_eq!(p.latency_measure(), None);
        p.observe(Nanos(2), Observation::FaultQueueAge(Nanos::from_ms(5)));
        assert_eq!(p.latency_measure(), Some(LatencyMeasure::DriverMeasured));
        p.scan_gate(window());
        assert_eq!(p.slowdowns(), 1);
        assert!(p.rate_pages_per_sec().is_some());
        // Once a writer reports, its waits take over.
        p.observe(window() + Nanos(1), Observation::FaultWait(Nanos::from_us(5)));
        assert_eq!(p.latency_measure(), Some(LatencyMeasure::WriterReported));
    }

    #[test]
    fn rate_never_drops_below_the_minimum() {
        let params = LatencyTargetParams::default();
        let mut p = LatencyTargetPolicy::new(params);
        let mut now = Nanos::ZERO;
        for _ in 0..64 {
            p.observe(now, Observation::FaultWait(Nanos::from_ms(10)));
            now = now + window();
            p.scan_gate(now);
        }
        assert_eq!(p.rate_pages_per_sec(), Some(params.rate_min_pages_per_sec));
    }
}
