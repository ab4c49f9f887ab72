//! The met/missed table: every target of the run, with its figure, its same-run baseline and
//! the ratio between them.

use super::measure::{PAUSE_TARGET_RATIO, THP_PAUSE_ALLOWANCE_NS};
use super::report::{BenchReport, TargetRow};
use wpsnap_plot::format_ns;

fn row(name: &str, value: String, baseline: String, ratio: Option<f64>, target: &str, met: Option<bool>) -> TargetRow {
    TargetRow { name: name.to_string(), value, baseline, ratio, target: target.to_string(), met, note: String::new() }
}

/// Issue 15: the simulator's events per CPU-second of its thread (the ratio column is the
/// rate over this).
const SIM_EVENTS_PER_CPU_SEC_TARGET: f64 = 10e6;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The table for `report` (whose sections are filled in).
pub(super) fn target_rows(report: &BenchReport) -> Vec<TargetRow> {
    let mut rows = Vec::new();
    for s in &report.stalls {
        let mut r = row(
            &format!("stalls.{}", s.name),
            format!("{} writes >= 16 ms (max {})", s.snapshot_slow_writes, format_ns(s.snapshot_max_ns)),
            format!("{} in the background (max {})", s.background_slow_writes, format_ns(s.background_max_ns)),
            None,
            "none beyond background",
            s.target_met,
        );
        r.note = if s.measured {
            format!("{}; {} beyond background", s.destination, s.slow_writes_beyond_background)
        } else {
            s.note.clone()
        };
        rows.push(r);
    }
    let w = &report.writer_slowdown;
    rows.push(row(
        "writer_rate.decoupled_vs_fork",
        format!("{:.0} writes/s", w.decoupled_writes_per_sec),
        format!("fork {:.0} writes/s", w.fork_writes_per_sec),
        w.decoupled_to_fork_ratio,
        ">= 1x",
        w.decoupled_vs_fork_target_met,
    ));
    let (dec_lost, fork_lost) = (
        w.lost_writes(w.decoupled_writes_per_sec, w.decoupled_window_ms),
        w.lost_writes(w.fork_writes_per_sec, w.fork_window_ms),
    );
    let mut lost = row(
        "writer_rate.lost_writes_vs_fork",
        format!("{dec_lost:.0} writes lost per snapshot"),
        format!("fork {fork_lost:.0}"),
        (dec_lost >= 0.0 && fork_lost > 0.0).then(|| dec_lost / fork_lost),
        "stated (below 1x: fewer lost than fork)",
        None,
    );
    lost.note = "no-snapshot rate x window - writes; writes/s above favours the longer window".to_string();
    rows.push(lost);
    let m = &report.extra_memory;
    rows.push(row(
        "extra_memory.decoupled_vs_fork",
        format!("staging mapped peak {}", mib(m.wpsnap_mapped_peak_bytes)),
        format!("fork copy-on-write {}", mib(m.fork_cow_peak_bytes)),
        m.wpsnap_to_fork_ratio,
        "<= 1x",
        m.wpsnap_vs_fork_target_met,
    ));
    let p = &report.protection_window;
    rows.push(row(
        "protection_window.full_budget",
        format!("{} (budget {}, policy none)", format_ns(p.full_budget_window_ns), mib(p.full_budget_bytes)),
        format!("memcpy {} + unprotect {}", format_ns(p.memcpy_ns), format_ns(p.bare_unprotect_ns)),
        p.full_budget_ratio,
        "<= 2x",
        p.target_met,
    ));
    if let Some(last) = rows.last_mut() {
        last.note = format!(
            "scan thread {} on a CPU ({}), {} waiting for a CPU",
            format_ns(p.full_budget_scan_cpu_ns),
            p.full_budget_scan_cpu_ratio.map_or("n/a".to_string(), |r| format!("{r:.2}x")),
            format_ns(p.full_budget_scan_runqueue_wait_ns)
        );
    }
    let mut default = row(
        "protection_window.default_budget",
        format!(
            "{} (default budget {} and policy)",
            format_ns(p.default_budget_window_ns),
            mib(p.default_budget_bytes)
        ),
        format!("memcpy + unprotect {}", format_ns(p.ideal_ns)),
        p.default_budget_ratio,
        "stated",
        None,
    );
    default.note = "no target: the ratio is stated".to_string();
    rows.push(default);
    let t = &report.thp;
    rows.push(row(
        "thp.anon_huge_pages_kept",
        mib(t.anon_huge_after_bytes),
        format!("before {}", mib(t.anon_huge_before_bytes)),
        t.kept_ratio,
        ">= 0.95x",
        t.kept_target_met,
    ));
    rows.push(row(
        "thp.start_pause",
        format_ns(t.pause_ns),
        format!("bare write-protect {}", format_ns(t.bare_write_protect_ns)),
        t.pause_ratio,
        &format!("<= {PAUSE_TARGET_RATIO}x or within {}", format_ns(THP_PAUSE_ALLOWANCE_NS)),
        t.pause_target_met,
    ));
    let f = &report.fault_wait;
    // Judged on the exact fault waits where measured (see `FaultWaitSection`).
    let only = f.decoupled_faults_exact_vs_busy.as_ref().unwrap_or(&f.decoupled_faults_only_vs_busy);
    let which = if f.decoupled_faults_exact_vs_busy.is_some() {
        format!("exact: {} stores to protected pages (writers classify each store)", only.samples)
    } else {
        format!("estimate: the slowest {} slow writes", only.samples)
    };
    for (name, value, floor, ratio, target, met) in [
        ("p50", only.p50_ns, f.busy_floor.p50_ns, only.p50_ratio, "<= 1.5x", f.target_p50_met_busy_floor),
        ("p99", only.p99_ns, f.busy_floor.p99_ns, only.p99_ratio, "<= 2x", f.target_p99_met_busy_floor),
    ] {
        let mut r = row(
            &format!("fault_wait.faults_only.{name}_vs_busy_floor"),
            format_ns(value),
            format!("busy floor {}", format_ns(floor)),
            ratio,
            target,
            met,
        );
        r.note = which.clone();
        rows.push(r);
    }
    let sim = &report.simulator;
    let mut r = row(
        "simulator.events_per_cpu_second",
        sim.events_per_cpu_sec.map_or("not measured".to_string(), |e| format!("{:.2} M events/CPU-s", e / 1e6)),
        format!("target 10 M (wall-clock rate {:.2} M events/s)", sim.events_per_sec / 1e6),
        sim.events_per_cpu_sec.map(|e| e / SIM_EVENTS_PER_CPU_SEC_TARGET),
        ">= 10 M events per CPU-second",
        sim.events_per_cpu_sec.filter(|_| sim.measured).map(|e| e >= SIM_EVENTS_PER_CPU_SEC_TARGET),
    );
    r.note = format!(
        "{}; nvme preset only (every preset: scripts/sim-speed-ab.sh); under load the CPU rate understates the idle rate",
        sim.note
    );
    rows.push(r);
    let th = &report.throughput;
    rows.push(row(
        "throughput.to_slower_of_raw_write_and_memcpy",
        format!("{:.0} MB/s", th.snapshot_bytes_per_sec / 1e6),
        format!("raw write {:.0} MB/s", th.sink_raw_bytes_per_sec / 1e6),
        th.ratio_to_slower,
        ">= 0.9x",
        th.target_met,
    ));
    if let Some(last) = rows.last_mut() {
        last.note = th
            .snapshot_threads
            .iter()
            .map(|t| format!("{} {} on a CPU, {} blocked", t.name, format_ns(t.cpu_ns), format_ns(t.blocked_ns())))
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Ok(d) = &th.direct_io {
        let mut r = row(
            "throughput.direct_io",
            format!("{:.0} MB/s with O_DIRECT output", d.snapshot_bytes_per_sec / 1e6),
            format!("raw O_DIRECT write {:.0} MB/s", d.raw_bytes_per_sec / 1e6),
            d.ratio_to_raw,
            "stated",
            None,
        );
        r.note = format!(
            "{} of the buffered raw write",
            d.ratio_to_buffered_raw.map_or("n/a".into(), |x| format!("{x:.2}x"))
        );
        rows.push(r);
    }
    rows
}
