//! The human summary, the progress bar, and the report files.

use super::args::RunArgs;
use super::job::JobReport;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use wpsnap_core::ServiceModel;
use wpsnap_linux::uffd::UnpopulatedMethod;
use wpsnap_plot::{Series, format_ns, log2_ms_svg, percentile_svg, text_report, write_svg};

/// A progress bar on a terminal; hidden with `--json` or when stderr is not a terminal.
pub fn progress_bar(pages: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(pages);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} saving [{bar:40}] {pos}/{len} pages ({percent}%) {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The writers' own timing of every write slower than `FAULT_WAIT_NS_MIN` (both backends): a
/// different measure from the engine's fault wait, so it has its own name.
const SLOW_WRITES_LABEL: &str = "slow writes";

fn model_name(model: ServiceModel) -> &'static str {
    match model {
        ServiceModel::Qemu => "qemu",
        ServiceModel::Decoupled => "decoupled",
    }
}

fn unpopulated_name(method: UnpopulatedMethod) -> &'static str {
    match method {
        UnpopulatedMethod::KernelWpUnpopulated => "protected by the kernel (wp-unpopulated)",
        UnpopulatedMethod::TouchByReading => "touched by reading before protecting",
    }
}

fn mib(bytes: f64) -> f64 {
    bytes / (1u64 << 20) as f64
}

