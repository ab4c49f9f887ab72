//! `wpsnap run` and `wpsnap demo`: a synthetic region, writer threads, a snapshot, a report.
//!
//! `run` in order: check every output path and the memory room ([`preflight`]); map and fill
//! the region; start the writers and let them warm up; optionally measure the yardsticks; take
//! the snapshot with the chosen backend ([`snapshot_uffd`], [`snapshot_fork`]); stop the
//! writers and check live memory and (with `--check`) the image, page by page
//! ([`check_after`]); print and write the reports. A SIGINT or SIGTERM is looked at between
//! and during the long steps; the snapshot is then cancelled (writers released, output
//! aborted) and `run` returns an error naming the signal.

use super::args::{Backend, DemoArgs, RunArgs};
use super::paths::{checked_target, ensure_distinct, with_partial_note};
use super::signals::{cancel_flag, interrupted};
use super::summary;
use anyhow::{Context, bail};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wpsnap_core::{LatencyRecorder, LatencySummary, PolicyConfig, policy};
use wpsnap_linux::fork::{ForkError, ForkOptions, ForkReport, RegionRef, start_fork_snapshot};
use wpsnap_linux::output::{FileOutput, FileTarget, Output, OutputSpec, OutputSummary, SlowDevice, SlowDeviceProfile};
use wpsnap_linux::region::{Backing, OwnedMapping, PageFill, Region, Regions};
use wpsnap_linux::snapshot::{FormatSink, Snapshot, SnapshotConfig, SnapshotReport};
use wpsnap_linux::system_memory::read_memory_room;
use wpsnap_linux::uffd::{OpenedVia, WpUffd};
use wpsnap_linux::writers::{WriterConfig, WriterSet, WritersOutcome, expected_stamp_ok};

/// How often the progress bar and the interrupt flag are looked at.
const PROGRESS_TICK: Duration = Duration::from_millis(50);
/// Region of the bare round-trip baseline: one timed first write per 4 KiB page.
const BASELINE_ROUND_TRIP_BYTES: usize = 5_000 * 4096;
/// Pages filled between two looks at the interrupt flag.
const FILL_PAGES_PER_CHECK: u64 = 4096;
/// Room kept free beyond what `run` needs (the process itself, writers' stacks, buffers).
const MEMORY_SLACK_BYTES: u64 = 64 << 20;

/// Everything `run` measured, as written to the JSON report.
#[derive(Debug, Serialize)]
pub struct JobReport {
    pub backend: &'static str,
    pub backing: Backing,
    pub region_bytes: u64,
    pub writers: u32,
    pub pattern: String,
    pub writes_per_sec_per_writer: f64,
    pub writes: u64,
    /// uffd backend: how the userfaultfd was obtained (the device or the system call).
    pub uffd_opened_via: Option<OpenedVia>,
    /// uffd backend: the session's report (engine stats and its latency summaries).
    pub snapshot: Option<SnapshotReport>,
    /// fork backend: the fork report.
    pub fork: Option<ForkReport>,
    pub output: Option<OutputSummary>,
    /// Writes slower than the fault-wait threshold during the snapshot, as writers timed them.
    pub writer_fault_wait: LatencySummary,
    /// Every write timed during the snapshot.
    pub writer_write_latency: LatencySummary,
    /// `--classify-faults`: the timed writes to pages write-protected just before the store.
    pub writer_fault_wait_exact: Option<LatencySummary>,
    /// `--classify-faults`: the same less each writer's own run-queue wait during it.
    pub writer_fault_wait_exact_less_run_delay: Option<LatencySummary>,
    /// Image equals the reference copy taken at the snapshot instant (None: not checked).
    pub image_matches_reference: Option<bool>,
    /// Live memory holds every writer's last write after the snapshot.
    pub live_memory_ok: bool,
    pub output_path: Option<PathBuf>,
    /// `--baseline`: bare uffd round trips (copy 4 KiB + unprotect) measured in this run.
    pub bare_round_trip: Option<LatencySummary>,
    /// `--baseline`: a bare whole-region write-protect of a populated region this size.
    pub bare_protect_ns: Option<u64>,
    #[serde(skip)]
    pub fault_wait_recorder: LatencyRecorder,
}

/// What [`preflight`] checked and found.
struct Preflight {
    /// The `--out` file, when it is one.
    out_target: Option<FileTarget>,
    opened_via: Option<OpenedVia>,
}

