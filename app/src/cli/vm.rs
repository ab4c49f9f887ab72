//! `wpsnap vm`: the test guest in a KVM VM, snapshotted live (or a no-snapshot baseline, or a
//! restore), with the guest's own store latencies in the report.

use super::args::VmArgs;
use super::signals::interrupted;
use super::summary::progress_bar;
use anyhow::{Context, bail};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use wpsnap_core::{LatencyRecorder, Nanos};
use wpsnap_linux::output::{Output, OutputSpec, open_output};
use wpsnap_linux::snapshot::SnapshotConfig;
use wpsnap_plot::{Series, format_ns, percentile_svg, write_svg};
use wpsnap_vmm::impact::{SnapshotImpact, snapshot_impact};
use wpsnap_vmm::serial::{CheckLine, StatLine};
use wpsnap_vmm::snapshot::{VmSnapshotReport, restore, snapshot_memory_bytes, start_live_snapshot};
use wpsnap_vmm::{GUEST_ELF, GuestConfig, Vm, VmConfig};

/// How often progress and interrupts are looked at.
const TICK: Duration = Duration::from_millis(20);
/// Bound on the restored guest answering the self-check request (a few periods).
const CHECK_WAIT: Duration = Duration::from_secs(30);

/// Everything `wpsnap vm` measured, as written to the JSON report.
#[derive(Debug, Serialize)]
pub struct VmReport {
    /// "snapshot", "no-snapshot" or "restore".
    pub mode: &'static str,
    pub memory_bytes: u64,
    pub vcpus: u32,
    pub workload: wpsnap_vmm::GuestPattern,
    pub guest_cmdline: String,
    pub huge_pages: bool,
    pub tsc_khz: u32,
    /// The session's report and the pause timings (snapshot mode).
    pub snapshot: Option<VmSnapshotReport>,
    /// Host time of the snapshot (or the baseline's measured window), ns since the VM started.
    pub window_start_ns: u64,
    pub window_end_ns: u64,
    /// The guest's store latencies before, during and after, and the time it lost.
    pub impact: SnapshotImpact,
    /// Time `MADV_COLLAPSE` took to re-form the guest's huge pages after the snapshot (None:
    /// not asked, or no snapshot).
    pub collapse_ns: Option<u64>,
    /// Why re-forming the huge pages failed, if it did (the run goes on: it is an
    /// optimisation, not part of the snapshot).
    pub collapse_error: Option<String>,
    /// AnonHugePages of guest memory (kB) before the snapshot and at the end.
    pub anon_huge_pages_kb_before: Option<u64>,
    pub anon_huge_pages_kb_after: Option<u64>,
    /// Restore mode: the guest's self-check verdicts after the restore.
    pub self_checks: Vec<CheckLine>,
    /// Every stats period the guest printed.
    pub stats: Vec<StatLine>,
}

fn vm_config(args: &VmArgs, memory_bytes: u64) -> VmConfig {
    VmConfig {
        memory_bytes,
        vcpus: args.vcpus,
        huge_pages: !args.no_huge_pages,
        prefault: !args.no_prefault,
        ..Default::default()
    }
}

fn guest_config(args: &VmArgs) -> GuestConfig {
    GuestConfig {
        pattern: args.workload,
        region_mb: args.region.map_or(0, |r| r.div_ceil(1 << 20)),
        seed: args.seed,
        report_ms: args.report_ms,
        ..Default::default()
    }
}

fn open_sink(args: &VmArgs) -> anyhow::Result<Box<dyn Output>> {
    let spec: OutputSpec = match &args.sink_cmd {
        // The same as `--out 'cmd:COMMAND'`.
        Some(command) => OutputSpec::Command(command.clone()),
        None => args.out.parse().context("--out")?,
    };
    open_output(&spec).with_context(|| format!("opening {}", spec.destination()))
}

/// Sleeps `ms` in ticks; fails if the guest stops or the user interrupts.
fn run_for(vm: &Vm, ms: u64) -> anyhow::Result<()> {
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    while std::time::Instant::now() < until {
        vm.check()?;
        if let Some(signal) = interrupted() {
            bail!("interrupted by {signal}");
        }
        std::thread::sleep(TICK.min(until.saturating_duration_since(std::time::Instant::now())));
    }
    Ok(())
}

/// Runs `wpsnap vm` as `args` say; prints a summary (or JSON) and writes the reports.
pub fn vm(args: &VmArgs) -> anyhow::Result<VmReport> {
    if let Some(path) = &args.write_guest_elf {
        std::fs::write(path, GUEST_ELF).with_context(|| format!("writing {}", path.display()))?;
        println!("tsc_khz={}", wpsnap_vmm::host_tsc_khz()?);
        std::process::exit(0);
    }
    let report = match &args.restore {
        Some(path) => run_restore(args, path)?,
        None => run_guest(args)?,
    };
    write_outputs(args, &report)?;
    if report.self_checks.iter().any(|c| !c.ok) {
        bail!("the restored guest's self-check failed");
    }
    Ok(report)
}

