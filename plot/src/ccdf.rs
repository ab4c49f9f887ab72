//! The complementary CDF of recorded waits: the share of faults that waited at least x,
//! log-log, one line per series.

use super::{PlotError, chart_on, check_series_count, draw_err, draw_legend, draw_line};
use plotters::prelude::*;

/// Chart size in pixels (width, height).
const CCDF_SIZE_PX: (u32, u32) = (900, 560);
/// Left end of the wait axis, in milliseconds (1 µs): the log axis needs a positive floor.
const WAIT_MS_MIN: f64 = 1e-3;

/// One labelled distribution, as recorded histogram buckets: (value in ns, count), ascending
/// (`LatencyRecorder::recorded`, or a report's stored histogram).
#[derive(Clone, Copy, Debug)]
pub struct CcdfSeries<'a> {
    pub label: &'a str,
    pub recorded: &'a [(u64, u64)],
}

/// Renders the share of waits at least x (x in ms, log scale) of each series and returns the
/// SVG text. Series with no samples are left out of the lines but not an error.
pub fn ccdf_svg(title: &str, series: &[CcdfSeries<'_>]) -> Result<String, PlotError> {
    check_series_count(series.len())?;
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        series.iter().filter_map(|s| curve(s.recorded).map(|points| (s.label, points))).collect();
    let x_max_ms = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)).fold(1.0f64, f64::max);
    let y_min = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).fold(1.0f64, f64::min);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CCDF_SIZE_PX).into_drawing_area();
        let mut chart = chart_on(&root, title, 20, 64)?
            .build_cartesian_2d((WAIT_MS_MIN..x_max_ms * 1.5).log_scale(), (y_min * 0.5..1.0).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("fault wait (ms), log scale")
            .y_desc("share of faults waiting at least x")
            .draw()
            .map_err(draw_err)?;
        for (index, (label, points)) in curves.into_iter().enumerate() {
            draw_line(&mut chart, index, label.to_string(), points)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Steps (wait in ms, share at least that wait), or `None` without samples.
fn curve(recorded: &[(u64, u64)]) -> Option<Vec<(f64, f64)>> {
    let total: u64 = recorded.iter().map(|&(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let mut above = total;
    let mut points = Vec::with_capacity(recorded.len() * 2);
    for &(value_ns, count) in recorded {
        let x = (value_ns as f64 / 1e6).max(WAIT_MS_MIN);
        points.push((x, above as f64 / total as f64));
        above = above.saturating_sub(count);
        if above > 0 {
            points.push((x, above as f64 / total as f64));
        }
    }
    Some(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_steps_down_from_one_to_the_last_share() {
        let points = curve(&[(1_000_000, 3), (8_000_000, 1)]).expect("samples");
        assert_eq!(points, vec![(1.0, 1.0), (1.0, 0.25), (8.0, 0.25)]);
        assert!(curve(&[]).is_none());
    }

    #[test]
    fn chart_has_a_line_and_a_legend_per_series() {
        let a = [(10_000, 50), (2_000_000, 5)];
        let b = [(20_000, 10)];
        let svg =
            ccdf_svg("waits", &[CcdfSeries { label: "none", recorded: &a }, CcdfSeries { label: "bw", recorded: &b }])
                .expect("renders");
        assert!(svg.contains("none") && svg.contains("bw") && svg.contains("waits"));
        assert!(svg.matches("<polyline").count() >= 2);
        assert!(matches!(ccdf_svg("t", &[]), Err(PlotError::NoSeries)));
    }
}