/// What a backend produced.
struct Taken {
    snapshot: Option<SnapshotReport>,
    fork: Option<ForkReport>,
    output: Option<OutputSummary>,
}

fn policy_config(args: &RunArgs) -> anyhow::Result<PolicyConfig> {
    if let Some(json) = &args.policy_json {
        let policy: PolicyConfig = serde_json::from_str(json).context("--policy-json")?;
        policy.validate().context("--policy-json")?;
        return Ok(policy);
    }
    args.policy_with_old_knobs().map_err(anyhow::Error::msg)
}

/// The error for a cancelled step, naming the signal.
fn interrupted_error(out_target: Option<&FileTarget>) -> anyhow::Error {
    let signal = interrupted().unwrap_or("a signal");
    let what = match out_target {
        Some(_) => "the output was not completed",
        None => "nothing was written",
    };
    anyhow::anyhow!("interrupted by {signal}; {what}")
}

fn cancelled() -> bool {
    cancel_flag().load(Ordering::SeqCst)
}

/// Every output path, the memory room and (uffd) the permission, before any work.
fn preflight(args: &RunArgs) -> anyhow::Result<Preflight> {
    let spec: OutputSpec = args.out.parse().context("--out")?;
    let out_target = match &spec {
        OutputSpec::File { path, .. } => Some(checked_target("--out", path)?),
        OutputSpec::Stdout if std::io::stdout().is_terminal() => {
            bail!("--out -: standard output is a terminal; redirect it to a file or a pipe (`> snap.wps`, `| tool`)")
        }
        _ => None,
    };
    let mut files: Vec<(&str, FileTarget)> = Vec::new();
    for (what, path) in [("--report", &args.report), ("--svg", &args.svg), ("--log2-svg", &args.log2_svg)] {
        if let Some(path) = path {
            files.push((what, checked_target(what, path)?));
        }
    }
    if let Some(t) = &out_target {
        files.push(("--out", t.clone()));
    }
    ensure_distinct(&files.iter().map(|(w, t)| (*w, t)).collect::<Vec<_>>())?;
    check_memory_room(args)?;
    let opened_via = match args.backend {
        // Before the region is mapped: a permission problem is reported at once, with fixes.
        Backend::Uffd => Some(WpUffd::open().context("opening a userfaultfd")?.opened_via()),
        Backend::Fork => None,
    };
    Ok(Preflight { out_target, opened_via })
}

/// Refuses a region that cannot fit: region + an explicit budget (+ the reference copy of `--check`)
/// against MemAvailable and the memory cgroup's room.
fn check_memory_room(args: &RunArgs) -> anyhow::Result<()> {
    let backing: Backing = args.backing.into();
    // hugetlbfs pages come from the reserved pool, which MemAvailable does not count.
    let region = if backing == Backing::Hugetlbfs { 0 } else { args.size };
    // An explicit budget is counted whole; the default budget adapts to what is left after
    // the region is mapped (at most half of it), so it needs no room of its own here.
    let staging = match (args.backend, args.budget) {
        (Backend::Uffd, Some(budget)) => budget.min(args.size),
        _ => 0,
    };
    let reference = if args.check { args.size } else { 0 };
    let needed = region + staging + reference + MEMORY_SLACK_BYTES;
    let room = read_memory_room();
    let Some(available) = room.room_bytes() else {
        return Ok(());
    };
    if needed > available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let check_part = if args.check { " + the --check reference copy" } else { "" };
        bail!(
            "--size {:.2} GiB needs about {:.2} GiB of memory (region + budget{check_part} + {} MiB), \
             but only {:.2} GiB is available ({}); use a smaller --size",
            gib(args.size),
            gib(needed),
            MEMORY_SLACK_BYTES >> 20,
            gib(available),
            room.tighter_limit_name()
        );
    }
    Ok(())
}

/// Initial content: each page gets a recognisable byte pattern, every 16th page stays
/// all-zero and every 8th is never touched (so the snapshot has to protect unpopulated pages).
fn fill(mapping: &mut OwnedMapping) -> anyhow::Result<()> {
    let completed = mapping.fill(8, |page| {
        if page % FILL_PAGES_PER_CHECK == 0 && cancelled() {
            PageFill::Stop
        } else if page % 8 == 7 || page % 16 == 3 {
            PageFill::Untouched
        } else {
            PageFill::Pattern
        }
    });
    if completed { Ok(()) } else { Err(interrupted_error(None)) }
}

