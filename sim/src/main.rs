//! `wpsnap-sim`: run, compare and sweep throttle policies in the deterministic simulator.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_plot::{CcdfSeries, Log2Column, TimelineBin, ccdf_svg, log2_ms_table, timeline_svg, write_svg};
use wpsnap_sim::config::swarm_config;
use wpsnap_sim::disk::{CompetingIo, DiskPreset};
use wpsnap_sim::report::render_text;
use wpsnap_sim::sweep::{Job, RunSummary, Shard, ShardFile, run_all, table};
use wpsnap_sim::{SimConfig, SimReport};
use wpsnap_workload::Pattern;

#[derive(Parser)]
#[command(
    name = "wpsnap-sim",
    version,
    about = "Deterministic simulator of live write-protect snapshots: \
writers, disk and the wpsnap-core engine on a virtual clock. Same seed and config, same report."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario and print its report. With no options: the default scenario (the
    /// seed author's test bed scaled to 4 GiB: qemu model, no limiter, 6 video writers,
    /// hdd-7200).
    Run(RunArgs),
    /// Run several policies on the same seed and scenario and print them side by side.
    Compare(CompareArgs),
    /// Run a grid of policies x models x disks over several seeds, in parallel (or one shard
    /// of it, see --shard).
    Sweep(SweepArgs),
    /// Combine the shard files of one sweep: prints and writes exactly what the unsharded
    /// sweep would.
    Merge(MergeArgs),
    /// Measure the simulator itself: events per wall-clock second and per CPU-second of the
    /// simulating thread, on a 64 GiB snapshot.
    Bench(BenchArgs),
}

