//! The policy `limit-scan-rate`: the 2020 patch's `limit_scan_rate()`, rule for rule (the
//! patch this project calls "the seed"; the policy is named after its function so that "seed"
//! is left to the random seed).
//!
//! After every saved page: if the latency measured since the last fault event read is over
//! `slow_fault_ns`, the counter is reset to `throttle_pages`. While the counter is above zero,
//! the scan waits up to `poll_timeout_ns` for a fault event (one arriving ends the wait and is
//! served first) and the counter drops by one. The net effect is at most one scan page per
//! poll timeout for the next `throttle_pages` saved pages after each slow fault.

use super::{Gate, LatencyMeasure, LimitScanRateParams, Observation, ThrottlePolicy};
use crate::time::Nanos;

/// Which latency feeds the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencySource {
    /// The patch's: from reading the fault event to the next page saved. It misses the time
    /// the fault spent unread while the single thread was busy writing, which is why it was
    /// dropped.
    PatchMeasure,
    /// What the reviewers asked for: the writer's real wait.
    TrueWait,
}

/// `limit-scan-rate` (fed by [`LatencySource::PatchMeasure`]) and
/// `limit-scan-rate-true-latency` (fed by [`LatencySource::TrueWait`]).
#[derive(Debug)]
pub struct LimitScanRatePolicy {
    params: LimitScanRateParams,
    source: LatencySource,
    /// `throttle_skip_counter`.
    counter: u32,
    /// A real wait over the threshold was reported and has not been acted on yet.
    slow_wait_reported: bool,
    /// The current poll's deadline: the scan may not start a page before it.
    poll_until: Option<Nanos>,
    /// A writer reported a real wait (the true-latency variant then uses only those).
    true_waits_seen: bool,
    /// The true-latency variant used the driver's measures (no writer reported yet).
    driver_measures_seen: bool,
    /// The driver measured a slow fault (no writer reports yet), to act on after the next
    /// saved page.
    slow_measured: bool,
    /// Times a slow fault restarted the throttle.
    slowdowns: u64,
}

impl LimitScanRatePolicy {
    /// The rule with `params`, fed by `source`.
    pub fn new(params: LimitScanRateParams, source: LatencySource) -> LimitScanRatePolicy {
        LimitScanRatePolicy {
            params,
            source,
            counter: 0,
            slow_wait_reported: false,
            poll_until: None,
            true_waits_seen: false,
            driver_measures_seen: false,
            slow_measured: false,
            slowdowns: 0,
        }
    }

    /// Pages still to be throttled.
    pub fn counter(&self) -> u32 {
        self.counter
    }
}

impl ThrottlePolicy for LimitScanRatePolicy {
    fn observe(&mut self, now: Nanos, observation: Observation) {
        match observation {
            // uffd_poll_events() returns as soon as a fault event is there.
            Observation::FaultRead => self.poll_until = None,
            Observation::FaultWait(wait) => {
                if !self.true_waits_seen {
                    // The first real wait: a slow flag raised by the driver's stand-in measure
                    // gives way to what the writer says.
                    self.slow_wait_reported = false;
                    self.slow_measured = false;
                    self.true_waits_seen = true;
                }
                if self.source == LatencySource::TrueWait && wait.as_ns() > self.params.slow_fault_ns {
                    self.slow_wait_reported = true;
                }
            }
            Observation::Captured { seed_latency, .. } => {
                let slow = match self.source {
                    LatencySource::PatchMeasure => seed_latency.is_some_and(|l| l.as_ns() > self.params.slow_fault_ns),
                    LatencySource::TrueWait => std::mem::take(&mut self.slow_wait_reported),
                };
                if slow {
                    self.counter = self.params.throttle_pages;
                    self.slowdowns += 1;
                }
                // The driver's stand-in is acted on after the next saved page, as a real wait
                // reported for this capture would be.
                if self.source == LatencySource::TrueWait && !self.true_waits_seen {
                    self.slow_wait_reported |= std::mem::take(&mut self.slow_measured);
                }
                if self.counter > 0 {
                    self.poll_until = Some(now + Nanos(self.params.poll_timeout_ns));
                    self.counter -= 1;
                } else {
                    self.poll_until = None;
                }
            }
            // Without writer reports, the driver's measures stand in for the true waits.
            Observation::ServiceLatency(l) | Observation::FaultQueueAge(l)
                if self.source == LatencySource::TrueWait && !self.true_waits_seen =>
            {
                if l.as_ns() > self.params.slow_fault_ns {
                    self.slow_measured = true;
                }
                self.driver_measures_seen = true;
            }
            Observation::ServiceLatency(_)
            | Observation::FaultQueueAge(_)
            | Observation::ScanStarted { .. }
            | Observation::StreamBytes { .. } => {}
        }
    }

    fn latency_measure(&self) -> Option<LatencyMeasure> {
        match self.source {
            // The patch's own measure: event read to the next page saved, taken by the driver.
            LatencySource::PatchMeasure => Some(LatencyMeasure::DriverMeasured),
            LatencySource::TrueWait if self.true_waits_seen => Some(LatencyMeasure::WriterReported),
            LatencySource::TrueWait if self.driver_measures_seen => Some(LatencyMeasure::DriverMeasured),
            LatencySource::TrueWait => None,
        }
    }

    fn slowdowns(&self) -> u64 {
        self.slowdowns
    }

    fn scan_gate(&mut self, now: Nanos) -> Gate {
        match self.poll_until {
            Some(until) if now < until => Gate::Closed { until: Some(until) },
            _ => {
                self.poll_until = None;
                // The seed saves one host page per loop turn while throttled.
                let pages_max = if self.counter > 0 { 1 } else { u64::MAX };
                Gate::Open { pages_max }
            }
        }
    }
}
