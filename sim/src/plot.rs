//! SVG plots: fault-wait distributions of several runs on one chart (before/after, as the
//! seed's reviewer asked), and a timeline of one run's scan rate and fault waits.

use crate::report::SimReport;
use plotters::prelude::*;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("plot {path}: {reason}")]
/// A plot could not be drawn or written.
pub struct PlotError {
    pub path: String,
    pub reason: String,
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError { path: path.display().to_string(), reason: e.to_string() }
}

const COLOURS: [RGBColor; 6] = [RED, BLUE, RGBColor(0, 150, 0), MAGENTA, RGBColor(230, 140, 0), BLACK];

/// The complementary CDF (share of faults that waited at least x) of each run's true fault
/// wait, log-log, one line per run, labelled.
pub fn fault_wait_ccdf(path: &Path, title: &str, runs: &[(String, &SimReport)]) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut x_max_ms = 1.0f64;
    let mut y_min = 1.0f64;
    let mut series = Vec::new();
    for (label, report) in runs {
        let total: u64 = report.fault_wait_histogram.iter().map(|&(_, c)| c).sum();
        if total == 0 {
            continue;
        }
        let mut above = total;
        let mut points = Vec::new();
        for &(value_ns, count) in &report.fault_wait_histogram {
            let x = (value_ns as f64 / 1e6).max(1e-3);
            points.push((x, above as f64 / total as f64));
            above -= count;
            if above > 0 {
                points.push((x, above as f64 / total as f64));
            }
            x_max_ms = x_max_ms.max(x);
        }
        y_min = y_min.min(1.0 / total as f64);
        series.push((label.clone(), points));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((1e-3..x_max_ms * 1.5).log_scale(), (y_min * 0.5..1.0).log_scale())
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("fault wait (ms), log scale")
        .y_desc("share of faults waiting at least x")
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, (label, points)) in series.into_iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| err(path, e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// Scan pages per second (top) and the longest fault wait per time bin (bottom).
pub fn timeline(path: &Path, title: &str, report: &SimReport) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (900, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let (top, bottom) = root.split_vertically(310);
    let t = &report.timeline;
    let bin_s = t.bin_ns as f64 / 1e9;
    let x_max = (t.bins.len().max(1) as f64) * bin_s;
    let rate: Vec<(f64, f64)> =
        t.bins.iter().enumerate().map(|(i, b)| (i as f64 * bin_s, b.scan_pages as f64 / bin_s)).collect();
    let waits: Vec<(f64, f64)> = t
        .bins
        .iter()
        .enumerate()
        .filter(|(_, b)| b.fault_waits > 0)
        .map(|(i, b)| (i as f64 * bin_s, b.fault_wait_max_ns as f64 / 1e6))
        .collect();
    let rate_max = rate.iter().map(|p| p.1).fold(1.0, f64::max);
    let wait_max = waits.iter().map(|p| p.1).fold(0.01, f64::max);
    let mut c1 = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..rate_max * 1.1)
        .map_err(|e| err(path, e))?;
    c1.configure_mesh().y_desc("scan pages/s").draw().map_err(|e| err(path, e))?;
    c1.draw_series(LineSeries::new(rate, BLUE.stroke_width(1))).map_err(|e| err(path, e))?;
    let mut c2 = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..wait_max * 1.1)
        .map_err(|e| err(path, e))?;
    c2.configure_mesh()
        .x_desc("seconds since the snapshot instant")
        .y_desc("longest fault wait (ms)")
        .draw()
        .map_err(|e| err(path, e))?;
    c2.draw_series(waits.into_iter().map(|(x, y)| Circle::new((x, y), 2, RED.filled()))).map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
