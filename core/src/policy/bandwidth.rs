//! QEMU's max-bandwidth rate limit: stream bytes per time slice.
//!
//! QEMU allows `max_bandwidth / XFER_LIMIT_RATIO` bytes per `BUFFER_DELAY` (100 ms) slice;
//! once a slice's bytes are written, `ram_save_iterate` ends its iteration and
//! `migration_rate_limit` sleeps until the slice ends, reading no fault meanwhile. QEMU starts
//! a slice when it next looks after the previous one ended; here slices lie on a fixed grid
//! from time zero (the same while the stream is busy, and the same answer whenever one looks).
//! Every stream byte counts, fault pages' included; a zero page costs its record header only.

use super::{BandwidthParams, Gate, Observation, ThrottlePolicy};
use crate::time::Nanos;

#[derive(Debug)]
pub struct BandwidthPolicy {
    slice_ns: u64,
    slice_bytes_max: u64,
    page_size: u64,
    slice_start: Nanos,
    slice_bytes: u64,
}

impl BandwidthPolicy {
    pub fn new(params: BandwidthParams, page_size: u64) -> BandwidthPolicy {
        let slice_bytes_max = (params.bytes_per_sec as u128 * params.slice_ns as u128 / 1_000_000_000) as u64;
        BandwidthPolicy {
            slice_ns: params.slice_ns,
            slice_bytes_max: slice_bytes_max.max(1),
            page_size,
            slice_start: Nanos::ZERO,
            slice_bytes: 0,
        }
    }

    fn roll(&mut self, now: Nanos) {
        if now >= self.slice_end() {
            self.slice_start = Nanos(now.as_ns() / self.slice_ns * self.slice_ns);
            self.slice_bytes = 0;
        }
    }

    fn slice_end(&self) -> Nanos {
        self.slice_start + Nanos(self.slice_ns)
    }

    /// Bytes charged to the current slice.
    pub fn slice_bytes(&self) -> u64 {
        self.slice_bytes
    }
}

impl ThrottlePolicy for BandwidthPolicy {
    fn observe(&mut self, now: Nanos, observation: Observation) {
        if let Observation::StreamBytes { bytes } = observation {
            self.roll(now);
            self.slice_bytes += bytes;
        }
    }

    fn scan_gate(&mut self, now: Nanos) -> Gate {
        self.roll(now);
        match self.slice_bytes_max.checked_sub(self.slice_bytes) {
            Some(left) if left > 0 => Gate::Open { pages_max: (left / self.page_size).max(1) },
            _ => Gate::Closed { until: Some(self.slice_end()) },
        }
    }

    fn rate_limited_until(&mut self, now: Nanos) -> Option<Nanos> {
        self.roll(now);
        (self.slice_bytes >= self.slice_bytes_max).then(|| self.slice_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_up_slice_closes_the_gate_until_it_ends() {
        // 10 MB/s: 1 MB per 100 ms slice.
        let mut p = BandwidthPolicy::new(BandwidthParams::new(10_000_000), 4096);
        assert_eq!(p.scan_gate(Nanos::ZERO), Gate::Open { pages_max: 1_000_000 / 4096 });
        p.observe(Nanos::from_ms(1), Observation::StreamBytes { bytes: 999_999 });
        assert_eq!(p.scan_gate(Nanos::from_ms(2)), Gate::Open { pages_max: 1 });
        assert_eq!(p.rate_limited_until(Nanos::from_ms(2)), None);
        p.observe(Nanos::from_ms(3), Observation::StreamBytes { bytes: 1 });
        assert_eq!(p.scan_gate(Nanos::from_ms(4)), Gate::Closed { until: Some(Nanos::from_ms(100)) });
        assert_eq!(p.rate_limited_until(Nanos::from_ms(4)), Some(Nanos::from_ms(100)));
        // The next slice is the grid's: 100..200 ms.
        assert_eq!(p.rate_limited_until(Nanos::from_ms(130)), None);
        assert_eq!(p.slice_bytes(), 0);
        p.observe(Nanos::from_ms(131), Observation::StreamBytes { bytes: 2_000_000 });
        assert_eq!(p.rate_limited_until(Nanos::from_ms(150)), Some(Nanos::from_ms(200)));
    }

    #[test]
    fn scan_starts_are_not_charged_only_stream_bytes_are() {
        let mut p = BandwidthPolicy::new(BandwidthParams::new(40_960), 4096);
        // 4096 bytes per slice: zero pages (an 8-byte header each in the stream) barely count.
        p.observe(Nanos::ZERO, Observation::ScanStarted { pages: 100 });
        p.observe(Nanos::ZERO, Observation::StreamBytes { bytes: 100 * 8 });
        assert_eq!(p.scan_gate(Nanos::ZERO), Gate::Open { pages_max: 1 });
    }
}
