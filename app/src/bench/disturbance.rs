//! Issue 15's rows: how much a snapshot disturbs the writers when the sink stalls (a bursty
//! pipe, the real write-back path), the protection window against bare memcpy + unprotect,
//! and huge pages kept on a THP region. Each figure has a baseline measured in the same run.

use super::measure::{file_run_at, fill, median, spec_run, writers_alone_recorded};
use super::options::BenchPlan;
use super::report::{PauseRow, ProtectionWindowSection, STALL_THRESHOLD_MS, StallRow, ThpSection, ratio};
use crate::baseline::{self, BaselineRegion};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wpsnap_core::PolicyConfig;
use wpsnap_linux::output::OutputSpec;
use wpsnap_linux::region::{Backing, OwnedMapping, Region};
use wpsnap_linux::snapshot::{SCAN_THREAD_NAME as SCAN_THREAD, SnapshotConfig};
use wpsnap_linux::writers::WriterConfig;
use wpsnap_workload::Pattern;

/// The bursty consumer of issue 15 (pv reads in bursts to average 50 MB/s).
pub(super) const BURSTY_PIPE_COMMAND: &str = "pv -qL 50m > /dev/null";
/// Issue 15: the full-budget protection window within this many times memcpy + unprotect.
const WINDOW_TARGET_RATIO: f64 = 2.0;
/// Issue 15: at least this share of the region's huge pages kept.
const THP_KEPT_TARGET: f64 = 0.95;
/// The loop-disk preset and the dirty limits of the write-back row.
const LOOP_PRESET: &str = "hdd";
const LOOP_DIRTY_BYTES: &str = "67108864";
const LOOP_DIRTY_BACKGROUND_BYTES: &str = "33554432";
/// Sparse image size of the loop disk.
const LOOP_IMAGE_SIZE: &str = "2G";
/// Times memcpy is repeated per round (the first pays the buffer's page faults).
const MEMCPY_REPEATS: u32 = 3;

/// The writer of every row here: issue 15's one uniform writer at full rate.
fn full_rate_writer(plan: &BenchPlan) -> WriterConfig {
    WriterConfig {
        threads: plan.writers,
        pattern: Pattern::Uniform,
        writes_per_sec: None,
        seed: plan.seed,
        classify_faults: false,
    }
}

/// A mapped, filled region of `bytes` with `backing`.
fn filled(bytes: u64, backing: Backing, what: &str) -> anyhow::Result<OwnedMapping> {
    let mut mapping =
        OwnedMapping::new(bytes as usize, backing).with_context(|| format!("mapping the {what} region"))?;
    fill(&mut mapping, true);
    Ok(mapping)
}

/// A skipped stall row, with the reason.
fn skipped(name: &str, destination: &str, region_bytes: u64, note: String) -> StallRow {
    StallRow {
        name: name.to_string(),
        destination: destination.to_string(),
        measured: false,
        note,
        region_bytes,
        background_slow_writes: 0,
        background_window_ms: 0.0,
        snapshot_slow_writes: 0,
        snapshot_window_ms: 0.0,
        slow_writes_beyond_background: 0,
        snapshot_max_ns: 0,
        background_max_ns: 0,
        protection_window_ns: 0,
        duration_ns: 0,
        budget_bytes: 0,
        staging_mapped_peak_bytes: 0,
        fault_blocked_on_budget: 0,
        fault_blocked_on_budget_ns: 0,
        target_met: None,
    }
}

