//! Bar chart of the seed's log2-millisecond bucket table.

use super::percentile::legend_text;
use super::{CHART_SIZE_PX, PlotError, Series, chart_on, check_series, draw_err, draw_legend, series_colour};
use plotters::prelude::*;
use wpsnap_core::{LOG2_MS_BUCKETS, Log2MsTable};

/// Share of a bucket's width taken by its group of bars.
const GROUP_WIDTH: f64 = 0.8;
/// Bottom of the log count axis: below one, so a count of one still shows as a bar.
const COUNT_AXIS_FLOOR: f64 = 0.5;

/// Renders the log2-ms tables of the series as grouped bars (counts on a log axis) and returns
/// the SVG text. Buckets carry the seed's labels ("0-1", "2-3", ... ">=256" ms).
pub fn log2_ms_svg(title: &str, series: &[Series<'_>]) -> Result<String, PlotError> {
    check_series(series)?;
    let count_max = series.iter().flat_map(|s| s.recorder.table().counts).max().unwrap_or(0).max(1);
    let y_max = 10f64.powf((count_max as f64 * 2.0).log10().ceil());
    let x_range = -0.5..(LOG2_MS_BUCKETS as f64 - 0.5);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE_PX).into_drawing_area();
        let mut chart = chart_on(&root, title, 22, 72)?
            .build_cartesian_2d(x_range, (COUNT_AXIS_FLOOR..y_max).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("fault wait (ms, log2 buckets)")
            .y_desc("count (log scale)")
            .x_labels(LOG2_MS_BUCKETS)
            .x_label_formatter(&bucket_label)
            .y_label_formatter(&|c| format!("{c:.0}"))
            .draw()
            .map_err(draw_err)?;
        let bar_width = GROUP_WIDTH / series.len() as f64;
        for (index, s) in series.iter().enumerate() {
            let colour = series_colour(index);
            let bars = bars(s.recorder.table(), index, bar_width);
            chart
                .draw_series(
                    bars.into_iter()
                        .map(|(x0, x1, count)| Rectangle::new([(x0, COUNT_AXIS_FLOOR), (x1, count)], colour.filled())),
                )
                .map_err(draw_err)?
                .label(legend_text(s))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// (left, right, count) of each non-empty bucket's bar for the `index`-th series.
fn bars(table: &Log2MsTable, index: usize, bar_width: f64) -> Vec<(f64, f64, f64)> {
    table
        .counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(bucket, count)| {
            let left = bucket as f64 - GROUP_WIDTH / 2.0 + index as f64 * bar_width;
            (left, left + bar_width, *count as f64)
        })
        .collect()
}

/// The seed's label for an axis position at a bucket's centre; nothing between buckets.
fn bucket_label(x: &f64) -> String {
    let nearest = x.round();
    if (x - nearest).abs() > 1e-6 || nearest < 0.0 {
        return String::new();
    }
    Log2MsTable::LABELS.get(nearest as usize).map(|l| (*l).to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_skip_empty_buckets_and_sit_side_by_side() {
        let mut table = Log2MsTable::default();
        table.counts[0] = 5;
        table.counts[3] = 1;
        let first = bars(&table, 0, 0.4);
        let second = bars(&table, 1, 0.4);
        assert_eq!(first.len(), 2);
        assert!((first[0].0 - (-0.4)).abs() < 1e-9);
        assert!((second[0].0 - first[0].1).abs() < 1e-9, "second series starts where the first ends");
        assert_eq!(first[1].2, 1.0);
    }

    #[test]
    fn labels_only_at_bucket_centres() {
        assert_eq!(bucket_label(&0.0), "0-1");
        assert_eq!(bucket_label(&8.0), ">=256");
        assert_eq!(bucket_label(&0.5), "");
        assert_eq!(bucket_label(&9.0), "");
    }
}
