//! `wpsnap-plot`: charts and terminal tables of fault-wait distributions and snapshot
//! timelines, for the `wpsnap` command and the simulator (`wpsnap-sim`) alike.
//!
//! What it does: renders one or several labelled [`wpsnap_core::LatencyRecorder`]s as
//! - an SVG percentile plot ([`percentile_svg`]): latency on a log axis against the percentile
//!   on a "nines" axis (90%, 99%, 99.9%, ...), so the tail of a "before" and an "after" run can
//!   be read side by side;
//! - an SVG bar chart of the seed's log2-millisecond bucket table ([`log2_ms_svg`]), counts on a
//!   log axis so a handful of slow waits next to a million fast ones stay visible;
//! - plain text for terminals ([`text_report`], built from [`summary_table`] and
//!   [`log2_ms_table`], the one renderer of the log2-ms table);
//!
//! and, from recorded histograms and time bins (what a simulator report keeps), the share of
//! faults that waited at least x ([`ccdf_svg`]) and a timeline of scan rate and fault waits
//! ([`timeline_svg`]). Durations print through `wpsnap_core::Nanos`'s `Display`, the
//! project's one duration format.
//!
//! What it does not do: it draws only what was recorded (no smoothing, no extrapolation beyond
//! the last recorded percentile), writes SVG only (no PNG or fonts: plotters' SVG backend
//! estimates text sizes, so label placement is approximate), and never reads clocks or files
//! except in [`write_svg`].

mod ccdf;
mod log2_ms;
mod percentile;
mod text;
mod timeline;

pub use ccdf::{CcdfSeries, ccdf_svg};
pub use log2_ms::log2_ms_svg;
pub use percentile::percentile_svg;
pub use text::{Log2Column, log2_ms_table, summary_table, text_report};
pub use timeline::{TimelineBin, timeline_svg};

use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::{
    BLACK, Cartesian2d, ChartBuilder, ChartContext, Color, DrawingArea, LineSeries, PathElement, SVGBackend,
    SeriesLabelPosition, WHITE,
};
use std::path::{Path, PathBuf};
use wpsnap_core::{LatencyRecorder, Nanos};

/// Default chart size in pixels (width, height).
pub const CHART_SIZE_PX: (u32, u32) = (900, 540);

/// Most series one chart accepts; more would be unreadable (and run out of distinct colours).
pub const SERIES_MAX: usize = 8;

/// One labelled distribution to draw.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    /// Legend text, for example "before" or "decoupled, nvme".
    pub label: &'a str,
    pub recorder: &'a LatencyRecorder,
}

impl<'a> Series<'a> {
    /// A series drawn and listed as `label`.
    pub fn new(label: &'a str, recorder: &'a LatencyRecorder) -> Series<'a> {
        Series { label, recorder }
    }
}

/// Why a chart could not be produced or written: the one error type of every chart here.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("nothing to plot: no series given")]
    NoSeries,
    #[error("too many series: {given} given, at most {SERIES_MAX} per chart")]
    TooManySeries { given: usize },
    #[error("drawing the chart failed")]
    Draw(#[source] DrawingAreaErrorKind<std::io::Error>),
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `ns` as the project prints durations: [`Nanos`]'s `Display` ("12.3 µs"), for the many
/// report fields that hold plain nanoseconds.
pub fn format_ns(ns: u64) -> String {
    Nanos(ns).to_string()
}

/// Writes a rendered SVG to `path`.
pub fn write_svg(path: &Path, svg: &str) -> Result<(), PlotError> {
    std::fs::write(path, svg).map_err(|source| PlotError::Io { path: path.to_path_buf(), source })
}

/// A chart takes 1..=[`SERIES_MAX`] series.
fn check_series_count(count: usize) -> Result<(), PlotError> {
    if count == 0 {
        return Err(PlotError::NoSeries);
    }
    if count > SERIES_MAX {
        return Err(PlotError::TooManySeries { given: count });
    }
    Ok(())
}

fn check_series(series: &[Series<'_>]) -> Result<(), PlotError> {
    check_series_count(series.len())
}

/// Every chart here draws into a string, so its drawing errors all have this type.
fn draw_err(e: DrawingAreaErrorKind<std::io::Error>) -> PlotError {
    PlotError::Draw(e)
}

/// The drawing area of a chart rendered into a string, white, and a builder on it with the
/// caption, margins and label areas every chart here shares.
fn chart_on<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    caption_px: u32,
    y_label_px: u32,
) -> Result<ChartBuilder<'a, 'b, SVGBackend<'b>>, PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, ("sans-serif", caption_px)).margin(12).x_label_area_size(44).y_label_area_size(y_label_px);
    Ok(builder)
}

