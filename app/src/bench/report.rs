//! What `wpsnap bench` reports: every figure with its baseline and the ratio between them.

use super::options::BenchPlan;
use serde::{Deserialize, Serialize};
use wpsnap_core::LatencySummary;

/// `value / baseline`, or `None` when either is zero, negative or not finite (nothing to
/// compare: the report says "not measured" rather than inventing a ratio).
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    let r = value / baseline;
    (value > 0.0 && baseline > 0.0 && r.is_finite()).then_some(r)
}

/// One latency distribution and its ratios to the floor's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    pub name: String,
    pub samples: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Each quantile divided by the floor's same quantile.
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
    pub p999_ratio: Option<f64>,
    pub max_ratio: Option<f64>,
}

impl LatencyRow {
    pub fn new(name: &str, s: &LatencySummary, floor: &LatencySummary) -> LatencyRow {
        let r = |v: u64, b: u64| ratio(v as f64, b as f64);
        LatencyRow {
            name: name.to_string(),
            samples: s.count,
            p50_ns: s.p50_ns,
            p99_ns: s.p99_ns,
            p999_ns: s.p999_ns,
            max_ns: s.max_ns,
            p50_ratio: r(s.p50_ns, floor.p50_ns),
            p99_ratio: r(s.p99_ns, floor.p99_ns),
            p999_ratio: r(s.p999_ns, floor.p999_ns),
            max_ratio: r(s.max_ns, floor.max_ns),
        }
    }
}

/// Fault waits as the writers felt them, against the bare userfaultfd round trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultWaitSection {
    pub region_bytes: u64,
    /// Rounds merged into each distribution (each round measures every side once).
    pub rounds: u32,
    pub writers: u32,
    /// The floor: bare round trip (one handler sleeping in poll(2) copies 4 KiB and
    /// unprotects).
    pub floor: LatencyRow,
    /// The steadier floor: the same with a busy-polling handler; ratios to itself.
    pub busy_floor: LatencyRow,
    /// The faults-only estimate against the busy-polling floor.
    pub decoupled_faults_only_vs_busy: LatencyRow,
    /// The decoupled faults' own waits, measured exactly in a separate run per round whose
    /// writers classify every store by the pagemap's uffd-wp bit just before it
    /// (`WriterConfig::classify_faults`), against the busy-polling floor. The estimate above
    /// counts any slow write (a preemption, an interrupt) as a fault once faults are few; this
    /// row counts only stores to protected pages. `None` where the pagemap has no uffd-wp bit.
    /// The busy-floor targets are judged on it when present.
    #[serde(default)]
    pub decoupled_faults_exact_vs_busy: Option<LatencyRow>,
    /// The same estimate with every snapshot thread left as spawned
    /// (`ThreadPriority::inherit`), measured in the same rounds right after the default run.
    #[serde(default)]
    pub decoupled_inherit_faults_only_vs_busy: Option<LatencyRow>,
    /// Where a decoupled fault's wait goes, with the default thread priorities and inherited.
    #[serde(default)]
    pub breakdown: Vec<FaultWaitBreakdown>,
    /// Issue 15: faults-only p50 within 1.5x and p99 within 2x of the busy-polling floor.
    pub target_p50_met_busy_floor: Option<bool>,
    pub target_p99_met_busy_floor: Option<bool>,
    pub decoupled: LatencyRow,
    pub qemu: LatencyRow,
    /// The parent's first write to each page after `fork()` (copy-on-write fault).
    pub fork_cow: LatencyRow,
    /// Write-protect fault events the engine read (summed over rounds): the real faults among
    /// the writers' slow writes.
    pub decoupled_faults: u64,
    pub qemu_faults: u64,
    /// Estimate of the faults' own distribution: the slowest `decoupled_faults` samples of the
    /// writers' slow writes (assumes every fault is slower than every slow non-fault write).
    pub decoupled_faults_only: LatencyRow,
    pub qemu_faults_only: LatencyRow,
    /// Issue 4: decoupled p50 within 1.5x of the floor's.
    pub target_p50_met: Option<bool>,
    /// Issue 4: decoupled p99 within 2x of the floor's.
    pub target_p99_met: Option<bool>,
    /// The same targets on the faults-only estimate.
    pub target_p50_met_faults_only: Option<bool>,
    pub target_p99_met_faults_only: Option<bool>,
}

