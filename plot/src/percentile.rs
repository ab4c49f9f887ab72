//! Percentile plot: latency (log axis) against percentile on a "nines" axis.
//!
//! The x coordinate is `nines = -log10(1 - q)`: 0 is the minimum, 1 is p90, 2 is p99, 3 is
//! p99.9. Each series stops at the deepest percentile its sample count supports
//! (`log10(count)`), and its last point is the recorded maximum, so no tail is invented.

use super::{CHART_SIZE_PX, PlotError, Series, chart_on, check_series, draw_err, draw_legend, draw_line};
use plotters::prelude::*;

/// Deepest percentile drawn: p99.999.
const NINES_MAX: f64 = 5.0;
/// Points per decade of the nines axis.
const POINTS_PER_NINE: u32 = 40;

/// Renders the series as an SVG percentile plot and returns the SVG text.
///
/// Empty recorders still get a legend entry ("label (no samples)") so a missing run is
/// visible rather than silently dropped.
pub fn percentile_svg(title: &str, series: &[Series<'_>]) -> Result<String, PlotError> {
    check_series(series)?;
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(|s| curve(s)).collect();
    let x_max = curves.iter().flat_map(|c| c.iter().map(|p| p.0)).fold(1.0_f64, f64::max).min(NINES_MAX).ceil();
    let (y_min_us, y_max_us) = y_range_us(&curves);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE_PX).into_drawing_area();
        let mut chart = chart_on(&root, title, 22, 72)?
            // Room for the last percentile label ("99.999%"), centred on the right edge.
            .margin_right(36)
            .build_cartesian_2d(0.0..x_max, (y_min_us..y_max_us).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("fault wait (log scale)")
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|nines| percentile_label(*nines))
            .y_label_formatter(&|us| format_us(*us))
            .draw()
            .map_err(draw_err)?;
        for (index, (s, points)) in series.iter().zip(curves).enumerate() {
            draw_line(&mut chart, index, legend_text(s), points)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

pub(super) fn legend_text(s: &Series<'_>) -> String {
    match s.recorder.count() {
        0 => format!("{} (no samples)", s.label),
        n => format!("{} (n={n})", s.label),
    }
}

/// Points (nines, latency in µs) of one series.
fn curve(s: &Series<'_>) -> Vec<(f64, f64)> {
    let count = s.recorder.count();
    if count == 0 {
        return Vec::new();
    }
    let depth = (count as f64).log10().min(NINES_MAX);
    let steps = (depth * f64::from(POINTS_PER_NINE)).ceil() as u32;
    let mut points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let nines = (f64::from(i) / f64::from(POINTS_PER_NINE)).min(depth);
            let q = 1.0 - 10f64.powf(-nines);
            (nines, ns_to_us(s.recorder.quantile(q).as_ns()))
        })
        .collect();
    points.push((depth.max(0.0), ns_to_us(s.recorder.histogram().max())));
    points
}

fn ns_to_us(ns: u64) -> f64 {
    // Floor at 1 ns so the log axis has a finite bottom.
    (ns.max(1) as f64) / 1e3
}

fn y_range_us(curves: &[Vec<(f64, f64)>]) -> (f64, f64) {
    let values = curves.iter().flat_map(|c| c.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || hi <= 0.0 {
        return (0.1, 1000.0);
    }
    // Whole decades around the data, so the log axis labels are round numbers.
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

/// "0%", "90%", "99%", "99.9%", ... for a position on the nines axis.
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.ceil() as i32 - 2).max(0) as usize;
    format!("{percent:.decimals$}%")
}

fn format_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.0} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.0} ms", us / 1e3)
    } else if us >= 1.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.0} ns", us * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }

    #[test]
    fn y_range_covers_the_data_in_whole_decades() {
        let (lo, hi) = y_range_us(&[vec![(0.0, 3.0), (2.0, 450.0)]]);
        assert_eq!((lo, hi), (1.0, 1000.0));
        assert_eq!(y_range_us(&[vec![]]), (0.1, 1000.0));
    }
}