/// One snapshot to `spec` with the full-rate writer and the default budget and policy, then
/// the same writers alone for as long (the background).
fn stall_row(name: &str, spec: &OutputSpec, region: &Region, plan: &BenchPlan) -> anyhow::Result<StallRow> {
    let writer = full_rate_writer(plan);
    let run = spec_run(spec, region, SnapshotConfig::default(), Some(&writer), None)?;
    let window = Duration::from_nanos(run.window_ns);
    let (alone, alone_ns) = writers_alone_recorded(region, &writer, window)?;
    let snapshot_slow = run.writers.fault_wait.table().at_least_ms(STALL_THRESHOLD_MS);
    let background_slow = alone.fault_wait.table().at_least_ms(STALL_THRESHOLD_MS);
    let stats = &run.report.engine.stats;
    let beyond = snapshot_slow.saturating_sub(background_slow);
    Ok(StallRow {
        name: name.to_string(),
        destination: spec.destination(),
        measured: true,
        note: format!(
            "{} writer(s), uniform, full rate; decoupled, default budget and policy; background: the same \
             writers alone for the snapshot's window",
            plan.writers
        ),
        region_bytes: region.len() as u64,
        background_slow_writes: background_slow,
        background_window_ms: alone_ns as f64 / 1e6,
        snapshot_slow_writes: snapshot_slow,
        snapshot_window_ms: run.window_ns as f64 / 1e6,
        slow_writes_beyond_background: beyond,
        snapshot_max_ns: run.writers.fault_wait.summary().max_ns,
        background_max_ns: alone.fault_wait.summary().max_ns,
        protection_window_ns: run.report.protection_window_ns,
        duration_ns: run.report.duration_ns,
        budget_bytes: run.report.budget_bytes,
        staging_mapped_peak_bytes: run.report.staging_mapped_peak_bytes,
        fault_blocked_on_budget: stats.fault_blocked_on_budget,
        fault_blocked_on_budget_ns: stats.fault_blocked_on_budget_ns,
        target_met: Some(beyond == 0),
    })
}

/// The bursty-pipe row (skipped in quick mode and where `pv` is missing).
pub(super) fn bursty_pipe(plan: &BenchPlan, progress: &dyn Fn(&str)) -> anyhow::Result<StallRow> {
    let name = "bursty-pipe";
    let spec = OutputSpec::Command(BURSTY_PIPE_COMMAND.to_string());
    let bytes = plan.fault_region_bytes;
    if plan.quick {
        return Ok(skipped(
            name,
            &spec.destination(),
            bytes,
            "skipped in quick mode (takes seconds at 50 MB/s)".into(),
        ));
    }
    if !command_exists("pv") {
        return Ok(skipped(name, &spec.destination(), bytes, "skipped: pv is not installed".into()));
    }
    progress("stalls: snapshot to a bursty pipe (pv -qL 50m), then the writers alone");
    let mapping = filled(bytes, Backing::Anonymous, "bursty-pipe")?;
    stall_row(name, &spec, &mapping.region(), plan)
}

/// The write-back row: a file on the throttled loop disk with small dirty limits (skipped in
/// quick mode and where `scripts/slow-disk.sh` cannot set the disk up). The disk is always
/// taken down again.
pub(super) fn write_back(plan: &BenchPlan, progress: &dyn Fn(&str)) -> anyhow::Result<StallRow> {
    let name = "write-back";
    let destination = format!("file on the {LOOP_PRESET} loop disk, vm.dirty_bytes 64 MiB (background 32 MiB)");
    let bytes = plan.fault_region_bytes;
    if plan.quick {
        return Ok(skipped(name, &destination, bytes, "skipped in quick mode (needs the loop disk)".into()));
    }
    let script = slow_disk_script();
    if !script.is_file() {
        return Ok(skipped(name, &destination, bytes, format!("skipped: {} not found", script.display())));
    }
    // Not in the temp dir: that may be tmpfs, where the loop device's direct I/O fails.
    let instance = PathBuf::from(format!("/var/tmp/wpsnap-bench-loop-{}", std::process::id()));
    progress("stalls: setting up the throttled loop disk (scripts/slow-disk.sh up hdd)");
    let up = Command::new(&script)
        .args(["up", LOOP_PRESET, "--dir"])
        .arg(&instance)
        .args(["--size", LOOP_IMAGE_SIZE, "--dirty-bytes", LOOP_DIRTY_BYTES])
        .args(["--dirty-background-bytes", LOOP_DIRTY_BACKGROUND_BYTES])
        .output();
    let row = match up {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            match text.lines().find_map(|l| l.strip_prefix("mount=")) {
                Some(mount) => loop_disk_row(name, Path::new(mount.trim()), plan, progress),
                None => Ok(skipped(name, &destination, bytes, "skipped: slow-disk.sh printed no mount=".into())),
            }
        }
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string();
            Ok(skipped(name, &destination, bytes, format!("skipped: slow-disk.sh up failed: {why}")))
        }
        Err(e) => Ok(skipped(name, &destination, bytes, format!("skipped: running slow-disk.sh: {e}"))),
    };
    progress("stalls: taking the loop disk down");
    let down = Command::new(&script).args(["down", LOOP_PRESET, "--dir"]).arg(&instance).output();
    let _ = std::fs::remove_dir(&instance);
    match down {
        Ok(out) if out.status.success() => row,
        Ok(out) => Err(anyhow::anyhow!(
            "slow-disk.sh down {} failed: {}",
            instance.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(anyhow::anyhow!("running slow-disk.sh down: {e}")),
    }
}

fn loop_disk_row(name: &str, mount: &Path, plan: &BenchPlan, progress: &dyn Fn(&str)) -> anyhow::Result<StallRow> {
    progress("stalls: snapshot to a file on the loop disk, then the writers alone");
    let mapping = filled(plan.fault_region_bytes, Backing::Anonymous, "write-back")?;
    let path = mount.join("bench.wps");
    let spec = OutputSpec::File { path: path.clone(), direct_io: false };
    let row = stall_row(name, &spec, &mapping.region(), plan);
    let _ = std::fs::remove_file(&path);
    row
}

/// `scripts/slow-disk.sh` of this source tree.
fn slow_disk_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts").join("slow-disk.sh")
}