/// Means per fault over the rounds of one decoupled configuration: the writer's wait, and the
/// parts measured on their own (schedstat of the fault thread and the writers, the engine's
/// event-read-to-unprotect time). What is left is the wake-up path (the kernel waking the
/// fault thread, and the unprotect waking the writer, on a CPU that may have to leave idle).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultWaitBreakdown {
    /// `default` or `inherit` (thread priorities).
    pub name: String,
    /// What the fault thread ran at, e.g. `SCHED_FIFO 1`.
    pub fault_thread_policy: String,
    pub faults: u64,
    /// The writers' slow writes (1 µs or more) summed, per fault read by the engine.
    pub writer_wait_per_fault_ns: u64,
    /// The fault thread's run-queue wait per time it was given a CPU.
    pub fault_thread_run_queue_wait_per_wake_ns: u64,
    /// Event read to unprotect issued (the engine's service latency), mean.
    pub engine_service_mean_ns: u64,
    /// The writers' whole run-queue wait during the snapshot per fault (also holds waits
    /// after preemptions that were not faults: an upper bound).
    pub writer_run_queue_wait_per_fault_ns: u64,
    /// The writer wait per fault less the three parts above (0 if they add up to more).
    pub rest_per_fault_ns: u64,
}

/// Start pause at one region size and backing, against a bare whole-region write-protect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PauseRow {
    /// "anonymous" (4 KiB pages) or "thp".
    pub backing: String,
    pub region_bytes: u64,
    /// Every time below is the median of this many rounds.
    pub rounds: u32,
    /// The baseline: one UFFDIO_WRITEPROTECT over a populated region.
    pub bare_write_protect_ns: u64,
    /// UFFDIO_REGISTER of the bare region (not inside any pause; for reference).
    pub bare_register_ns: u64,
    /// wpsnap's arm pause: writers paused, region protected, writers resumed.
    pub wpsnap_pause_ns: u64,
    /// The write-protect inside wpsnap's pause.
    pub wpsnap_protect_ns: u64,
    /// The `fork()` call with the region populated.
    pub fork_pause_ns: u64,
    pub wpsnap_ratio: Option<f64>,
    pub fork_ratio: Option<f64>,
    /// Issue 4: wpsnap's pause within 1.1x of the bare write-protect.
    pub target_met: Option<bool>,
}

/// Snapshot throughput to a file, against the file's raw write speed and memcpy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSection {
    pub region_bytes: u64,
    pub destination: String,
    /// Region bytes per second, from arming to the output committed (fsync and rename).
    pub snapshot_bytes_per_sec: f64,
    /// The session's own figure (to the last page handed to the sink, before the commit).
    pub snapshot_to_sink_bytes_per_sec: f64,
    /// The same output type written with 1 MiB writes of the same bytes, then committed.
    pub sink_raw_bytes_per_sec: f64,
    /// Time the snapshot's output commit took (fsync and rename), best round.
    pub snapshot_commit_ns: u64,
    /// Time the raw write's commit took (fsync and rename), best round.
    pub sink_raw_commit_ns: u64,
    /// Best of this many rounds for each figure.
    pub rounds: u32,
    /// Copying the region into a buffer (best of three or of the rounds).
    pub memcpy_bytes_per_sec: f64,
    pub ratio_to_sink: Option<f64>,
    pub ratio_to_memcpy: Option<f64>,
    /// Issue 4: at least 0.9 of the slower of sink and memcpy.
    pub ratio_to_slower: Option<f64>,
    pub target_met: Option<bool>,
    /// The best round's snapshot threads (scan up to its last capture, sink and fault thread
    /// to their exit): on a CPU, waiting for one, blocked.
    #[serde(default)]
    pub snapshot_threads: Vec<wpsnap_linux::snapshot::ThreadTime>,
    /// The same pair with `O_DIRECT` (`--direct-io`): the snapshot's output and a raw write,
    /// 1 MiB at a time from an aligned buffer, both committed; or why it was not measured
    /// (a file system without `O_DIRECT`). Stated, no target.
    #[serde(default = "direct_io_not_run")]
    pub direct_io: Result<DirectIoThroughput, String>,
}

