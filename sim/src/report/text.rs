//! A report as text, in the seed's own notation where the seed had one.

use super::SimReport;
use std::fmt::Write;
use wpsnap_core::Nanos;
use wpsnap_plot::{Log2Column, log2_ms_table, summary_table};

fn ms(ns: u64) -> String {
    Nanos(ns).to_string()
}

/// A human-readable summary.
pub fn render_text(r: &SimReport) -> String {
    let mut out = String::new();
    let c = &r.config;
    let _ = writeln!(
        out,
        "seed={} model={} policy={} disk={} region={} MiB pages={} writers={}x{} @{:.0}/s",
        r.seed,
        c.engine.service_model,
        c.engine.policy,
        c.disk_preset,
        (c.engine.page_count * c.engine.page_size) >> 20,
        c.engine.page_count,
        c.writers.count,
        c.writers.pattern,
        c.writers.writes_per_sec
    );
    let s = &r.snapshot;
    let outcome = r.engine.as_ref().map(|e| format!("{:?}", e.outcome)).unwrap_or_else(|| "not started".into());
    let _ = writeln!(
        out,
        "outcome={outcome} duration={} stream_written={} freeze={} stream={} MB scan_pages={} fault_pages={} staging_peak={} throttled={}",
        s.duration_ns.map(ms).unwrap_or_else(|| "-".into()),
        s.stream_written_ns.map(ms).unwrap_or_else(|| "-".into()),
        ms(s.freeze_ns),
        s.stream_bytes / 1_000_000,
        s.pages_by_scan,
        s.pages_by_fault,
        s.staging_peak_pages,
        ms(s.throttled_ns)
    );
    let w = &r.writers;
    let _ = writeln!(
        out,
        "writers: {} writes in {} ({} without snapshot, ratio {}), blocked at end {}",
        w.writes_during_snapshot,
        ms(w.window_ns),
        w.baseline_writes.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
        w.throughput_ratio.map(|t| format!("{t:.3}")).unwrap_or_else(|| "-".into()),
        w.blocked_at_end
    );
    if let Some(e) = &r.engine {
        let rows = [("true wait", &e.fault_wait), ("seed measure", &e.seed_latency)];
        out.push_str(&summary_table("fault wait", &rows));
        out.push_str(&log2_ms_table(
            "log2 ms",
            &[
                Log2Column::counts("true wait", &e.fault_wait.log2_ms),
                Log2Column::counts("seed measure", &e.seed_latency.log2_ms),
            ],
        ));
    }
    let d = &r.disk;
    let _ = writeln!(
        out,
        "disk: dirty_peak={} MB pauses={} ({}) limit_blocks={} device_stalls={} write_stalls={}",
        d.dirty_peak_bytes / 1_000_000,
        d.throttle_pauses,
        ms(d.throttle_pause_ns),
        d.limit_blocks,
        d.device_stalls,
        d.write_stalls
    );
    let i = &r.invariants;
    let _ = writeln!(
        out,
        "invariants: pages checked {} saved {} violations {} image==instant {} driver_errors {} events {} state {} KiB",
        i.pages_checked,
        i.pages_saved,
        i.violations,
        match i.image_equals_snapshot_instant {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not checked",
        },
        r.driver_errors.len(),
        r.events,
        r.memory_bytes / 1024
    );
    for v in i.first_violations.iter().chain(&r.driver_errors) {
        let _ = writeln!(out, "  ! {v}");
    }
    let _ = writeln!(out, "digest={:016x}", r.digest());
    out
}
