//! Plain-text latency report for terminals.

use super::Series;
use super::format::format_ns;
use std::fmt::Write as _;
use wpsnap_core::Log2MsTable;

/// Width of the label column, in characters; longer labels are shown in full and push the row.
const LABEL_WIDTH: usize = 14;
/// Width of each value column.
const VALUE_WIDTH: usize = 10;

/// A summary line per series (count, p50, p99, p99.9, max) followed by the log2-ms table with
/// one count column per series, in the seed's bucket notation:
///
/// ```text
/// latency             count       p50       p99     p99.9       max
/// before             120000   2.10 µs   9.80 µs   1.20 ms   17.0 ms
///
/// log2 ms            before
/// 0-1                119990
/// ...
/// ```
pub fn text_report(series: &[Series<'_>]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "{:<LABEL_WIDTH$} {:>VALUE_WIDTH$}{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}",
        "latency", "count", "p50", "p99", "p99.9", "max"
    );
    for s in series {
        let summary = s.recorder.summary();
        if summary.count == 0 {
            let _ = writeln!(out, "{:<LABEL_WIDTH$} {:>VALUE_WIDTH$}  (no samples)", s.label, 0);
            continue;
        }
        let _ = writeln!(
            out,
            "{:<LABEL_WIDTH$} {:>VALUE_WIDTH$}{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}",
            s.label,
            summary.count,
            format_ns(summary.p50_ns),
            format_ns(summary.p99_ns),
            format_ns(summary.p999_ns),
            format_ns(summary.max_ns),
        );
    }
    let _ = writeln!(out);
    let _ = write!(out, "{:<LABEL_WIDTH$} ", "log2 ms");
    for s in series {
        let _ = write!(out, "{:>VALUE_WIDTH$}", s.label);
    }
    let _ = writeln!(out);
    for (bucket, label) in Log2MsTable::LABELS.iter().enumerate() {
        let _ = write!(out, "{label:<LABEL_WIDTH$} ");
        for s in series {
            let _ = write!(out, "{:>VALUE_WIDTH$}", s.recorder.table().counts[bucket]);
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wpsnap_core::{LatencyRecorder, Nanos};

    #[test]
    fn table_has_a_row_per_bucket_and_a_column_per_series() {
        let mut fast = LatencyRecorder::new();
        for _ in 0..10 {
            fast.record(Nanos::from_us(20));
        }
        let mut slow = LatencyRecorder::new();
        slow.record(Nanos::from_ms(20));
        let text = text_report(&[Series::new("fast", &fast), Series::new("slow", &slow)]);
        let row = |label: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(label))
                .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect::<Vec<_>>())
        };
        assert_eq!(row("0-1"), Some(vec!["10".to_string(), "0".to_string()]));
        assert_eq!(row("16-31"), Some(vec!["0".to_string(), "1".to_string()]));
        assert_eq!(row(">=256"), Some(vec!["0".to_string(), "0".to_string()]));
        let fast_line = row("fast").unwrap_or_default();
        assert_eq!(fast_line.first().map(String::as_str), Some("10"));
        assert!(text.contains("20.0 µs"), "{text}");
        assert!(text.contains("20.0 ms"), "{text}");
    }

    #[test]
    fn empty_series_is_reported_not_dropped() {
        let empty = LatencyRecorder::new();
        let text = text_report(&[Series::new("idle", &empty)]);
        assert!(text.contains("idle"));
        assert!(text.contains("no samples"));
    }
}