fn command_exists(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// The protection window with a budget of the whole region and with the default budget,
/// against memcpy of the region plus one bare whole-region unprotect.
pub(super) fn protection_window(plan: &BenchPlan, progress: &dyn Fn(&str)) -> anyhow::Result<ProtectionWindowSection> {
    let bytes = plan.fault_region_bytes;
    let mapping = filled(bytes, Backing::Anonymous, "protection-window")?;
    let region = mapping.region();
    let writer = full_rate_writer(plan);
    let bare_region = BaselineRegion { bytes: bytes as usize, transparent_huge_pages: false };
    let (mut memcpy_ns, mut unprotect, mut full, mut default) = (u64::MAX, Vec::new(), Vec::new(), Vec::new());
    let (mut default_budget, mut calls, mut pages) = (0, 0, 0);
    let (mut scan_cpu, mut scan_wait) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        progress(&format!("protection window, round {}/{}", round + 1, plan.rounds));
        let mut copy = vec![0_u8; region.len()];
        for _ in 0..MEMCPY_REPEATS {
            let t = Instant::now();
            region.copy_pages(0, region.page_count(), &mut copy);
            // The copy is otherwise never read: with whole-program LTO it was optimised away
            // (a "memcpy" of 256 MiB in 30 ns).
            std::hint::black_box(&mut copy);
            memcpy_ns = memcpy_ns.min(t.elapsed().as_nanos() as u64);
        }
        drop(copy);
        unprotect.push(baseline::measure_unprotect(&bare_region)?);
        let path = plan.dir.join("window.wps");
        // Policy none: the window measures the engine's copy and unprotect, not a throttle the
        // default policy may choose (the default-budget run below keeps the default policy).
        let config =
            SnapshotConfig { budget_bytes: Some(bytes), policy: PolicyConfig::None, ..SnapshotConfig::default() };
        let run = file_run_at(&path, &region, config, Some(&writer), None);
        let _ = std::fs::remove_file(&path);
        let report = run?.report;
        full.push(report.protection_window_ns);
        if let Some(scan) = report.threads.iter().find(|t| t.name == SCAN_THREAD) {
            scan_cpu.push(scan.cpu_ns);
            scan_wait.push(scan.runqueue_wait_ns);
        }
        let run = file_run_at(&path, &region, SnapshotConfig::default(), Some(&writer), None);
        let _ = std::fs::remove_file(&path);
        let report = run?.report;
        default.push(report.protection_window_ns);
        default_budget = report.budget_bytes;
        calls += report.unprotect_calls;
        // Per page saved: a scan span also covers pages saved before, so `unprotect_pages` can
        // exceed the region.
        pages += report.engine.stats.pages_saved();
    }
    let bare_unprotect_ns = median(unprotect);
    let ideal_ns = memcpy_ns.saturating_add(bare_unprotect_ns);
    let (full, default) = (median(full), median(default));
    let full_budget_ratio = ratio(full as f64, ideal_ns as f64);
    let scan_cpu = if scan_cpu.is_empty() { 0 } else { median(scan_cpu) };
    let scan_wait = if scan_wait.is_empty() { 0 } else { median(scan_wait) };
    Ok(ProtectionWindowSection {
        region_bytes: bytes,
        rounds: plan.rounds,
        memcpy_ns,
        bare_unprotect_ns,
        ideal_ns,
        full_budget_bytes: bytes,
        full_budget_window_ns: full,
        full_budget_ratio,
        target_met: full_budget_ratio.map(|r| r <= WINDOW_TARGET_RATIO),
        default_budget_bytes: default_budget,
        default_budget_window_ns: default,
        default_budget_ratio: ratio(default as f64, ideal_ns as f64),
        unprotect_calls_per_page: ratio(calls as f64, pages as f64),
        full_budget_scan_cpu_ns: scan_cpu,
        full_budget_scan_runqueue_wait_ns: scan_wait,
        full_budget_scan_cpu_ratio: ratio(scan_cpu as f64, ideal_ns as f64),
    })
}