/// One series as a 2-pixel line in its palette colour, with a matching legend swatch.
fn draw_line<'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    index: usize,
    label: String,
    points: Vec<(f64, f64)>,
) -> Result<(), PlotError> {
    let colour = series_colour(index);
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(2)))
        .map_err(draw_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    Ok(())
}

/// The legend box, at `position`.
fn draw_legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

/// Colour of the n-th series (a fixed palette, distinguishable in print).
fn series_colour(index: usize) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    const PALETTE: [RGBColor; SERIES_MAX] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    PALETTE[index % SERIES_MAX]
}

#[cfg(test)]
mod tests {
    use super::*;
    use wpsnap_core::Nanos;

    fn recorder(waits_us: impl IntoIterator<Item = u64>) -> LatencyRecorder {
        let mut r = LatencyRecorder::new();
        for us in waits_us {
            r.record(Nanos::from_us(us));
        }
        r
    }

    #[test]
    fn percentile_svg_has_every_label_and_a_line_per_series() {
        let before = recorder((1..=5_000).map(|i| 5 + i % 300));
        let after = recorder((1..=5_000).map(|i| 3 + i % 40));
        let svg = percentile_svg("fault wait", &[Series::new("before", &before), Series::new("after", &after)])
            .expect("chart renders");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("before (n=5000)"));
        assert!(svg.contains("after (n=5000)"));
        assert!(svg.contains("fault wait"));
        assert!(svg.contains("\n99.9%\n"), "nines axis is labelled");
        // Two data lines plus two legend swatches.
        assert!(svg.matches("<polyline").count() >= 2, "one line per series");
    }

    #[test]
    fn log2_ms_svg_has_bucket_labels_and_legend() {
        let mut slow = recorder([100, 200]);
        slow.record(Nanos::from_ms(20));
        slow.record(Nanos::from_ms(300));
        let svg = log2_ms_svg("log2 ms", &[Series::new("slow disk", &slow)]).expect("chart renders");
        assert!(svg.contains("slow disk (n=4)"));
        for label in ["0-1", "16-31", "128-255"] {
            // plotters puts each text on a line of its own.
            assert!(svg.contains(&format!("\n{label}\n")), "bucket label {label} missing");
        }
        // Three non-empty buckets, each a filled rectangle; plus background and legend.
        assert!(svg.matches("<rect").count() >= 3);
    }

    #[test]
    fn empty_and_too_many_series_are_errors_or_labelled() {
        let empty = LatencyRecorder::new();
        let svg = percentile_svg("t", &[Series::new("idle", &empty)]).expect("empty series still renders");
        assert!(svg.contains("idle (no samples)"));
        assert!(matches!(percentile_svg("t", &[]), Err(PlotError::NoSeries)));
        let many = vec![Series::new("x", &empty); SERIES_MAX + 1];
        assert!(matches!(log2_ms_svg("t", &many), Err(PlotError::TooManySeries { .. })));
    }

    #[test]
    fn write_svg_reports_the_path_on_failure() {
        let path = Path::new("/nonexistent-dir-wpsnap/chart.svg");
        match write_svg(path, "<svg/>") {
            Err(PlotError::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected an Io error, got {other:?}"),
        }
    }
}