/// The scenario; flags override the config file, which overrides the default scenario.
#[derive(Args, Clone)]
struct Scenario {
    /// JSON config file (see docs/simulator.md); unknown fields are errors.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Region size in MiB (4 KiB pages).
    #[arg(long)]
    region_mib: Option<u64>,
    /// Service model: qemu or decoupled.
    #[arg(long)]
    model: Option<ServiceModel>,
    /// Policy: none, limit-scan-rate, limit-scan-rate-true-latency, bandwidth[:RATE],
    /// latency-target[:P99], with optional knobs (docs/policies.md); `seed` and
    /// `seed-true-latency` are the old names of the first two.
    #[arg(long)]
    policy: Option<PolicyConfig>,
    /// Disk preset: hdd-7200, sata-ssd, nvme, tmpfs.
    #[arg(long)]
    disk: Option<DiskPreset>,
    /// Writer threads.
    #[arg(long)]
    writers: Option<u32>,
    /// Write pattern: uniform, zipf:THETA, hot-set:W/P, sequential, video.
    #[arg(long)]
    pattern: Option<Pattern>,
    /// Mean writes per second per writer.
    #[arg(long)]
    writes_per_sec: Option<f64>,
    /// Share of pages that are zero at the snapshot instant (sent as a header only).
    #[arg(long)]
    zero_page_percent: Option<u8>,
    /// Pages per scan capture.
    #[arg(long)]
    scan_batch_pages: Option<u64>,
    /// A competing writer on the same device, in MB/s.
    #[arg(long)]
    competing_mbps: Option<u64>,
    /// Skip the baseline run without a snapshot (no throughput ratio).
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Args)]
struct RunArgs {
    /// The seed; everything random in the run derives from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Let the seed pick the whole configuration (swarm testing); the picks are printed.
    #[arg(long)]
    swarm: bool,
    /// Largest region a swarm run picks, in pages.
    #[arg(long, default_value_t = 65_536)]
    swarm_pages_max: u64,
    #[command(flatten)]
    scenario: Scenario,
    /// Print the JSON report instead of the text summary.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write SVG plots (fault-wait distribution, timeline) into this directory.
    #[arg(long)]
    svg: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Policies to compare, comma separated (a policy's own `KEY=VALUE` knobs stay with it:
    /// `none,bandwidth:64M,burst=1M,latency-target:2ms`).
    #[arg(long, default_value = "none,limit-scan-rate,latency-target")]
    policies: PolicyList,
    #[command(flatten)]
    scenario: Scenario,
    /// Write the fault-wait chart and one timeline per policy into this directory.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// File name prefix for the SVGs.
    #[arg(long, default_value = "compare")]
    svg_prefix: String,
    /// Write the full JSON reports here (an array).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SweepArgs {
    /// Number of seeds (1..=N).
    #[arg(long, default_value_t = 4)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Policies, comma separated, as for `compare`.
    #[arg(long, default_value = "none,limit-scan-rate,limit-scan-rate-true-latency,latency-target")]
    policies: PolicyList,
    #[arg(long, value_delimiter = ',', default_value = "qemu,decoupled")]
    models: Vec<ServiceModel>,
    #[arg(long, value_delimiter = ',', default_value = "hdd-7200")]
    disks: Vec<DiskPreset>,
    #[command(flatten)]
    scenario: Scenario,
    /// Let each seed pick its whole configuration instead (swarm testing).
    #[arg(long)]
    swarm: bool,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write one JSON summary per run here (JSON lines); with --shard, the shard file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only shard I of N (from 1): the cells whose index is I-1 modulo N. Needs --out;
    /// combine the N files with `merge`.
    #[arg(long)]
    shard: Option<Shard>,
}

#[derive(Args)]
struct MergeArgs {
    /// The shard files (`sweep --shard I/N --out FILE`), all N of them, in any order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Write one JSON summary per run here (JSON lines), as the unsharded sweep's --out.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Region in pages (default 16 Mi pages: 64 GiB of 4 KiB pages).
    #[arg(long, default_value_t = 1 << 24)]
    pages: u64,
    #[arg(long, default_value_t = 4)]
    writers: u32,
    #[arg(long, default_value = "nvme")]
    disk: DiskPreset,
    #[arg(long, default_value = "qemu")]
    model: ServiceModel,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A comma-separated list of policies in their text form (`wpsnap_core::PolicyConfig`'s
/// `FromStr`). A piece with `=` and no `:` is a knob of the policy before it, so knobs need
/// no other separator: `bandwidth:64M,slice=10ms,none,limit-scan-rate:slow-fault=2ms`.
#[derive(Clone, Debug)]
struct PolicyList(Vec<PolicyConfig>);

impl std::str::FromStr for PolicyList {
    type Err = wpsnap_core::policy::PolicyParseError;
    fn from_str(text: &str) -> Result<PolicyList, Self::Err> {
        let mut texts: Vec<String> = Vec::new();
        for piece in text.split(',') {
            match texts.last_mut() {
                Some(last) if piece.contains('=') && !piece.contains(':') => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => texts.push(piece.to_string()),
            }
        }
        texts.iter().map(|t| t.parse()).collect::<Result<_, _>>().map(PolicyList)
    }
}

impl Scenario {
    fn build(&self) -> Result<SimConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                SimConfig::from_json(&text).with_context(|| format!("config {}", path.display()))?
            }
            None => SimConfig::default_scenario(),
        };
        if let Some(mib) = self.region_mib {
            c.engine.page_count = (mib << 20) / c.engine.page_size;
        }
        if let Some(m) = self.model {
            c.engine.service_model = m;
        }
        if let Some(p) = &self.policy {
            c.engine.policy = p.clone();
        }
        if let Some(d) = self.disk {
            c.disk_preset = d;
            c.disk = None;
        }
        if let Some(w) = self.writers {
            c.writers.count = w;
        }
        if let Some(p) = &self.pattern {
            c.writers.pattern = p.clone();
        }
        if let Some(r) = self.writes_per_sec {
            c.writers.writes_per_sec = r;
        }
        if let Some(z) = self.zero_page_percent {
            c.zero_page_percent = z;
        }
        if let Some(b) = self.scan_batch_pages {
            c.engine.scan_batch_pages = b;
        }
        if let Some(mbps) = self.competing_mbps {
            let mut disk = c.disk_params();
            let switch_ns = if c.disk_preset == DiskPreset::Hdd7200 { 8_500_000 } else { 0 };
            disk.competing = Some(CompetingIo { bytes_per_sec: mbps * 1_000_000, switch_ns });
            c.disk = Some(disk);
        }
        if self.no_baseline {
            c.baseline = false;
        }
        c.validate()?;
        Ok(c)
    }
}

