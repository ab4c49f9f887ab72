//! Plain-text latency tables for terminals: the one renderer of the seed's log2-ms table and
//! of percentile summaries, used by the `wpsnap` command and the simulator.

use super::Series;
use std::fmt::Write as _;
use wpsnap_core::{LOG2_MS_BUCKETS, LatencySummary, Log2MsTable, Nanos};

/// Width of the label column, in characters; longer labels are shown in full and push the row.
const LABEL_WIDTH: usize = 14;
/// Narrowest value column; a column is as wide as its widest cell or heading plus a space.
const VALUE_WIDTH: usize = 10;

/// One column of a log2-ms table: a heading and one cell per bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Column {
    pub heading: String,
    pub cells: [String; LOG2_MS_BUCKETS],
}

impl Log2Column {
    /// The counts of `table` under `heading`.
    pub fn counts(heading: &str, table: &Log2MsTable) -> Log2Column {
        Log2Column { heading: heading.to_string(), cells: table.counts.map(|c| c.to_string()) }
    }

    /// `table`'s counts with a second table's in brackets ("12 [3]"): a true wait beside the
    /// seed's own measure.
    pub fn counts_with_bracketed(heading: &str, table: &Log2MsTable, bracketed: &Log2MsTable) -> Log2Column {
        let mut cells = table.counts.map(|c| c.to_string());
        for (cell, other) in cells.iter_mut().zip(bracketed.counts) {
            let _ = write!(cell, " [{other}]");
        }
        Log2Column { heading: heading.to_string(), cells }
    }
}

/// The log2-ms table: a row per bucket in the seed's notation ("0-1", ..., ">=256"), a column
/// per [`Log2Column`], `corner` above the bucket labels.
///
/// ```text
/// log2 ms            before      after
/// 0-1                119990     120000
/// 2-3                     7          0
/// ...
/// ```
pub fn log2_ms_table(corner: &str, columns: &[Log2Column]) -> String {
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| c.cells.iter().map(String::len).chain([c.heading.len() + 1, VALUE_WIDTH]).max().unwrap_or(VALUE_WIDTH))
        .collect();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(out, "{corner:<LABEL_WIDTH$} ");
    for (column, width) in columns.iter().zip(&widths) {
        let _ = write!(out, "{:>width$}", column.heading);
    }
    let _ = writeln!(out);
    for (bucket, label) in Log2MsTable::LABELS.iter().enumerate() {
        let _ = write!(out, "{label:<LABEL_WIDTH$} ");
        for (column, width) in columns.iter().zip(&widths) {
            let _ = write!(out, "{:>width$}", column.cells[bucket]);
        }
        let _ = writeln!(out);
    }
    out
}

/// A row per labelled summary: count, p50, p99, p99.9, max, and the seed's ">= 8 ms" and
/// ">= 16 ms" counts; `heading` names the label column.
///
/// ```text
/// fault wait          count       p50       p99     p99.9       max    >=8ms   >=16ms
/// before             120000   2.10 µs   9.80 µs   1.20 ms   17.0 ms        3        1
/// ```
pub fn summary_table(heading: &str, rows: &[(&str, &LatencySummary)]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{heading:<LABEL_WIDTH$} ");
    for title in ["count", "p50", "p99", "p99.9", "max", ">=8ms", ">=16ms"] {
        let _ = write!(out, "{title:>VALUE_WIDTH$}");
    }
    let _ = writeln!(out);
    for (label, summary) in rows {
        let _ = write!(out, "{label:<LABEL_WIDTH$} {:>VALUE_WIDTH$}", summary.count);
        if summary.count == 0 {
            let _ = writeln!(out, "  (no samples)");
            continue;
        }
        for ns in [summary.p50_ns, summary.p99_ns, summary.p999_ns, summary.max_ns] {
            let _ = write!(out, "{:>VALUE_WIDTH$}", Nanos(ns).to_string());
        }
        let _ = writeln!(
            out,
            "{:>VALUE_WIDTH$}{:>VALUE_WIDTH$}",
            summary.log2_ms.at_least_ms(8),
            summary.log2_ms.at_least_ms(16)
        );
    }
    out
}

/// [`summary_table`] of the series, a blank line, then their [`log2_ms_table`].
pub fn text_report(series: &[Series<'_>]) -> String {
    let summaries: Vec<LatencySummary> = series.iter().map(|s| s.recorder.summary()).collect();
    let rows: Vec<(&str, &LatencySummary)> = series.iter().map(|s| s.label).zip(&summaries).collect();
    let columns: Vec<Log2Column> = series.iter().map(|s| Log2Column::counts(s.label, s.recorder.table())).collect();
    format!("{}\n{}", summary_table("fault wait", &rows), log2_ms_table("log2 ms", &columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wpsnap_core::LatencyRecorder;

    fn row(text: &str, label: &str) -> Option<Vec<String>> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
    }

    #[test]
    fn table_has_a_row_per_bucket_and_a_column_per_series() {
        let mut fast = LatencyRecorder::new();
        for _ in 0..10 {
            fast.record(Nanos::from_us(20));
        }
        let mut slow = LatencyRecorder::new();
        slow.record(Nanos::from_ms(20));
        let text = text_report(&[Series::new("fast", &fast), Series::new("slow", &slow)]);
        assert_eq!(row(&text, "0-1"), Some(vec!["10".to_string(), "0".to_string()]));
        assert_eq!(row(&text, "16-31"), Some(vec!["0".to_string(), "1".to_string()]));
        assert_eq!(row(&text, ">=256"), Some(vec!["0".to_string(), "0".to_string()]));
        let fast_line = row(&text, "fast").unwrap_or_default();
        assert_eq!(fast_line.first().map(String::as_str), Some("10"));
        assert!(text.contains("20.0 µs"), "{text}");
        assert!(text.contains("20.0 ms"), "{text}");
        // The slow series: one wait of at least 8 and of at least 16 ms.
        assert_eq!(row(&text, "slow").map(|r| r[r.len() - 2..].to_vec()), Some(vec!["1".into(), "1".into()]));
    }

    #[test]
    fn empty_series_is_reported_not_dropped() {
        let empty = LatencyRecorder::new();
        let text = text_report(&[Series::new("idle", &empty)]);
        assert!(text.contains("idle"));
        assert!(text.contains("no samples"));
    }

    #[test]
    fn bracketed_cells_widen_their_column() {
        let mut t = Log2MsTable::default();
        t.counts[0] = 1_234_567;
        let mut s = Log2MsTable::default();
        s.counts[0] = 7_654_321;
        let text = log2_ms_table("ms", &[Log2Column::counts_with_bracketed("p", &t, &s), Log2Column::counts("q", &s)]);
        assert_eq!(row(&text, "0-1"), Some(vec!["1234567".into(), "[7654321]".into(), "7654321".into()]));
        // Every row is as long as the heading row: the columns line up.
        let lengths: Vec<usize> = text.lines().map(|l| l.chars().count()).collect();
        assert!(lengths.iter().all(|&n| n == lengths[0]), "{text}");
    }
}