fn direct_io_not_run() -> Result<DirectIoThroughput, String> {
    Err("not measured by this version".to_string())
}

/// Throughput with `O_DIRECT` output, against a raw `O_DIRECT` write of the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectIoThroughput {
    /// Region bytes per second, arm to committed.
    pub snapshot_bytes_per_sec: f64,
    pub raw_bytes_per_sec: f64,
    pub ratio_to_raw: Option<f64>,
    /// Against the buffered raw write of the main row.
    pub ratio_to_buffered_raw: Option<f64>,
}

/// Writes per second of the same writers with and without a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowdownSection {
    pub writers: u32,
    pub region_bytes: u64,
    pub no_snapshot_writes_per_sec: f64,
    pub no_snapshot_window_ms: f64,
    pub decoupled_writes_per_sec: f64,
    pub decoupled_window_ms: f64,
    pub qemu_writes_per_sec: f64,
    pub qemu_window_ms: f64,
    pub fork_writes_per_sec: f64,
    pub fork_window_ms: f64,
    /// During-snapshot rate divided by the no-snapshot rate (1.0: no slowdown).
    pub decoupled_ratio: Option<f64>,
    pub qemu_ratio: Option<f64>,
    pub fork_ratio: Option<f64>,
    /// Decoupled writes/s divided by fork's; issue 15: at least 1.
    pub decoupled_to_fork_ratio: Option<f64>,
    pub decoupled_vs_fork_target_met: Option<bool>,
}

impl SlowdownSection {
    /// Writes a snapshot cost the writers, per snapshot: what they would have done at the
    /// no-snapshot rate in the snapshot's window, less what they did. Unlike writes/s, it does
    /// not reward a longer window: fork's snapshot takes longer, and once every page is copied
    /// its writers run undisturbed for the rest of it, which raises fork's average rate.
    pub fn lost_writes(&self, writes_per_sec: f64, window_ms: f64) -> f64 {
        (self.no_snapshot_writes_per_sec - writes_per_sec) * window_ms / 1e3
    }
}

/// Memory a snapshot costs beyond the region, against the region size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemorySection {
    pub region_bytes: u64,
    /// Peak bytes in wpsnap's staging buffer (decoupled run).
    pub wpsnap_staging_peak_bytes: u64,
    /// The staging buffer's bound.
    pub wpsnap_staging_limit_bytes: u64,
    /// Peak of the fork child's private bytes in the region (pages copied on write).
    pub fork_cow_peak_bytes: u64,
    /// Most staging bytes mapped at once (decoupled run): what the process's RSS grew by.
    pub wpsnap_mapped_peak_bytes: u64,
    pub wpsnap_ratio: Option<f64>,
    pub fork_ratio: Option<f64>,
    /// Mapped staging peak divided by fork's copy-on-write peak; issue 15: at most 1.
    pub wpsnap_to_fork_ratio: Option<f64>,
    pub wpsnap_vs_fork_target_met: Option<bool>,
}

/// Decoupled fault wait with the slow-device emulation as the sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowDiskSection {
    /// Always true: the disk is emulated (bandwidth cap and seeded stalls), not real.
    pub emulated: bool,
    pub preset: String,
    pub region_bytes: u64,
    pub writers: u32,
    pub pattern: String,
    pub writes_per_sec_per_writer: f64,
    pub fault_wait: LatencyRow,
    pub staging_peak_bytes: u64,
    pub staging_limit_bytes: u64,
    /// Time the engine spent with no staging room.
    pub staging_blocked_ns: u64,
    pub duration_ns: u64,
    pub stalls_injected: u64,
    /// p99 divided by the 1 ms target.
    pub p99_ratio_to_target: Option<f64>,
    /// Issue 4: p99 under 1 ms. Only meaningful while the staging buffer had room
    /// (`staging_blocked_ns == 0`); reported either way.
    pub target_met: Option<bool>,
}