fn run_guest(args: &VmArgs) -> anyhow::Result<VmReport> {
    let elf = match &args.guest_elf {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => GUEST_ELF.to_vec(),
    };
    let guest = guest_config(args);
    let vm = Vm::boot(&elf, &guest, vm_config(args, args.memory))?;
    run_for(&vm, args.warmup_ms)?;
    let thp_before = vm.memory().anon_huge_pages_kb();
    let start_ns = vm.now_ns();
    let snapshot = if args.no_snapshot {
        run_for(&vm, args.after_ms)?;
        None
    } else {
        Some(snapshot_vm(args, &vm)?)
    };
    let end_ns = vm.now_ns();
    let (collapse_ns, collapse_error) = match snapshot.is_some() && !args.no_collapse && !args.no_huge_pages {
        true => {
            let started = std::time::Instant::now();
            match vm.memory().collapse_huge_pages() {
                Ok(()) => (Some(started.elapsed().as_nanos() as u64), None),
                Err(e) => (None, Some(e.to_string())),
            }
        }
        false => (None, None),
    };
    if !args.no_snapshot {
        run_for(&vm, args.after_ms)?;
    }
    let thp_after = vm.memory().anon_huge_pages_kb();
    let stats: Vec<StatLine> = vm.with_serial(|s| s.stats.iter().cloned().collect());
    let warm_ns = start_ns.saturating_sub(args.warmup_ms * 1_000_000 / 2);
    let impact = snapshot_impact(&stats, warm_ns, start_ns, end_ns);
    let mut cmdline = guest.clone();
    cmdline.tsc_khz = u64::from(vm.tsc_khz());
    vm.stop()?;
    Ok(VmReport {
        mode: if args.no_snapshot { "no-snapshot" } else { "snapshot" },
        memory_bytes: args.memory,
        vcpus: args.vcpus,
        workload: args.workload,
        guest_cmdline: cmdline.cmdline(args.vcpus),
        huge_pages: !args.no_huge_pages,
        tsc_khz: cmdline.tsc_khz as u32,
        snapshot,
        window_start_ns: start_ns,
        window_end_ns: end_ns,
        impact,
        collapse_ns,
        collapse_error,
        anon_huge_pages_kb_before: thp_before,
        anon_huge_pages_kb_after: thp_after,
        self_checks: Vec::new(),
        stats,
    })
}

fn snapshot_vm(args: &VmArgs, vm: &Vm) -> anyhow::Result<VmSnapshotReport> {
    args.policy.validate().context("--policy")?;
    let config = SnapshotConfig {
        service_model: args.model,
        policy: args.policy.clone(),
        scan_batch_pages: args.scan_batch_pages,
        budget_bytes: args.budget,
        ..SnapshotConfig::default()
    };
    let output = open_sink(args)?;
    let live = start_live_snapshot(vm, output, config, |_| {})?;
    let quiet = args.json || args.out == "-";
    let bar = progress_bar(vm.memory().len() / 4096, quiet);
    while !live.is_done() {
        if let Some(signal) = interrupted() {
            bar.abandon();
            let error = live.cancel(&format!("interrupted by {signal}"));
            bail!("{error}; the output was not completed (a file is left only as NAME.partial)");
        }
        bar.set_position(live.progress().pages_saved);
        std::thread::sleep(TICK);
    }
    bar.finish_and_clear();
    live.finish().context("the snapshot failed; the vCPUs were released and the output aborted")
}

fn run_restore(args: &VmArgs, path: &Path) -> anyhow::Result<VmReport> {
    let memory_bytes = snapshot_memory_bytes(path)?;
    let vm = restore(path, vm_config(args, memory_bytes))?;
    let start_ns = vm.now_ns();
    vm.request_verify()?;
    let vcpus = args.vcpus as usize;
    let checks = vm.wait_for("the guest's self-check after the restore", CHECK_WAIT, |s| {
        (s.checks.len() >= vcpus).then(|| s.checks.iter().cloned().collect::<Vec<_>>())
    })?;
    run_for(&vm, args.after_ms)?;
    let end_ns = vm.now_ns();
    let stats: Vec<StatLine> = vm.with_serial(|s| s.stats.iter().cloned().collect());
    let thp = vm.memory().anon_huge_pages_kb();
    let tsc_khz = vm.tsc_khz();
    vm.stop()?;
    Ok(VmReport {
        mode: "restore",
        memory_bytes,
        vcpus: args.vcpus,
        workload: args.workload,
        guest_cmdline: String::new(),
        huge_pages: !args.no_huge_pages,
        tsc_khz,
        snapshot: None,
        window_start_ns: start_ns,
        window_end_ns: end_ns,
        impact: snapshot_impact(&stats, 0, start_ns, start_ns),
        collapse_ns: None,
        collapse_error: None,
        anon_huge_pages_kb_before: None,
        anon_huge_pages_kb_after: thp,
        self_checks: checks,
        stats,
    })
}

