//! A snapshot's timeline: scan pages per second (top) and the longest fault wait per time bin
//! (bottom).

use super::{PlotError, draw_err};
use plotters::prelude::*;

/// Chart size in pixels (width, height); each half takes half the height.
const TIMELINE_SIZE_PX: (u32, u32) = (900, 620);
const NS_PER_S: f64 = 1e9;
const NS_PER_MS: f64 = 1e6;

/// What happened in one time bin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineBin {
    pub scan_pages: u64,
    pub fault_waits: u64,
    pub fault_wait_max_ns: u64,
}

/// Renders bins of `bin_ns` each, from the snapshot instant on, and returns the SVG text.
pub fn timeline_svg(title: &str, bin_ns: u64, bins: &[TimelineBin]) -> Result<String, PlotError> {
    let bin_s = bin_ns.max(1) as f64 / NS_PER_S;
    let x_max = (bins.len().max(1) as f64) * bin_s;
    let rate: Vec<(f64, f64)> =
        bins.iter().enumerate().map(|(i, b)| (i as f64 * bin_s, b.scan_pages as f64 / bin_s)).collect();
    let waits: Vec<(f64, f64)> = bins
        .iter()
        .enumerate()
        .filter(|(_, b)| b.fault_waits > 0)
        .map(|(i, b)| (i as f64 * bin_s, b.fault_wait_max_ns as f64 / NS_PER_MS))
        .collect();
    let rate_max = rate.iter().map(|p| p.1).fold(1.0, f64::max);
    let wait_max = waits.iter().map(|p| p.1).fold(0.01, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, TIMELINE_SIZE_PX).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (top, bottom) = root.split_vertically(TIMELINE_SIZE_PX.1 / 2);
        let mut scan = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..rate_max * 1.1)
            .map_err(draw_err)?;
        scan.configure_mesh().y_desc("scan pages/s").draw().map_err(draw_err)?;
        scan.draw_series(LineSeries::new(rate, BLUE.stroke_width(1))).map_err(draw_err)?;
        let mut faults = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..wait_max * 1.1)
            .map_err(draw_err)?;
        faults
            .configure_mesh()
            .x_desc("seconds since the snapshot instant")
            .y_desc("longest fault wait (ms)")
            .draw()
            .map_err(draw_err)?;
        faults.draw_series(waits.into_iter().map(|(x, y)| Circle::new((x, y), 2, RED.filled()))).map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_draws_the_rate_line_and_a_dot_per_bin_with_waits() {
        let bins = [
            TimelineBin { scan_pages: 100, fault_waits: 0, fault_wait_max_ns: 0 },
            TimelineBin { scan_pages: 50, fault_waits: 2, fault_wait_max_ns: 3_000_000 },
            TimelineBin { scan_pages: 70, fault_waits: 1, fault_wait_max_ns: 1_000_000 },
        ];
        let svg = timeline_svg("run", 1_000_000, &bins).expect("renders");
        assert!(svg.contains("scan pages/s") && svg.contains("run"));
        assert_eq!(svg.matches("<circle").count(), 2, "one dot per bin with fault waits");
        assert!(timeline_svg("empty", 1_000_000, &[]).is_ok());
    }
}