fn describe(c: &SimConfig) -> String {
    format!(
        "model={} policy={} disk={} pages={} writers={} pattern={} writes_per_sec={} zero_page_percent={}",
        c.engine.service_model,
        c.engine.policy,
        c.disk_preset,
        c.engine.page_count,
        c.writers.count,
        c.writers.pattern,
        c.writers.writes_per_sec,
        c.zero_page_percent
    )
}

fn write_json(path: &PathBuf, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn cmd_run(a: RunArgs) -> Result<()> {
    eprintln!("seed={}", a.seed);
    let config = if a.swarm {
        let (c, picked) = swarm_config(a.seed, a.swarm_pages_max);
        eprintln!("swarm: {}", picked.join(" "));
        c
    } else {
        a.scenario.build()?
    };
    eprintln!("{}", describe(&config));
    let started = Instant::now();
    let report = wpsnap_sim::run(a.seed, &config)?;
    let wall = started.elapsed();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    eprintln!("wall time {:.2} s, {} events", wall.as_secs_f64(), report.events);
    if let Some(out) = &a.out {
        write_json(out, &report)?;
    }
    if let Some(dir) = &a.svg {
        std::fs::create_dir_all(dir)?;
        let label = report.config.engine.policy.to_string();
        write_fault_wait_svg(&dir.join("fault-wait.svg"), "True fault wait", &[(label, &report)])?;
        write_timeline_svg(&dir.join("timeline.svg"), &format!("{} seed={}", describe(&config), a.seed), &report)?;
    }
    if !report.is_clean() {
        bail!("the run broke an invariant (see the report)");
    }
    Ok(())
}

fn threads_default() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed_precise} eta {eta}") {
        bar.set_style(style);
    }
    bar
}

fn cmd_compare(a: CompareArgs) -> Result<()> {
    eprintln!("seed={}", a.seed);
    let base = a.scenario.build()?;
    eprintln!("{}", describe(&base));
    let jobs: Vec<Job> = a
        .policies
        .0
        .iter()
        .map(|p| {
            let mut config = base.clone();
            config.engine.policy = p.clone();
            Job { seed: a.seed, label: p.to_string(), config }
        })
        .collect();
    let bar = progress(jobs.len());
    let results = run_all(&jobs, threads_default(), &|| bar.inc(1));
    bar.finish_and_clear();
    let mut reports: Vec<(String, SimReport)> = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        reports.push((job.label.clone(), result.with_context(|| format!("policy {}", job.label))?));
    }
    let rows: Vec<RunSummary> = reports.iter().map(|(l, r)| RunSummary::of(l, r)).collect();
    print!("{}", table(&rows));
    println!("\nlog2-ms table of true fault waits (seed measure in brackets):");
    let columns: Vec<Log2Column> = reports
        .iter()
        .map(|(label, r)| match &r.engine {
            Some(e) => Log2Column::counts_with_bracketed(label, &e.fault_wait.log2_ms, &e.seed_latency.log2_ms),
            None => Log2Column::counts(label, &Default::default()),
        })
        .collect();
    print!("{}", log2_ms_table("ms", &columns));
    if let Some(out) = &a.out {
        let all: Vec<&SimReport> = reports.iter().map(|(_, r)| r).collect();
        write_json(out, &all)?;
    }
    if let Some(dir) = &a.svg {
        std::fs::create_dir_all(dir)?;
        let runs: Vec<(String, &SimReport)> = reports.iter().map(|(l, r)| (l.clone(), r)).collect();
        let title = format!("True fault wait, {} {} seed={}", base.disk_preset, describe_short(&base), a.seed);
        let path = dir.join(format!("{}-fault-wait.svg", a.svg_prefix));
        write_fault_wait_svg(&path, &title, &runs)?;
        eprintln!("wrote {}", path.display());
        for (label, r) in &reports {
            // A policy's text form may carry `:`, `,` and `=`; keep file names plain.
            let file_label = label.replace([':', ',', '='], "_");
            let path = dir.join(format!("{}-timeline-{file_label}.svg", a.svg_prefix));
            write_timeline_svg(&path, &format!("{label}: scan rate and fault waits, seed={}", a.seed), r)?;
            eprintln!("wrote {}", path.display());
        }
    }
    if rows.iter().any(|r| !r.clean) {
        bail!("a run broke an invariant");
    }
    Ok(())
}