/// The text summary.
pub fn text(report: &JobReport) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "backend {}, {} region of {:.0} MiB, {} writers, {} writes",
        report.backend,
        report.backing,
        mib(report.region_bytes as f64),
        report.writers,
        report.writes
    ));
    if let Some(snap) = &report.snapshot {
        let stats = &snap.engine.stats;
        let opened_via = report.uffd_opened_via.map(|v| format!(" (opened via {v})")).unwrap_or_default();
        line(format!(
            "uffd features{opened_via}: {}; never-touched pages: {}",
            snap.uffd_features.join(", "),
            unpopulated_name(snap.unpopulated_method)
        ));
        line(format!(
            "policy {}, service model {}",
            snap.engine.config.policy.name(),
            model_name(snap.engine.config.service_model)
        ));
        line(format!(
            "pause {} (whole-region write-protect {}), protection window {}, duration {}, throughput {:.0} MiB/s",
            format_ns(snap.pause_ns),
            format_ns(snap.protect_ns),
            format_ns(snap.protection_window_ns),
            format_ns(snap.duration_ns),
            mib(snap.throughput_bytes_per_sec)
        ));
        line(format!(
            "memory budget {:.0} MiB, staging peak {:.1} MiB mapped ({} chunks mapped, {} reused); {} faults waited for budget room ({}); fault spin {}",
            mib(snap.budget_bytes as f64),
            mib(snap.staging_mapped_peak_bytes as f64),
            snap.staging_chunks_mapped,
            snap.staging_chunk_reuses,
            stats.fault_blocked_on_budget,
            format_ns(stats.fault_blocked_on_budget_ns),
            format_ns(snap.fault_spin_ns)
        ));
        for t in &snap.threads {
            line(format!(
                "thread {}: {} wall, {} on a CPU, {} waiting for a CPU, {} blocked ({} timeslices)",
                t.name,
                format_ns(t.wall_ns),
                format_ns(t.cpu_ns),
                format_ns(t.runqueue_wait_ns),
                format_ns(t.blocked_ns()),
                t.timeslices
            ));
        }
        line(format!(
            "pages: {} by scan, {} by fault ({} fault events, {} wake-only); {} unprotect calls for {} pages; sink {:.1} MiB",
            stats.pages_by_scan,
            stats.pages_by_fault,
            stats.faults,
            stats.wakes_only,
            snap.unprotect_calls,
            snap.unprotect_pages,
            mib(snap.sink_bytes as f64)
        ));
        let threads: Vec<String> =
            snap.thread_priorities.iter().map(|t| format!("{} {}", t.thread, t.policy)).collect();
        line(format!("threads: {}", threads.join(", ")));
        for note in snap.thread_priorities.iter().filter_map(|t| t.note.as_ref()) {
            line(format!("note: {note}"));
        }
        let w = &snap.engine.fault_wait;
        line(format!(
            "fault wait (writers' waits on protected pages, as the engine recorded them): n={} p50 {} p99 {} max {}",
            w.count,
            format_ns(w.p50_ns),
            format_ns(w.p99_ns),
            format_ns(w.max_ns)
        ));
        let seed = &snap.engine.seed_latency;
        line(format!(
            "seed's measure (event read to next page saved): n={} p50 {} p99 {} max {}",
            seed.count,
            format_ns(seed.p50_ns),
            format_ns(seed.p99_ns),
            format_ns(seed.max_ns)
        ));
    }
    if let Some(trip) = &report.bare_round_trip {
        line(format!(
            "yardstick, bare uffd round trip (fault, copy 4 KiB, unprotect), same run: p50 {} p99 {} max {}",
            format_ns(trip.p50_ns),
            format_ns(trip.p99_ns),
            format_ns(trip.max_ns)
        ));
    }
    if let Some(ns) = report.bare_protect_ns {
        line(format!("yardstick, bare whole-region write-protect (populated): {}", format_ns(ns)));
    }
    if let Some(fork) = &report.fork {
        line(format!(
            "fork pause {}, child write {}, duration {}",
            format_ns(fork.pause_ns),
            format_ns(fork.child_write_ns),
            format_ns(fork.duration_ns)
        ));
        line(format!(
            "extra memory: region copied on write {:.1} MiB (peak), child private {:.1} MiB (peak), {} samples",
            mib(fork.extra_memory.region_cow_bytes_peak as f64),
            mib(fork.extra_memory.child_private_bytes_peak as f64),
            fork.extra_memory.samples
        ));
    }
    line("slow writes: every write slower than 1 µs during the snapshot, as the writers timed it".into());
    line(text_report(&[Series::new(SLOW_WRITES_LABEL, &report.fault_wait_recorder)]));
    if let Some(w) = &report.writer_fault_wait_exact {
        line(format!(
            "fault waits, exact (writes to pages write-protected just before, --classify-faults): n={} p50 {} p99 {} max {}",
            w.count,
            format_ns(w.p50_ns),
            format_ns(w.p99_ns),
            format_ns(w.max_ns)
        ));
    }
    if let Some(w) = &report.writer_fault_wait_exact_less_run_delay {
        line(format!(
            "the same less each writer's own run-queue wait: p50 {} p99 {} max {}",
            format_ns(w.p50_ns),
            format_ns(w.p99_ns),
            format_ns(w.max_ns)
        ));
    }
    match report.image_matches_reference {
        Some(true) => line("image check: equals the reference copy taken at the snapshot instant".into()),
        Some(false) => line("image check: DIFFERS from the reference copy".into()),
        None => line("image check: not done (use --check with a file output)".into()),
    }
    line(format!("live memory holds every write: {}", report.live_memory_ok));
    if let Some(path) = &report.output_path {
        line(format!("snapshot: {}", path.display()));
    }
    s
}

/// Prints the summary or JSON and writes the report and charts `args` asks for.
pub fn write_outputs(args: &RunArgs, report: &JobReport) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    let series = [Series::new(SLOW_WRITES_LABEL, &report.fault_wait_recorder)];
    if report.fault_wait_recorder.count() > 0 {
        if let Some(path) = &args.svg {
            write_svg(path, &percentile_svg("wpsnap: writes slower than 1 µs, as writers timed them", &series)?)?;
        }
        if let Some(path) = &args.log2_svg {
            write_svg(path, &log2_ms_svg("wpsnap: slow writes, log2-ms buckets", &series)?)?;
        }
    }
    // With the snapshot on standard output, everything else goes to stderr.
    let to_stderr = args.out == "-";
    let text = if args.json { json } else { text(report) };
    if to_stderr {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    if !args.json {
        for (what, path) in [("report", &args.report), ("chart", &args.svg), ("chart", &args.log2_svg)] {
            if let Some(path) = path {
                let line = format!("{what}: {}", path.display());
                if to_stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}
