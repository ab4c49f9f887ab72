//! Fault-wait recording: an HDR histogram plus the seed author's log2-millisecond table.
//!
//! The table's buckets are the ones published on qemu-devel in December 2020 (0-1, 2-3, 4-7,
//! ... 128-255 ms), so a wpsnap figure can be put next to the seed's figures unchanged.

use crate::time::Nanos;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency the histogram resolves; larger values are clamped to it (and counted).
pub const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// Significant decimal digits the histogram keeps (0.1% relative error).
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;

/// Number of log2-ms buckets: 8 bounded ones and one for 256 ms and more.
pub const LOG2_MS_BUCKETS: usize = 9;

/// The seed's bucket table: counts of latencies by whole milliseconds, in log2 steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log2MsTable {
    pub counts: [u64; LOG2_MS_BUCKETS],
}

impl Log2MsTable {
    /// Labels in the seed's own notation.
    pub const LABELS: [&'static str; LOG2_MS_BUCKETS] =
        ["0-1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", ">=256"];

    /// The bucket a latency falls in: whole milliseconds, 0-1 first, then one per power of two.
    pub fn bucket(latency: Nanos) -> usize {
        let ms = latency.as_ns() / 1_000_000;
        if ms < 2 { 0 } else { (ms.ilog2() as usize).min(LOG2_MS_BUCKETS - 1) }
    }

    pub fn record(&mut self, latency: Nanos) {
        self.counts[Self::bucket(latency)] += 1;
    }

    /// Count of latencies of at least `ms` milliseconds, where `ms` is a bucket boundary
    /// (2, 4, 8, 16, ...): the seed's ">= 8 ms" and ">= 16 ms" figures.
    pub fn at_least_ms(&self, ms: u64) -> u64 {
        let first = Self::bucket(Nanos::from_ms(ms));
        self.counts[first..].iter().sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Summary of a latency distribution, for reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Values above [`LATENCY_NS_MAX`], recorded as that maximum.
    pub clamped: u64,
    pub log2_ms: Log2MsTable,
}

/// Records latencies into an HDR histogram and a [`Log2MsTable`].
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    table: Log2MsTable,
    clamped: u64,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        let histogram = Histogram::new_with_bounds(1, LATENCY_NS_MAX, HISTOGRAM_SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        LatencyRecorder { histogram, table: Log2MsTable::default(), clamped: 0 }
    }

    pub fn record(&mut self, latency: Nanos) {
        let ns = latency.as_ns();
        if ns > LATENCY_NS_MAX {
            self.clamped += 1;
        }
        // The histogram cannot record 0; 1 ns is below any resolution that matters here.
        self.histogram.saturating_record(ns.clamp(1, LATENCY_NS_MAX));
        self.table.record(latency);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn table(&self) -> &Log2MsTable {
        &self.table
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// The value at `quantile` (0.0..=1.0), or zero if nothing was recorded.
    pub fn quantile(&self, quantile: f64) -> Nanos {
        if self.histogram.is_empty() {
            return Nanos::ZERO;
        }
        Nanos(self.histogram.value_at_quantile(quantile))
    }

    /// Adds another recorder's values (per-writer recorders merged into one).
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        for (mine, theirs) in self.table.counts.iter_mut().zip(other.table.counts) {
            *mine += theirs;
        }
        self.clamped += other.clamped;
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            clamped: self.clamped,
            log2_ms: self.table,
        }
    }

    /// (value_ns, count) for every distinct recorded bucket of the histogram, for plots and
    /// for reports that keep the whole distribution.
    pub fn recorded(&self) -> Vec<(u64, u64)> {
        self.histogram.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_seed_table() {
        let cases = [
            (0, 0),
            (1_999_999, 0),
            (2_000_000, 1),
            (3_999_999, 1),
            (4_000_000, 2),
            (7_999_999, 2),
            (8_000_000, 3),
            (16_000_000, 4),
            (32_000_000, 5),
            (64_000_000, 6),
            (128_000_000, 7),
            (255_999_999, 7),
            (256_000_000, 8),
            (10_000_000_000, 8),
        ];
        for (ns, bucket) in cases {
            assert_eq!(Log2MsTable::bucket(Nanos(ns)), bucket, "{ns} ns");
        }
    }

    #[test]
    fn at_least_counts_the_tail() {
        let mut t = Log2MsTable::default();
        for ms in [1, 3, 9, 17, 20, 300] {
            t.record(Nanos::from_ms(ms));
        }
        assert_eq!(t.at_least_ms(8), 4);
        assert_eq!(t.at_least_ms(16), 3);
        assert_eq!(t.total(), 6);
    }

    #[test]
    fn recorder_summarises_and_merges() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        for us in 1..=100 {
            a.record(Nanos::from_us(us));
        }
        b.record(Nanos::from_ms(20));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 101);
        assert!(s.p50_ns >= 49_000 && s.p50_ns <= 52_000, "{}", s.p50_ns);
        assert!(s.max_ns >= 19_990_000);
        assert_eq!(s.log2_ms.at_least_ms(16), 1);
    }

    #[test]
    fn zero_and_huge_values_are_kept_not_lost() {
        let mut r = LatencyRecorder::new();
        r.record(Nanos::ZERO);
        r.record(Nanos(u64::MAX));
        let s = r.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.clamped, 1);
    }
}
