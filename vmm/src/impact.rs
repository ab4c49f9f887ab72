//! What a snapshot did to the guest, from its own stats lines: windows before, during and
//! after, and the time the guest lost.
//!
//! A stats period is taken to cover `[host_ns - period_ns, host_ns]` (host arrival time of its
//! line; the guest prints after the period ends, which shifts it by the printing time, a few to
//! tens of milliseconds, and the time spent printing belongs to no period). "During" takes every period that overlaps the
//! snapshot, so it is whole periods long (0.5 s each by default): compare totals (lost time,
//! counts), not shares, between runs whose snapshots differ in length.

use crate::serial::{HIST_BUCKETS, StatLine};
use serde::{Deserialize, Serialize};

/// Stores taking at least this long count as stall (the guest's STALL_NS).
pub const STALL_NS: u64 = 2000;

/// A stretch of guest stats periods, summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestWindow {
    pub periods: u64,
    /// Sum of the periods' lengths.
    pub window_ns: u64,
    pub stores: u64,
    pub stores_per_sec: f64,
    /// Sum of the store latencies of stores >= 2 us.
    pub stall_ns: u64,
    /// `stall_ns / window_ns`.
    pub blocked_share: f64,
    pub ge1ms: u64,
    pub ge16ms: u64,
    pub max_ns: u64,
    /// Upper bounds of the log2 buckets holding these quantiles.
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    /// Log2 buckets: `hist[b]` counts stores of [2^b, 2^(b+1)) ns.
    pub hist: Vec<u64>,
}

impl GuestWindow {
    /// Sums `periods`.
    pub fn of<'a>(periods: impl IntoIterator<Item = &'a StatLine>) -> GuestWindow {
        let mut w = GuestWindow { hist: vec![0; HIST_BUCKETS], ..Default::default() };
        for p in periods {
            w.periods += 1;
            w.window_ns += p.period_ns;
            w.stores += p.stores;
            w.stall_ns += p.stall_ns;
            w.ge1ms += p.ge1ms;
            w.ge16ms += p.ge16ms;
            w.max_ns = w.max_ns.max(p.max_ns);
            w.hist.iter_mut().zip(&p.hist).for_each(|(a, b)| *a += b);
        }
        if w.window_ns > 0 {
            w.stores_per_sec = w.stores as f64 / (w.window_ns as f64 / 1e9);
            w.blocked_share = w.stall_ns as f64 / w.window_ns as f64;
        }
        w.p50_ns = quantile_upper_ns(&w.hist, 0.5);
        w.p99_ns = quantile_upper_ns(&w.hist, 0.99);
        w.p999_ns = quantile_upper_ns(&w.hist, 0.999);
        w
    }
}

/// The upper bound (2^(b+1) ns) of the bucket holding quantile `q` (0 if empty).
pub fn quantile_upper_ns(hist: &[u64], q: f64) -> u64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, &n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return 1u64 << (b + 1).min(63);
        }
    }
    1u64 << HIST_BUCKETS.min(63)
}

/// The guest's view of one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotImpact {
    /// Periods that ended before the snapshot started (warm-up periods excluded by the caller).
    pub before: GuestWindow,
    /// Periods overlapping the snapshot.
    pub during: GuestWindow,
    /// Periods that started after the snapshot ended.
    pub after: GuestWindow,
    /// The guest's total stall: the "during" window's length minus the time its stores would
    /// have taken at the "before" rate (covers both slow stores and stores not made).
    pub lost_ns: i64,
    /// Stores not made compared with the "before" rate.
    pub stores_missing: i64,
}

/// Splits `stats` around a snapshot that ran over host time `[start_ns, end_ns]` (ns since the
/// VM started, like [`StatLine::host_ns`]); periods ending before `warm_ns` are left out.
pub fn snapshot_impact(stats: &[StatLine], warm_ns: u64, start_ns: u64, end_ns: u64) -> SnapshotImpact {
    let begins = |p: &StatLine| p.host_ns.saturating_sub(p.period_ns);
    let before = GuestWindow::of(stats.iter().filter(|p| p.host_ns >= warm_ns && p.host_ns <= start_ns));
    let during = GuestWindow::of(stats.iter().filter(|p| p.host_ns > start_ns && begins(p) < end_ns));
    let after = GuestWindow::of(stats.iter().filter(|p| begins(p) >= end_ns));
    let expected = before.stores_per_sec * during.window_ns as f64 / 1e9;
    let needed_ns = if before.stores_per_sec > 0.0 { during.stores as f64 / before.stores_per_sec * 1e9 } else { 0.0 };
    SnapshotImpact {
        lost_ns: during.window_ns as i64 - needed_ns as i64,
        stores_missing: expected as i64 - during.stores as i64,
        before,
        during,
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(host_ms: u64, stores: u64, stall_ns: u64, slow_bucket: Option<usize>) -> StatLine {
        let mut hist = vec![0; HIST_BUCKETS];
        hist[3] = stores - u64::from(slow_bucket.is_some());
        if let Some(b) = slow_bucket {
            hist[b] = 1;
        }
        StatLine {
            cpu: 0,
            seq: 0,
            tsc: 0,
            host_ns: host_ms * 1_000_000,
            period_ns: 500_000_000,
            stores,
            stall_ns,
            ge1ms: u64::from(slow_bucket.is_some_and(|b| b >= 20)),
            ge16ms: u64::from(slow_bucket.is_some_and(|b| b >= 24)),
            max_ns: slow_bucket.map_or(10, |b| 1 << b),
            hist,
        }
    }

    #[test]
    fn splits_periods_around_the_snapshot_and_counts_the_loss() {
        let stats = vec![
            period(500, 1000, 0, None),               // warm-up, left out
            period(1000, 1000, 0, None),              // before
            period(1500, 1000, 0, None),              // before
            period(2000, 500, 250_000_000, Some(24)), // during: snapshot 1.6 s .. 1.8 s
            period(2500, 1000, 0, None),              // after
        ];
        let impact = snapshot_impact(&stats, 600_000_000, 1_600_000_000, 1_800_000_000);
        assert_eq!((impact.before.periods, impact.during.periods, impact.after.periods), (2, 1, 1));
        assert_eq!(impact.before.stores_per_sec, 2000.0);
        assert_eq!(impact.during.ge16ms, 1);
        assert_eq!(impact.stores_missing, 500);
        assert_eq!(impact.lost_ns, 250_000_000);
        assert_eq!(impact.during.blocked_share, 0.5);
        assert_eq!(impact.before.p50_ns, 16);
        assert_eq!(impact.during.max_ns, 1 << 24);
    }

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let mut hist = vec![0; HIST_BUCKETS];
        hist[3] = 990;
        hist[10] = 9;
        hist[20] = 1;
        assert_eq!(quantile_upper_ns(&hist, 0.5), 16);
        assert_eq!(quantile_upper_ns(&hist, 0.99), 16);
        assert_eq!(quantile_upper_ns(&hist, 0.999), 2048);
        assert_eq!(quantile_upper_ns(&hist, 1.0), 1 << 21);
        assert_eq!(quantile_upper_ns(&[0; 4], 0.5), 0);
    }
}
