//! `wpsnap bench --quick` end to end: the report has every section and every ratio it gives
//! is finite and positive. Timing is never checked (the figures are whatever this machine did).
//!
//! Neither is whether the bench's one writer got the CPU: the fault-wait, slowdown and memory
//! figures need it to write during windows of a few hundred milliseconds, and a benchmark does
//! not force that (under two CPU hogs and parallel builds, `scripts/flake-check.sh` once saw
//! it write nothing in a whole 554 ms window). Those figures are checked for consistency with
//! what happened (a ratio exactly when both sides have data); the floors, pauses and throughput,
//! which the bench makes happen itself, must be there.

use wpsnap::bench::{BenchOptions, BenchReport, LatencyRow, run_bench};
use wpsnap_linux::uffd::uffd_or_skip;

#[test]
fn quick_bench_reports_every_section_with_usable_ratios() {
    if !uffd_or_skip("bench_quick") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("wpsnap-bench-test-{}", std::process::id()));
    let options = BenchOptions {
        quick: true,
        dir: Some(dir.clone()),
        // A binary that does not exist: the simulator step must say so, not invent a figure.
        sim_bin: Some(dir.join("no-such-wpsnap-sim")),
        ..BenchOptions::default()
    };
    let steps = std::cell::RefCell::new(Vec::new());
    let report = run_bench(&options, &|line| steps.borrow_mut().push(line.to_string())).expect("quick bench runs");
    let _ = std::fs::remove_dir_all(&dir);

    assert!(report.plan.quick);
    assert!(steps.borrow().len() >= 8, "progress lines: {:?}", steps.borrow());
    // Every ratio given is usable; the ones that must exist do.
    for (name, ratio) in report.ratios() {
        if let Some(r) = ratio {
            assert!(r.is_finite() && r > 0.0, "{name} = {r}");
        }
    }
    let f = &report.fault_wait;
    assert_eq!(f.floor.p50_ratio, Some(1.0));
    assert_eq!(f.floor.samples, f.region_bytes / 4096, "the floor times one first write per page");
    assert_eq!(f.fork_cow.samples, f.region_bytes / 4096);
    // Every page of the copy-on-write baseline is written once by the bench itself.
    assert!(f.fork_cow.samples > 0);
    for row in [&f.decoupled, &f.qemu, &f.fork_cow, &f.decoupled_faults_only, &f.qemu_faults_only] {
        assert_consistent(row);
    }
    assert_eq!(f.target_p50_met.is_some(), f.decoupled.p50_ratio.is_some());
    assert_eq!(f.target_p99_met.is_some(), f.decoupled.p99_ratio.is_some());
    for (only, all) in [(&f.decoupled_faults_only, &f.decoupled), (&f.qemu_faults_only, &f.qemu)] {
        assert!(only.samples <= all.samples && only.p50_ns >= all.p50_ns, "{only:?} vs {all:?}");
        assert_eq!(only.max_ns, all.max_ns);
    }
    assert_eq!(report.start_pause.len(), 2 * report.plan.pause_sizes_bytes.len());
    for p in &report.start_pause {
        assert!(p.wpsnap_ratio.is_some() && p.fork_ratio.is_some() && p.target_met.is_some(), "{p:?}");
        assert!(p.wpsnap_protect_ns <= p.wpsnap_pause_ns, "the protect is inside the pause: {p:?}");
    }
    let t = &report.throughput;
    assert!(t.ratio_to_sink.is_some() && t.ratio_to_memcpy.is_some() && t.ratio_to_slower.is_some());
    let w = &report.writer_slowdown;
    let free = w.no_snapshot_writes_per_sec;
    for (ratio, rate) in [
        (w.decoupled_ratio, w.decoupled_writes_per_sec),
        (w.qemu_ratio, w.qemu_writes_per_sec),
        (w.fork_ratio, w.fork_writes_per_sec),
    ] {
        assert_eq!(ratio.is_some(), rate > 0.0 && free > 0.0, "a ratio exactly when both rates exist: {w:?}");
    }
    let m = &report.extra_memory;
    assert!(m.wpsnap_staging_peak_bytes <= m.wpsnap_staging_limit_bytes, "{m:?}");
    // The scan stages pages whether or not the writer ran.
    assert!(m.wpsnap_ratio.is_some(), "{m:?}");
    assert_eq!(m.fork_ratio.is_some(), m.fork_cow_peak_bytes > 0, "{m:?}");
    assert!(report.slow_disk.emulated);
    assert!(report.slow_disk.fault_wait.samples == 0 || report.slow_disk.target_met.is_some());
    // Issue 15: the busy-polling floor, the stall rows (skipped in quick mode, with the reason),
    // the protection window, THP and the met/missed table.
    assert_eq!(f.busy_floor.samples, f.region_bytes / 4096, "the busy floor times one first write per page");
    assert_eq!(f.busy_floor.p50_ratio, Some(1.0));
    assert!(f.decoupled_faults_only_vs_busy.p50_ratio.is_some() && f.target_p99_met_busy_floor.is_some());
    assert_eq!(report.stalls.len(), 2);
    for s in &report.stalls {
        assert!(!s.measured && s.note.contains("quick"), "{s:?}");
        assert!(s.target_met.is_none());
    }
    let p = &report.protection_window;
    assert!(p.memcpy_ns > 0 && p.bare_unprotect_ns > 0 && p.full_budget_window_ns > 0, "{p:?}");
    assert!(p.full_budget_ratio.is_some() && p.default_budget_ratio.is_some() && p.target_met.is_some(), "{p:?}");
    assert!(p.unprotect_calls_per_page.is_some_and(|c| c > 0.0 && c <= 1.0), "{p:?}");
    let thp = &report.thp;
    assert!(thp.pause_ratio.is_some() && thp.pause_target_met.is_some(), "{thp:?}");
    // Huge pages may be unavailable (THP disabled): then there is nothing to keep.
    assert_eq!(thp.kept_target_met.is_some(), thp.anon_huge_before_bytes > 0, "{thp:?}");
    assert!(w.decoupled_to_fork_ratio.is_some() && w.decoupled_vs_fork_target_met.is_some(), "{w:?}");
    assert!(m.wpsnap_mapped_peak_bytes > 0 && m.wpsnap_vs_fork_target_met.is_some(), "{m:?}");
    let names: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
    for name in [
        "stalls.bursty-pipe",
        "stalls.write-back",
        "writer_rate.decoupled_vs_fork",
        "extra_memory.decoupled_vs_fork",
        "protection_window.full_budget",
        "protection_window.default_budget",
        "thp.anon_huge_pages_kept",
        "thp.start_pause",
        "fault_wait.faults_only.p50_vs_busy_floor",
        "fault_wait.faults_only.p99_vs_busy_floor",
    ] {
        assert!(names.contains(&name), "no target row {name}: {names:?}");
    }
    assert!(!report.simulator.measured);
    assert!(report.simulator.note.starts_with("not measured"), "{}", report.simulator.note);
    assert!(report.simulator.simulated_per_wall_ratio.is_none());

    // The JSON round-trips and the markdown has every section.
    let json = serde_json::to_string(&report).expect("report serialises");
    let back: BenchReport = serde_json::from_str(&json).expect("report parses back");
    // Compared as parsed JSON: floats may differ in the last bit after a text round trip.
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("report is JSON");
    assert_eq!(serde_json::to_value(&back).expect("serialises again"), parsed);
    assert_eq!(back.fault_wait.decoupled.p99_ns, report.fault_wait.decoupled.p99_ns);
    assert_eq!(back.start_pause.len(), report.start_pause.len());
    let md = report.to_markdown();
    for section in [
        "### Fault wait",
        "### Start pause",
        "### Throughput",
        "### Writer slowdown",
        "### Extra memory",
        "### Slow disk",
        "### Simulator",
        "### Writer stalls",
        "### Protection window",
        "### THP",
        "### Targets",
    ] {
        assert!(md.contains(section), "markdown lacks {section}");
    }
    assert!(md.contains("not measured"), "the simulator's absence is stated");
    assert!(md.contains("skipped in quick mode"), "the skipped rows say why");
}

/// A latency row has its ratios exactly when it has samples, and ordered quantiles.
fn assert_consistent(row: &LatencyRow) {
    let ratios = [row.p50_ratio, row.p99_ratio, row.max_ratio];
    if row.samples > 0 {
        assert!(ratios.iter().all(Option::is_some), "{row:?}");
        assert!(row.p50_ns <= row.p99_ns && row.p99_ns <= row.p999_ns && row.p999_ns <= row.max_ns, "{row:?}");
    } else {
        assert!(ratios.iter().all(Option::is_none), "{row:?}");
    }
}