/// The share of faults that waited at least x, one line per run.
fn write_fault_wait_svg(path: &std::path::Path, title: &str, runs: &[(String, &SimReport)]) -> Result<()> {
    let series: Vec<CcdfSeries<'_>> =
        runs.iter().map(|(label, r)| CcdfSeries { label, recorded: &r.fault_wait_histogram }).collect();
    write_svg(path, &ccdf_svg(title, &series)?)?;
    Ok(())
}

/// Scan rate and the longest fault wait per bin of one run.
fn write_timeline_svg(path: &std::path::Path, title: &str, report: &SimReport) -> Result<()> {
    let t = &report.timeline;
    let bins: Vec<TimelineBin> = t
        .bins
        .iter()
        .map(|b| TimelineBin {
            scan_pages: b.scan_pages,
            fault_waits: b.fault_waits,
            fault_wait_max_ns: b.fault_wait_max_ns,
        })
        .collect();
    write_svg(path, &timeline_svg(title, t.bin_ns, &bins)?)?;
    Ok(())
}

fn describe_short(c: &SimConfig) -> String {
    format!(
        "{} {} MiB {}x{}",
        c.engine.service_model,
        (c.engine.page_count * c.engine.page_size) >> 20,
        c.writers.count,
        c.writers.pattern
    )
}