/// A snapshot of a THP region with the full-rate writer: AnonHugePages before and after;
/// the start pause comes from the largest THP row of the start-pause step.
pub(super) fn thp(plan: &BenchPlan, pauses: &[PauseRow], progress: &dyn Fn(&str)) -> anyhow::Result<ThpSection> {
    progress("THP: huge pages before and after a snapshot");
    let bytes = plan.fault_region_bytes;
    let mapping = filled(bytes, Backing::Thp, "THP")?;
    let region = mapping.region();
    let start = mapping.as_ptr() as usize;
    let before = anon_huge_bytes(start)?;
    let path = plan.dir.join("thp.wps");
    let run = file_run_at(&path, &region, SnapshotConfig::default(), Some(&full_rate_writer(plan)), None);
    let _ = std::fs::remove_file(&path);
    run?;
    let after = anon_huge_bytes(start)?;
    let kept_ratio = ratio(after as f64, before as f64);
    let pause = pauses.iter().filter(|p| p.backing == Backing::Thp.name()).max_by_key(|p| p.region_bytes);
    Ok(ThpSection {
        region_bytes: bytes,
        anon_huge_before_bytes: before,
        anon_huge_after_bytes: after,
        kept_ratio,
        kept_target_met: (before > 0).then_some(after as f64 >= THP_KEPT_TARGET * before as f64),
        pause_ns: pause.map_or(0, |p| p.wpsnap_pause_ns),
        bare_write_protect_ns: pause.map_or(0, |p| p.bare_write_protect_ns),
        pause_ratio: pause.and_then(|p| p.wpsnap_ratio),
        pause_target_met: pause.and_then(|p| p.target_met),
    })
}

/// AnonHugePages of the mapping that starts at `start`, from /proc/self/smaps.
fn anon_huge_bytes(start: usize) -> anyhow::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").context("reading /proc/self/smaps")?;
    Ok(anon_huge_in(&smaps, start))
}

/// AnonHugePages (bytes) of the mapping starting at `start` in smaps text; 0 if absent.
fn anon_huge_in(smaps: &str, start: usize) -> u64 {
    let mut inside = false;
    for line in smaps.lines() {
        let header = line.split_whitespace().next().and_then(|range| range.split_once('-'));
        if let Some((from, _)) = header.filter(|(from, to)| is_hex(from) && is_hex(to)) {
            inside = usize::from_str_radix(from, 16).ok() == Some(start);
        } else if inside && let Some(rest) = line.strip_prefix("AnonHugePages:") {
            let kib = rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            return kib * 1024;
        }
    }
    0
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::anon_huge_in;

    #[test]
    fn anon_huge_pages_of_the_right_mapping() {
        let smaps = "7f0000000000-7f0010000000 rw-p 00000000 00:00 0 \nSize: 262144 kB\nAnonHugePages:    4096 kB\n\
                     7f0020000000-7f0030000000 rw-p 00000000 00:00 0 \nAnonHugePages:  260096 kB\n";
        assert_eq!(anon_huge_in(smaps, 0x7f0020000000), 260096 * 1024);
        assert_eq!(anon_huge_in(smaps, 0x7f0000000000), 4096 * 1024);
        assert_eq!(anon_huge_in(smaps, 0x1000), 0);
    }
}
