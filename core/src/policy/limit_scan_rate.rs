//! The policy `limit-scan-rate`: the 2020 patch's `limit_scan_rate()`, rule for rule (the
//! patch this project calls "the seed"; the policy is named after its function so that "seed"
//! is left to the random seed).
//!
//! After every saved page: if the latency measured since the last fault event read is over
//! `slow_fault_ns`, the counter is reset to `throttle_pages`. While the counter is above zero,
//! the scan waits up to `poll_timeout_ns` for a fault event (one arriving ends the wait and is
//! served first) and the counter drops by one. The net effect is at most one scan page per
//! poll timeout for the next `throttle_pages` saved pages after each slow fault.

use super::{Gate, LimitScanRateParams, Observation, ThrottlePolicy};
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
}

impl LimitScanRatePolicy {
    /// The rule with `params`, fed by `source`.
    pub fn new(params: LimitScanRateParams, source: LatencySource) -> LimitScanRatePolicy {
        LimitScanRatePolicy { params, source, counter: 0, slow_wait_reported: false, poll_until: None }
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
                }
                if self.counter > 0 {
                    self.poll_until = Some(now + Nanos(self.params.poll_timeout_ns));
                    self.counter -= 1;
                } else {
                    self.poll_until = None;
                }
            }
            Observation::ServiceLatency(_) | Observation::ScanStarted { .. } => {}
        }
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