fn cmd_sweep(a: SweepArgs) -> Result<()> {
    let base = a.scenario.build()?;
    let mut jobs = Vec::new();
    for seed in a.first_seed..a.first_seed.saturating_add(a.seeds) {
        if a.swarm {
            let (config, picked) = swarm_config(seed, 65_536);
            eprintln!("seed={seed} swarm: {}", picked.join(" "));
            jobs.push(Job { seed, label: format!("swarm-{seed}"), config });
            continue;
        }
        for &model in &a.models {
            for &disk in &a.disks {
                for policy in &a.policies.0 {
                    let mut config = base.clone();
                    config.engine.service_model = model;
                    config.engine.policy = policy.clone();
                    config.disk_preset = disk;
                    config.disk = None;
                    let label = format!("{model}/{disk}/{policy}");
                    jobs.push(Job { seed, label, config });
                }
            }
        }
    }
    if jobs.len() > wpsnap_sim::sweep::SWEEP_RUNS_MAX {
        bail!("{} runs is more than the bound of {}", jobs.len(), wpsnap_sim::sweep::SWEEP_RUNS_MAX);
    }
    eprintln!("seeds={}..{} runs={} {}", a.first_seed, a.first_seed + a.seeds - 1, jobs.len(), describe(&base));
    let (cells, grid_digest) = (jobs.len(), wpsnap_sim::sweep::grid_digest(&jobs));
    let mut cell_of: Vec<usize> = (0..cells).collect();
    if let Some(shard) = a.shard {
        if a.out.is_none() {
            bail!("--shard needs --out FILE for the shard's results");
        }
        cell_of.retain(|&cell| shard.owns(cell));
        jobs = cell_of.iter().map(|&cell| jobs[cell].clone()).collect();
        eprintln!("shard {shard}: {} of {cells} runs", jobs.len());
    }
    let bar = progress(jobs.len());
    let results = run_all(&jobs, a.threads.unwrap_or_else(threads_default), &|| bar.inc(1));
    bar.finish_and_clear();
    let mut rows = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        let report = result.with_context(|| format!("{} seed={}", job.label, job.seed))?;
        rows.push(RunSummary::of(&job.label, &report));
    }
    if let (Some(shard), Some(out)) = (a.shard, &a.out) {
        let rows = cell_of.iter().zip(&rows).map(|(&cell, r)| wpsnap_sim::sweep::ShardRow { cell, summary: r.clone() });
        let file = ShardFile {
            format: wpsnap_sim::sweep::SHARD_FORMAT.into(),
            shard,
            cells,
            grid_digest,
            rows: rows.collect(),
        };
        std::fs::write(out, serde_json::to_string(&file)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    print_sweep(rows, if a.shard.is_some() { None } else { a.out.as_deref() })
}

/// Prints a sweep's table and ranges, writes its JSON lines, and fails on an unclean run.
fn print_sweep(mut rows: Vec<RunSummary>, out: Option<&std::path::Path>) -> Result<()> {
    wpsnap_sim::sweep::sort_rows(&mut rows);
    print!("{}", wpsnap_sim::sweep::report_text(&rows));
    if let Some(out) = out {
        std::fs::write(out, wpsnap_sim::sweep::json_lines(&rows))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let unclean = rows.iter().filter(|r| !r.clean).count();
    if unclean > 0 {
        bail!("{unclean} runs broke an invariant");
    }
    Ok(())
}

fn cmd_merge(a: MergeArgs) -> Result<()> {
    let mut files = Vec::new();
    for path in &a.shards {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ShardFile =
            serde_json::from_str(&text).with_context(|| format!("{}: not a shard file", path.display()))?;
        files.push(file);
    }
    let rows = wpsnap_sim::sweep::merge(files).context("merging shards")?;
    eprintln!("merged {} shard files: {} runs", a.shards.len(), rows.len());
    print_sweep(rows, a.out.as_deref())
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of the calling thread, in seconds: unlike wall time it does not grow while the
/// thread waits for a core on a loaded machine.
fn thread_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    eprintln!("seed={}", a.seed);
    let mut config = SimConfig::new(a.pages * 4096, a.model, PolicyConfig::None, a.disk);
    config.writers.count = a.writers;
    config.writers.pattern = Pattern::Uniform;
    config.baseline = false;
    eprintln!("{}", describe(&config));
    let started = Instant::now();
    let cpu_started = thread_cpu_s();
    let report = wpsnap_sim::run(a.seed, &config)?;
    let cpu = thread_cpu_s() - cpu_started;
    let wall = started.elapsed().as_secs_f64();
    let pages = report.snapshot.pages_by_scan + report.snapshot.pages_by_fault;
    println!(
        "region: {} pages ({} GiB), writers {}, disk {}, model {}",
        a.pages,
        (a.pages * 4096) >> 30,
        a.writers,
        a.disk,
        a.model
    );
    println!(
        "simulated: snapshot {:.2} s virtual, {} events, {} pages saved",
        report.snapshot.duration_ns.unwrap_or(0) as f64 / 1e9,
        report.events,
        pages
    );
    println!("wall time: {wall:.2} s");
    println!("cpu time: {cpu:.3} s (the simulating thread)");
    println!("events/s: {:.2} M", report.events as f64 / wall / 1e6);
    println!("events per cpu-second: {:.2} M", report.events as f64 / cpu.max(1e-9) / 1e6);
    println!(
        "page events/s (pages saved + writes + faults): {:.2} M",
        (pages + report.writers.writes_during_snapshot + report.engine.as_ref().map_or(0, |e| e.stats.faults)) as f64
            / wall
            / 1e6
    );
    println!(
        "per-page state: {} KiB ({:.2} bits/page); peak RSS {} KiB",
        report.memory_bytes / 1024,
        report.memory_bytes as f64 * 8.0 / a.pages as f64,
        peak_rss_kib().map_or("?".into(), |k| k.to_string())
    );
    println!("clean: {}", report.is_clean());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Run(a) => cmd_run(a),
        Command::Compare(a) => cmd_compare(a),
        Command::Sweep(a) => cmd_sweep(a),
        Command::Merge(a) => cmd_merge(a),
        Command::Bench(a) => cmd_bench(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line; no backtrace (that is for bugs, not bad input).
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
