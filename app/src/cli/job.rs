//! `wpsnap run` and `wpsnap demo`: a synthetic region, writer threads, a snapshot, a report.

use super::args::{Backend, DemoArgs, RunArgs};
use super::signals::interrupted;
use super::summary;
use anyhow::{Context, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use wpsnap_core::{LatencyRecorder, LatencySummary, PolicyConfig, policy};
use wpsnap_linux::fork::{ForkOptions, ForkReport, RegionRef, start_fork_snapshot};
use wpsnap_linux::output::{OutputSpec, OutputSummary, SlowDevice, SlowDeviceProfile, open_output};
use wpsnap_linux::region::{Backing, OwnedMapping, Region};
use wpsnap_linux::snapshot::{FormatSink, Snapshot, SnapshotConfig, SnapshotReport};
use wpsnap_linux::writers::{WriterConfig, WriterSet, expected_stamp_ok};

/// How often the progress bar and the interrupt flag are looked at.
const PROGRESS_TICK: Duration = Duration::from_millis(50);
/// Samples of the bare round trip `--baseline` takes.
/// Region of the bare round-trip baseline: one timed first write per 4 KiB page.
const BASELINE_ROUND_TRIP_BYTES: usize = 5_000 * 4096;

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
    /// uffd backend: the session's report (engine stats and its latency summaries).
    pub snapshot: Option<SnapshotReport>,
    /// fork backend: the fork report.
    pub fork: Option<ForkReport>,
    pub output: Option<OutputSummary>,
    /// Writes slower than the fault-wait threshold during the snapshot, as writers timed them.
    pub writer_fault_wait: LatencySummary,
    /// Every write timed during the snapshot.
    pub writer_write_latency: LatencySummary,
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

fn policy_config(args: &RunArgs) -> anyhow::Result<PolicyConfig> {
    if let Some(json) = &args.policy_json {
        let policy: PolicyConfig = serde_json::from_str(json).context("--policy-json")?;
        policy.validate().context("--policy-json")?;
        return Ok(policy);
    }
    args.policy_with_old_knobs().map_err(anyhow::Error::msg)
}

/// Initial content: each page gets a recognisable byte pattern, every 16th page stays
/// all-zero and every 8th is never touched (so the snapshot has to protect unpopulated pages).
fn fill(region: &Region) {
    let page_size = region.page_size() as usize;
    for page in 0..region.page_count() {
        if page % 8 == 7 || page % 16 == 3 {
            continue;
        }
        let addr = region.page_addr(page) as *mut u8;
        // SAFETY: the region is our own fresh mapping and no writer runs yet.
        unsafe { std::ptr::write_bytes(addr.add(8), (page % 251) as u8 + 1, page_size - 8) };
    }
}

fn open_sink_output(args: &RunArgs) -> anyhow::Result<(OutputSpec, Box<dyn wpsnap_linux::output::Output>)> {
    let mut spec: OutputSpec = args.out.parse().context("--out")?;
    if let OutputSpec::File { direct_io, .. } = &mut spec {
        *direct_io = args.direct_io;
    }
    let output = open_output(&spec).with_context(|| format!("opening {}", spec.destination()))?;
    let output: Box<dyn wpsnap_linux::output::Output> = match &args.slow_device {
        Some(name) => {
            let profile = SlowDeviceProfile::preset(name)
                .with_context(|| format!("unknown slow device {name}"))?
                .with_seed(args.seed);
            Box::new(SlowDevice::new(output, profile))
        }
        None => output,
    };
    Ok((spec, output))
}

/// Runs one snapshot as `args` say; prints a summary (or JSON) and writes the reports.
pub fn run(args: &RunArgs) -> anyhow::Result<JobReport> {
    let backing: Backing = args.backing.into();
    let size = usize::try_from(args.size).context("--size")?;
    let mapping = OwnedMapping::new(size, backing).with_context(|| format!("creating a {backing} region"))?;
    let region = mapping.region();
    fill(&region);
    let writer_config = WriterConfig {
        threads: args.writers.max(1),
        pattern: args.pattern.clone(),
        writes_per_sec: (args.write_rate > 0.0).then_some(args.write_rate),
        seed: args.seed,
    };
    let writers = if args.writers == 0 { None } else { Some(WriterSet::start(region, &writer_config)?) };
    std::thread::sleep(Duration::from_millis(args.warmup_ms));
    let (bare_round_trip, bare_protect_ns) = if args.baseline {
        // The same floors `wpsnap bench` uses: a bare handler copying 4 KiB and unprotecting,
        // and one whole-region write-protect of a region of this size.
        let trips = crate::baseline::measure_uffd_round_trip(&crate::baseline::BaselineRegion {
            bytes: BASELINE_ROUND_TRIP_BYTES,
            transparent_huge_pages: false,
        })
        .context("measuring the bare round trip")?;
        let protect = crate::baseline::measure_write_protect(&crate::baseline::BaselineRegion {
            bytes: size,
            transparent_huge_pages: backing == Backing::Thp,
        })
        .context("measuring a bare write-protect")?;
        (Some(trips.first_write_wait.summary()), Some(protect.write_protect_ns))
    } else {
        (None, None)
    };
    let pause = || writers.as_ref().map(WriterSet::pause);
    let (spec, output) = open_sink_output(args)?;
    let check = args.check && matches!(spec, OutputSpec::File { .. });
    let mut reference: Vec<u8> = Vec::new();
    let take_reference = |r: &Region, out: &mut Vec<u8>| {
        if check {
            out.resize(r.len(), 0);
            r.copy_pages(0, r.page_count(), out);
        }
    };

    let (snapshot, fork, output_summary) = match args.backend {
        Backend::Uffd => {
            let config = SnapshotConfig {
                service_model: args.model,
                policy: policy_config(args)?,
                scan_batch_pages: args.scan_batch_pages,
                staging_pages: (args.staging / region.page_size()).max(2),
                force_touch: args.force_touch,
            };
            let engine_config = config.engine_config(region.page_size(), region.page_count());
            let (sink, summary_slot) = FormatSink::new(output, &region, serde_json::to_string(&engine_config)?)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let prepared = Snapshot::prepare(region, config, Box::new(sink))?;
            let running = prepared.arm_observed(pause, |r| take_reference(r, &mut reference))?;
            if let Some(w) = &writers {
                w.set_reporter(Some(running.fault_wait_reporter()));
            }
            let bar = summary::progress_bar(region.page_count(), args.json);
            while !running.is_done() {
                if let Some(signal) = interrupted() {
                    bar.abandon();
                    if let Some(w) = &writers {
                        w.set_reporter(None);
                    }
                    let error = running.cancel(&format!("interrupted by {signal}"));
                    bail!("{error}; the output was not completed (a file is left only as NAME.partial)");
                }
                bar.set_position(running.progress().pages_saved);
                std::thread::sleep(PROGRESS_TICK);
            }
            bar.finish_and_clear();
            let result = running.finish();
            if let Some(w) = &writers {
                w.set_reporter(None);
            }
            let report = result.context("the snapshot failed; writers were released and the output aborted")?;
            let summary = summary_slot.lock().ok().and_then(|mut s| s.take());
            (Some(report), None, summary)
        }
        Backend::Fork => {
            let engine_config = SnapshotConfig::default().engine_config(region.page_size(), region.page_count());
            let header = region.snapshot_header(serde_json::to_string(&engine_config)?);
            // SAFETY: `mapping` stays mapped until after the fork snapshot is waited for.
            let region_ref = unsafe { RegionRef::new(mapping.as_ptr(), mapping.len()) };
            let started = {
                let _paused = pause();
                take_reference(&region, &mut reference);
                start_fork_snapshot(region_ref, &header, output, &ForkOptions::default())
            };
            if let Some(w) = &writers {
                w.set_recording(true);
            }
            let report = started.and_then(|s| s.wait());
            if let Some(w) = &writers {
                w.set_recording(false);
            }
            let report = report?;
            let output = report.output.clone();
            (None, Some(report), Some(output))
        }
    };

    // Writers keep running a moment after the snapshot, then stop; their last writes must be
    // in live memory.
    std::thread::sleep(Duration::from_millis(20));
    let outcome = match writers {
        Some(w) => Some(w.stop()?),
        None => None,
    };
    let live = {
        let mut buf = vec![0u8; region.len()];
        region.copy_pages(0, region.page_count(), &mut buf);
        buf
    };
    let page_size = region.page_size() as usize;
    let live_memory_ok = outcome.as_ref().is_none_or(|o| {
        o.last_seq.iter().enumerate().all(|(page, &s)| s == 0 || expected_stamp_ok(&live[page * page_size..], s))
    });
    let output_path = match &spec {
        OutputSpec::File { path, .. } => Some(path.clone()),
        _ => None,
    };
    let image_matches_reference = match (&output_path, check) {
        (Some(path), true) => {
            let mut image = vec![0u8; region.len()];
            wpsnap_format::load_into(path, &mut image).with_context(|| format!("loading {}", path.display()))?;
            Some(image == reference)
        }
        _ => None,
    };
    let (fault_wait, write_latency, writes) = match &outcome {
        Some(o) => (o.fault_wait.clone(), o.write_latency.clone(), o.writes),
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
        pattern: format!("{:?}", args.pattern),
        writes_per_sec_per_writer: args.write_rate,
        writes,
        snapshot,
        fork,
        output: output_summary,
        writer_fault_wait: fault_wait.summary(),
        writer_write_latency: write_latency.summary(),
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
        policy: PolicyConfig::LatencyTarget(policy::LatencyTargetParams::default()),
        target_p99_us: None,
        scan_bandwidth: None,
        policy_json: None,
        model: wpsnap_core::ServiceModel::Decoupled,
        staging: 16 << 20,
        scan_batch_pages: 16,
        backend: Backend::Uffd,
        out: dir.join("demo.wps").display().to_string(),
        direct_io: false,
        slow_device: None,
        seed: 1,
        warmup_ms: 200,
        force_touch: false,
        check: true,
        baseline: true,
        report: Some(dir.join("report.json")),
        svg: Some(dir.join("fault-wait.svg")),
        log2_svg: Some(dir.join("fault-wait-log2ms.svg")),
        json: args.json,
    };
    if !args.json {
        println!("wpsnap demo: 256 MiB anonymous region, 4 zipf:0.99 writers at 50k writes/s each,");
        println!("decoupled service, latency-target policy (p99 1 ms); output in {}", dir.display());
    }
    run(&run_args)
}