/// The simulator's speed, from `wpsnap-sim bench`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimSection {
    pub measured: bool,
    /// Why not measured, or which binary and profile measured it.
    pub note: String,
    pub pages: u64,
    pub events: u64,
    pub wall_s: f64,
    pub events_per_sec: f64,
    pub simulated_s: f64,
    /// Simulated seconds per wall-clock second (the simulator's speed against real time).
    pub simulated_per_wall_ratio: Option<f64>,
    /// CPU seconds of the simulating thread (`None` from a binary that does not print them).
    #[serde(default)]
    pub cpu_s: Option<f64>,
    /// Events per CPU-second of the simulating thread: the rate issue 15's target is judged
    /// on (docs/simulator.md: on a shared machine the wall rate measures the scheduler).
    #[serde(default)]
    pub events_per_cpu_sec: Option<f64>,
}

/// Everything one bench run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub started_unix_s: u64,
    pub machine: String,
    pub plan: BenchPlan,
    pub fault_wait: FaultWaitSection,
    pub start_pause: Vec<PauseRow>,
    pub throughput: ThroughputSection,
    pub writer_slowdown: SlowdownSection,
    pub extra_memory: MemorySection,
    pub slow_disk: SlowDiskSection,
    pub simulator: SimSection,
    /// Issue 15: writer stalls with a bursty pipe and with the real write-back path.
    pub stalls: Vec<StallRow>,
    pub protection_window: ProtectionWindowSection,
    pub thp: ThpSection,
    /// Every target of the run, met or missed, in one table.
    pub targets: Vec<TargetRow>,
    /// What the reader must know to read the figures (methods, caveats).
    pub notes: Vec<String>,
    pub elapsed_s: f64,
}

impl PartialEq for BenchPlan {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl BenchReport {
    /// Every ratio in the report, named, for checks and summaries.
    pub fn ratios(&self) -> Vec<(String, Option<f64>)> {
        let mut out = Vec::new();
        let f = &self.fault_wait;
        for row in [&f.floor, &f.busy_floor, &f.decoupled, &f.decoupled_faults_only_vs_busy, &f.qemu, &f.fork_cow] {
            for (q, r) in
                [("p50", row.p50_ratio), ("p99", row.p99_ratio), ("p999", row.p999_ratio), ("max", row.max_ratio)]
            {
                out.push((format!("fault_wait.{}.{q}", row.name), r));
            }
        }
        for p in &self.start_pause {
            out.push((format!("start_pause.{}.{}.wpsnap", p.backing, p.region_bytes), p.wpsnap_ratio));
            out.push((format!("start_pause.{}.{}.fork", p.backing, p.region_bytes), p.fork_ratio));
        }
        let t = &self.throughput;
        out.push(("throughput.to_sink".into(), t.ratio_to_sink));
        out.push(("throughput.to_memcpy".into(), t.ratio_to_memcpy));
        out.push(("throughput.to_slower".into(), t.ratio_to_slower));
        let w = &self.writer_slowdown;
        out.push(("writer_slowdown.decoupled".into(), w.decoupled_ratio));
        out.push(("writer_slowdown.qemu".into(), w.qemu_ratio));
        out.push(("writer_slowdown.fork".into(), w.fork_ratio));
        out.push(("extra_memory.wpsnap".into(), self.extra_memory.wpsnap_ratio));
        out.push(("extra_memory.fork".into(), self.extra_memory.fork_ratio));
        out.push(("slow_disk.p99_to_target".into(), self.slow_disk.p99_ratio_to_target));
        out.push(("slow_disk.p99_to_floor".into(), self.slow_disk.fault_wait.p99_ratio));
        out.push(("simulator.simulated_per_wall".into(), self.simulator.simulated_per_wall_ratio));
        for t in &self.targets {
            out.push((format!("target.{}", t.name), t.ratio));
        }
        out
    }
}

/// Writer stalls of a snapshot whose sink stalls (a bursty pipe or the real write-back path),
/// against the same writers with no snapshot for as long (the background: a loaded machine
/// stalls writers too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StallRow {
    /// "bursty-pipe" or "write-back".
    pub name: String,
    /// Where the snapshot went ("cmd:pv -qL 50m > /dev/null", a file on the loop disk).
    pub destination: String,
    /// False when the row was skipped; `note` says why.
    pub measured: bool,
    pub note: String,
    pub region_bytes: u64,
    /// Writes of at least [`STALL_THRESHOLD_MS`] with no snapshot, and that window.
    pub background_slow_writes: u64,
    pub background_window_ms: f64,
    /// Writes of at least [`STALL_THRESHOLD_MS`] during the snapshot, and that window.
    pub snapshot_slow_writes: u64,
    pub snapshot_window_ms: f64,
    /// `snapshot_slow_writes - background_slow_writes` (0 when the background had more).
    pub slow_writes_beyond_background: u64,
    /// Slowest write during the snapshot and with none.
    pub snapshot_max_ns: u64,
    pub background_max_ns: u64,
    pub protection_window_ns: u64,
    pub duration_ns: u64,
    pub budget_bytes: u64,
    pub staging_mapped_peak_bytes: u64,
    /// Faults that waited for the sink because the budget was exhausted, and how long.
    pub fault_blocked_on_budget: u64,
    pub fault_blocked_on_budget_ns: u64,
    /// Issue 15: no write of 16 ms or more beyond the background.
    pub target_met: Option<bool>,
}