/// The fields `wpsnap vm-impact` reads.
#[derive(Debug, serde::Deserialize)]
struct StatsFile {
    stats: Vec<StatLine>,
    window_start_ns: u64,
    window_end_ns: u64,
}

/// `wpsnap vm-impact`: the guest-side figures of a stats file, as JSON on standard output.
pub fn vm_impact(file: &Path, warmup_ms: u64) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let run: StatsFile = serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let warm_ns = run.window_start_ns.saturating_sub(warmup_ms * 1_000_000 / 2);
    let impact = snapshot_impact(&run.stats, warm_ns, run.window_start_ns, run.window_end_ns);
    println!("{}", serde_json::to_string_pretty(&impact)?);
    Ok(())
}

/// The guest's log2 buckets as a recorder (each store at its bucket's middle), for the charts.
fn recorder_of(hist: &[u64]) -> LatencyRecorder {
    let mut recorder = LatencyRecorder::new();
    for (bucket, &count) in hist.iter().enumerate() {
        let middle = (3u64 << bucket) / 2;
        for _ in 0..count {
            recorder.record(Nanos(middle.max(1)));
        }
    }
    recorder
}

fn text(report: &VmReport) -> String {
    let i = &report.impact;
    let mut lines = vec![format!(
        "wpsnap vm: {} MiB guest, {} vCPU, {} stores, mode {}",
        report.memory_bytes >> 20,
        report.vcpus,
        report.workload.name(),
        report.mode
    )];
    if let Some(s) = &report.snapshot {
        lines.push(format!(
            "snapshot: {} total, pause {} (vCPUs parked in {}), {} pages by fault, {} B to {}",
            format_ns(s.session.duration_ns),
            format_ns(s.pause.downtime_ns),
            format_ns(s.pause.park_ns),
            s.session.engine.stats.pages_by_fault,
            s.session.sink_bytes,
            s.session.destination
        ));
    }
    for (name, w) in [("before", &i.before), ("during", &i.during), ("after", &i.after)] {
        if w.periods == 0 {
            continue;
        }
        lines.push(format!(
            "guest {name}: {:.1} M stores/s, blocked {:.0} %, p50 <= {}, p99 <= {}, p99.9 <= {}, max {}, >= 1 ms: {}, >= 16 ms: {}",
            w.stores_per_sec / 1e6,
            w.blocked_share * 100.0,
            format_ns(w.p50_ns),
            format_ns(w.p99_ns),
            format_ns(w.p999_ns),
            format_ns(w.max_ns),
            w.ge1ms,
            w.ge16ms
        ));
    }
    if report.mode != "restore" {
        lines.push(format!(
            "guest lost {} ({} stores not made at the before rate)",
            format_ns(i.lost_ns.max(0) as u64),
            i.stores_missing
        ));
    }
    if let (Some(b), Some(a)) = (report.anon_huge_pages_kb_before, report.anon_huge_pages_kb_after) {
        let collapse = match (&report.collapse_ns, &report.collapse_error) {
            (Some(ns), _) => format!(" (re-formed in {})", format_ns(*ns)),
            (None, Some(e)) => format!(" (re-forming failed: {e})"),
            (None, None) => String::new(),
        };
        lines.push(format!("guest huge pages: {} MiB before, {} MiB after{collapse}", b >> 10, a >> 10));
    }
    for c in &report.self_checks {
        let verdict = if c.ok { "passed" } else { "FAILED" };
        lines.push(format!("self-check vCPU {}: {verdict} ({} records, {} transfers)", c.cpu, c.records, c.transfers));
    }
    lines.join("\n")
}

fn write_outputs(args: &VmArgs, report: &VmReport) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let i = &report.impact;
        let recorders: Vec<(&str, LatencyRecorder)> =
            [("before", &i.before), ("during", &i.during), ("after", &i.after)]
                .into_iter()
                .filter(|(_, w)| w.stores > 0)
                .map(|(name, w)| (name, recorder_of(&w.hist)))
                .collect();
        let series: Vec<Series<'_>> = recorders.iter().map(|(name, r)| Series::new(name, r)).collect();
        if !series.is_empty() {
            write_svg(path, &percentile_svg("guest store latency (log2 buckets)", &series)?)?;
        }
    }
    let out = if args.json { json } else { text(report) };
    if args.out == "-" && args.sink_cmd.is_none() {
        eprintln!("{out}");
    } else {
        println!("{out}");
    }
    Ok(())
}
