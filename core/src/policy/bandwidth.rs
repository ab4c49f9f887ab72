//! A token bucket on scan pages, like QEMU's `max-bandwidth`; faults do not take tokens.

use super::{BandwidthParams, Gate, Observation, ThrottlePolicy, TokenBucket};
use crate::time::Nanos;

#[derive(Debug)]
pub struct BandwidthPolicy {
    bucket: TokenBucket,
}

impl BandwidthPolicy {
    pub fn new(params: BandwidthParams, page_size: u64) -> BandwidthPolicy {
        let pages_per_sec = (params.bytes_per_sec / page_size).max(1);
        let burst_pages = (params.burst_bytes / page_size).max(1);
        BandwidthPolicy { bucket: TokenBucket::new(pages_per_sec, burst_pages, Nanos::ZERO) }
    }
}

impl ThrottlePolicy for BandwidthPolicy {
    fn observe(&mut self, now: Nanos, observation: Observation) {
        if let Observation::ScanStarted { pages } = observation {
            self.bucket.take(now, pages);
        }
    }

    fn scan_gate(&mut self, now: Nanos) -> Gate {
        match self.bucket.available(now) {
            Ok(pages_max) => Gate::Open { pages_max },
            Err(until) => Gate::Closed { until: Some(until) },
        }
    }
}