/// The slow-write threshold of the stall rows (issue 15: faults of 16 ms or more).
pub const STALL_THRESHOLD_MS: u64 = 16;

/// The protection window against what copying and unprotecting the region costs bare.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProtectionWindowSection {
    pub region_bytes: u64,
    pub rounds: u32,
    /// Copying the region into a buffer (best of three per round, best round).
    pub memcpy_ns: u64,
    /// One ioctl removing write protection from the whole region (median of the rounds).
    pub bare_unprotect_ns: u64,
    /// `memcpy_ns + bare_unprotect_ns`: the ideal window.
    pub ideal_ns: u64,
    /// Budget of the whole region: the window (median) and its ratio to the ideal.
    pub full_budget_bytes: u64,
    pub full_budget_window_ns: u64,
    pub full_budget_ratio: Option<f64>,
    /// Issue 15: `full_budget_ratio <= 2`.
    pub target_met: Option<bool>,
    /// The default budget: its size, window (median) and ratio (stated, no target).
    pub default_budget_bytes: u64,
    pub default_budget_window_ns: u64,
    pub default_budget_ratio: Option<f64>,
    /// Unprotect ioctls per page saved in the default-budget run (coalescing: far below 1).
    pub unprotect_calls_per_page: Option<f64>,
    /// The full-budget runs' scan thread up to its last capture (medians): its time on a CPU
    /// and its time runnable but waiting for one. On a loaded or 2-core machine the wait, not
    /// the scan's own work, makes most of the window.
    #[serde(default)]
    pub full_budget_scan_cpu_ns: u64,
    #[serde(default)]
    pub full_budget_scan_runqueue_wait_ns: u64,
    /// `full_budget_scan_cpu_ns` over the ideal window.
    #[serde(default)]
    pub full_budget_scan_cpu_ratio: Option<f64>,
}

/// Huge pages kept across a snapshot of a THP region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThpSection {
    pub region_bytes: u64,
    /// AnonHugePages of the region's mapping (from /proc/self/smaps) before and after.
    pub anon_huge_before_bytes: u64,
    pub anon_huge_after_bytes: u64,
    pub kept_ratio: Option<f64>,
    /// Issue 15: at least 95 % kept.
    pub kept_target_met: Option<bool>,
    /// The largest THP start-pause row: wpsnap's pause against the bare write-protect.
    pub pause_ns: u64,
    pub bare_write_protect_ns: u64,
    pub pause_ratio: Option<f64>,
    /// Issue 15: pause within 1.1x of the bare write-protect, or within 20 µs of it.
    pub pause_target_met: Option<bool>,
}

/// One line of the met/missed table: a figure, its same-run baseline, the ratio and target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    pub name: String,
    /// The figure and the baseline, as text with units.
    pub value: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    /// The target in words ("<= 2x", "none beyond background").
    pub target: String,
    /// `None`: not measured (the note says why).
    pub met: Option<bool>,
    pub note: String,
}