/// Waits `ms` for the writers to warm up, ending early on a signal.
fn warm_up(ms: u64) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        if cancelled() {
            return Err(interrupted_error(None));
        }
        std::thread::sleep(PROGRESS_TICK.min(until.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// `--baseline`: the same floors `wpsnap bench` uses, a bare handler copying 4 KiB and
/// unprotecting, and one whole-region write-protect of a region of this size.
fn measure_yardsticks(size: usize, backing: Backing) -> anyhow::Result<(LatencySummary, u64)> {
    let trips = crate::baseline::measure_uffd_round_trip(&crate::baseline::BaselineRegion {
        bytes: BASELINE_ROUND_TRIP_BYTES,
        transparent_huge_pages: false,
    })
    .context("measuring the bare round trip")?;
    if cancelled() {
        return Err(interrupted_error(None));
    }
    let protect = crate::baseline::measure_write_protect(&crate::baseline::BaselineRegion {
        bytes: size,
        transparent_huge_pages: backing == Backing::Thp,
    })
    .context("measuring a bare write-protect")?;
    Ok((trips.first_write_wait.summary(), protect.write_protect_ns))
}

/// Opens `--out` (its path was checked by [`preflight`]) behind the slow-device emulation
/// when asked.
fn open_sink_output(args: &RunArgs, out_target: Option<&FileTarget>) -> anyhow::Result<Box<dyn Output>> {
    let output: Box<dyn Output> = match out_target {
        Some(target) => Box::new(FileOutput::create_at(target, args.direct_io).context("--out")?),
        None => {
            let spec: OutputSpec = args.out.parse().context("--out")?;
            wpsnap_linux::output::open_output(&spec).with_context(|| format!("opening {}", spec.destination()))?
        }
    };
    Ok(match &args.slow_device {
        Some(name) => {
            let profile = SlowDeviceProfile::preset(name)
                .with_context(|| format!("unknown slow device {name}"))?
                .with_seed(args.seed);
            Box::new(SlowDevice::new(output, profile))
        }
        None => output,
    })
}

/// Reference copy for `--check`, taken at the snapshot instant (writers paused).
fn take_reference(check: bool, region: &Regions, out: &mut Vec<u8>) {
    if check {
        out.resize(region.len(), 0);
        region.copy_pages(0, region.page_count(), out);
    }
}

/// The userfaultfd snapshot, polling the interrupt flag while it runs.
fn snapshot_uffd(
    args: &RunArgs,
    region: Region,
    writers: Option<&WriterSet>,
    output: Box<dyn Output>,
    reference: &mut Vec<u8>,
) -> anyhow::Result<Taken> {
    let config = SnapshotConfig {
        service_model: args.model,
        policy: policy_config(args)?,
        scan_batch_pages: args.scan_batch_pages,
        budget_bytes: args.budget,
        fault_spin: Duration::from_micros(args.fault_spin_us),
        thread_priority: args.thread_priority.into(),
        force_touch: args.force_touch,
    };
    let engine_config = config.engine_config(&region);
    let (sink, summary_slot) =
        FormatSink::new(output, &region, serde_json::to_string(&engine_config)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let prepared = Snapshot::prepare(region, config, Box::new(sink))?;
    let running =
        prepared.arm_observed(|| writers.map(WriterSet::pause), |r| take_reference(args.check, r, reference))?;
    if let Some(w) = writers {
        w.set_reporter(Some(running.fault_wait_reporter()));
    }
    let bar = summary::progress_bar(region.page_count(), args.json);
    while !running.is_done() {
        if cancelled() {
            bar.abandon();
            if let Some(w) = writers {
                w.set_reporter(None);
            }
            let signal = interrupted().unwrap_or("a signal");
            let error = running.cancel(&format!("interrupted by {signal}"));
            bail!("{error}; the output was not completed");
        }
        bar.set_position(running.progress().pages_saved);
        std::thread::sleep(PROGRESS_TICK);
    }
    bar.finish_and_clear();
    let result = running.finish();
    if let Some(w) = writers {
        w.set_reporter(None);
    }
    let report = result.context("the snapshot failed; writers were released and the output aborted")?;
    let output = summary_slot.lock().ok().and_then(|mut s| s.take());
    Ok(Taken { snapshot: Some(report), fork: None, output })
}

/// The fork snapshot; a signal kills the child and aborts the output.
fn snapshot_fork(
    args: &RunArgs,
    mapping: &OwnedMapping,
    writers: Option<&WriterSet>,
    output: Box<dyn Output>,
    reference: &mut Vec<u8>,
) -> anyhow::Result<Taken> {
    let region = mapping.region();
    let engine_config = SnapshotConfig::default().engine_config(&region);
    let header = region.snapshot_header(serde_json::to_string(&engine_config)?);
    // SAFETY: `mapping` stays mapped until after the fork snapshot is waited for.
    let region_ref = unsafe { RegionRef::new(mapping.as_ptr(), mapping.len()) };
    let started = {
        let _paused = writers.map(WriterSet::pause);
        take_reference(args.check, &Regions::from(region), reference);
        start_fork_snapshot(region_ref, &header, output, &ForkOptions::default())
    };
    if let Some(w) = writers {
        w.set_recording(true);
    }
    let report = started.and_then(|s| s.wait_until(cancel_flag()));
    if let Some(w) = writers {
        w.set_recording(false);
    }
    let report = match report {
        Err(ForkError::Cancelled { .. }) => {
            let signal = interrupted().unwrap_or("a signal");
            bail!("interrupted by {signal}; the snapshot child was stopped and the output was not completed")
        }
        other => other?,
    };
    let output = report.output.clone();
    Ok(Taken { snapshot: None, fork: Some(report), output: Some(output) })
}

/// Live memory holds every writer's last write: checked page by page in place (no copy of
/// the region).
fn live_memory_holds_last_writes(region: &Region, outcome: Option<&WritersOutcome>) -> bool {
    let Some(outcome) = outcome else {
        return true;
    };
    let mut page = vec![0u8; region.page_size() as usize];
    outcome.last_seq.iter().enumerate().all(|(index, &seq)| {
        if seq == 0 {
            return true;
        }
        // Writers have stopped: a plain read of the page is safe.
        region.copy_pages(index as u64, 1, &mut page);
        expected_stamp_ok(&page, seq)
    })
}

/// `--check`: the file, read back record by record, equals the reference copy.
fn image_matches(path: &Path, reference: &[u8]) -> anyhow::Result<bool> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = wpsnap_format::read_snapshot(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    if reader.header().region_len() != reference.len() as u64 {
        return Ok(false);
    }
    let mut same = true;
    while let Some(page) = reader.next_page().with_context(|| format!("reading {}", path.display()))? {
        let at = page.location.image_offset as usize;
        let expected = &reference[at..at + page.location.page_size as usize];
        same &= match page.data {
            Some(data) => data == expected,
            None => wpsnap_format::is_all_zero(expected),
        };
    }
    Ok(same)
}

/// After the snapshot: writers run a moment longer, stop; then the live memory and the
/// image checks.
fn check_after(
    region: &Region,
    writers: Option<WriterSet>,
    image: Option<(&Path, &[u8])>,
) -> anyhow::Result<(Option<WritersOutcome>, bool, Option<bool>)> {
    std::thread::sleep(Duration::from_millis(20));
    let outcome = writers.map(WriterSet::stop).transpose()?;
    let live_memory_ok = live_memory_holds_last_writes(region, outcome.as_ref());
    let image_ok = image.map(|(path, reference)| image_matches(path, reference)).transpose()?;
    Ok((outcome, live_memory_ok, image_ok))
}

/// Runs one snapshot as `args` say; prints a summary (or JSON) and writes the reports.
pub fn run(args: &RunArgs) -> anyhow::Result<JobReport> {
    let checked = preflight(args)?;
    let result = run_checked(args, &checked);
    with_partial_note(result, checked.out_target.as_ref())
}

fn run_checked(args: &RunArgs, checked: &Preflight) -> anyhow::Result<JobReport> {
    let backing: Backing = args.backing.into();
    let size = usize::try_from(args.size).context("--size")?;
    let mut mapping = OwnedMapping::new(size, backing).with_context(|| format!("creating the {backing} region"))?;
    fill(&mut mapping)?;
    let region = mapping.region();
    let writer_config = WriterConfig {
        threads: args.writers.max(1),
        pattern: args.pattern.clone(),
        writes_per_sec: (args.write_rate > 0.0).then_some(args.write_rate),
        seed: args.seed,
        classify_faults: args.classify_faults,
    };
    let writers = if args.writers == 0 { None } else { Some(WriterSet::start(region, &writer_config)?) };
    warm_up(args.warmup_ms)?;
    let (bare_round_trip, bare_protect_ns) = match args.baseline {
        true => measure_yardsticks(size, backing).map(|(t, p)| (Some(t), Some(p)))?,
        false => (None, None),
    };
    if cancelled() {
        return Err(interrupted_error(None));
    }
    let output = open_sink_output(args, checked.out_target.as_ref())?;
    let mut reference: Vec<u8> = Vec::new();
    let taken = match args.backend {
        Backend::Uffd => snapshot_uffd(args, region, writers.as_ref(), output, &mut reference)?,
        Backend::Fork => snapshot_fork(args, &mapping, writers.as_ref(), output, &mut reference)?,
    };
    let output_path = checked.out_target.as_ref().map(|t| t.given.clone());
    let image = match (&checked.out_target, args.check) {
        (Some(t), true) => Some((t.path.as_path(), reference.as_slice())),
        _ => None,
    };
    let (outcome, live_memory_ok, image_matches_reference) = check_after(&region, writers, image)?;
    let summary_of = |r: Option<&LatencyRecorder>| r.map(LatencyRecorder::summary);
    let exact = outcome.as_ref().and_then(|o| summary_of(o.protected_write_latency.as_ref()));
    let exact_less_run_delay =
        outcome.as_ref().and_then(|o| summary_of(o.protected_write_latency_less_run_delay.as_ref()));
    let (fault_wait, write_latency, writes) = match outcome {
        Some(o) => (o.fault_wait, o.write_latency, o.writes),
        None => (LatencyRecorder::new(), LatencyRecorder::new(), 0),
    };
    let report = JobReport {
        backend: match args.backend {
            Backend::Uffd => "uffd",
            Backend::Fork => "fork",
        },
        backing,
        region_bytes: args.size,
        writers: args.writers,
        pattern: args.pattern.to_string(),
        writes_per_sec_per_writer: args.write_rate,
        writes,
        uffd_opened_via: checked.opened_via,
        snapshot: taken.snapshot,
        fork: taken.fork,
        output: taken.output,
        writer_fault_wait: fault_wait.summary(),
        writer_write_latency: write_latency.summary(),
        writer_fault_wait_exact: exact,
        writer_fault_wait_exact_less_run_delay: exact_less_run_delay,
        image_matches_reference,
        live_memory_ok,
        output_path,
        bare_round_trip,
        bare_protect_ns,
        fault_wait_recorder: fault_wait,
    };
    summary::write_outputs(args, &report)?;
    if !live_memory_ok {
        bail!("live memory lost a writer's write after the snapshot");
    }
    if image_matches_reference == Some(false) {
        bail!("the snapshot image differs from the reference copy taken at the snapshot instant");
    }
    Ok(report)
}

/// `wpsnap demo`: `run` on the embedded defaults, into a temporary folder.
pub fn demo(args: &DemoArgs) -> anyhow::Result<JobReport> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("wpsnap-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let run_args = RunArgs {
        size: 256 << 20,
        backing: super::args::BackingArg::Anonymous,
        writers: 4,
        pattern: wpsnap_workload::Pattern::Zipf { theta: 0.99 },
        write_rate: 50_000.0,
        policy: Some(PolicyConfig::LatencyTarget(policy::LatencyTargetParams::default())),
        target_p99_us: None,
        scan_bandwidth: None,
        policy_json: None,
        model: wpsnap_core::ServiceModel::Decoupled,
        budget: None,
        fault_spin_us: 0,
        thread_priority: super::args::ThreadPriorityArg::Default,
        scan_batch_pages: None,
        backend: Backend::Uffd,
        out: dir.join("demo.wps").display().to_string(),
        direct_io: false,
        slow_device: None,
        seed: 1,
        warmup_ms: 200,
        force_touch: false,
        check: true,
        baseline: true,
        classify_faults: false,
        report: Some(dir.join("report.json")),
        svg: Some(dir.join("fault-wait.svg")),
        log2_svg: Some(dir.join("fault-wait-log2ms.svg")),
        json: args.json,
    };
    if !args.json {
        println!("wpsnap demo: 256 MiB anonymous region, 4 zipf:0.99 writers at 50k writes/s each,");
        println!("decoupled service, latency-target policy (p99 1 ms); output in {}", dir.display());
    }
    run(&run_args).map_err(|e| {
        let no_uffd = e.chain().any(|c| c.downcast_ref::<wpsnap_linux::uffd::UffdError>().is_some());
        match no_uffd {
            // The demo has no backend option: say which command works without userfaultfd.
            true => e.context("the demo needs userfaultfd; without it, `wpsnap run --backend fork` takes a snapshot by fork() instead"),
            false => e,
        }
    })
}
