//! clap definitions. Every value is checked here, so a bad argument is a clap error.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_linux::region::Backing;
use wpsnap_linux::snapshot::{BackgroundPriority, ThreadPriority};
use wpsnap_workload::Pattern;

/// Live point-in-time snapshots of memory with userfaultfd write-protection.
///
/// `wpsnap demo` shows the whole thing on defaults. `wpsnap run` takes a snapshot of a
/// synthetic region while writer threads keep writing it, with every knob exposed.
#[derive(Debug, Parser)]
#[command(name = "wpsnap", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// 256 MiB region, 4 zipf writers, decoupled service, latency-target policy; prints a
    /// summary, checks the image, writes a JSON report and SVG charts to a temporary folder.
    Demo(DemoArgs),
    /// Snapshot a synthetic region while writers write it (see --help for every knob).
    Run(Box<RunArgs>),
    /// Check a snapshot file's structure and checksums (and optionally against a raw image).
    Verify {
        /// The snapshot file; `-` reads it from standard input.
        file: PathBuf,
        /// Compare page by page with this raw image.
        #[arg(long)]
        against: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a snapshot file's header, counts and stored report.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a snapshot's pages out as a raw image.
    Restore {
        file: PathBuf,
        /// The raw image to write (a regular file; never the snapshot itself).
        #[arg(long)]
        raw: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure wpsnap against its floors (bare userfaultfd round trip, bare write-protect,
    /// memcpy, raw sink writes) and fork(), in one run: fault wait, start pause, throughput,
    /// writer slowdown, extra memory. Prints markdown tables; every figure is a ratio to a
    /// baseline measured in the same run.
    Bench(BenchArgs),
    /// Run the wpsnap test guest in a KVM VM and snapshot it live (or restore one, or run a
    /// no-snapshot baseline); the guest's own store latencies go into the report.
    Vm(Box<VmArgs>),
    /// Recompute the guest-side figures (before/during/after windows, lost time) of a stats
    /// file: a `wpsnap vm` JSON report, or the same fields written by scripts/qemu-compare.sh
    /// for a QEMU run (`stats`, `window_start_ns`, `window_end_ns`). Prints JSON.
    #[command(hide = true)]
    VmImpact {
        file: PathBuf,
        /// The warm-up the run had (its second half is the "before" window), in milliseconds.
        #[arg(long, default_value_t = 3000)]
        warmup_ms: u64,
    },
    /// Receive one snapshot over TCP (from `wpsnap run --out tcp:HOST:PORT`) into a file.
    Receive {
        /// Address to listen on, e.g. 0.0.0.0:7070.
        #[arg(long)]
        listen: String,
        /// Where to write the received snapshot (checked before listening).
        #[arg(long)]
        out: PathBuf,
        /// A connected sender silent for this long is dropped, in milliseconds.
        #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
        idle_timeout_ms: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub options: crate::bench::BenchOptions,
    /// Also write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the markdown tables here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the snapshot, report and charts (default: a new temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the JSON report instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// userfaultfd write-protect: writers wait only for their own page's copy.
    Uffd,
    /// fork(): copy-on-write in a child process (comparison and fallback).
    Fork,
}

/// How the snapshot's threads are scheduled (docs/linux.md, "Thread priorities").
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ThreadPriorityArg {
    /// Fault thread SCHED_FIFO (else nice -5) where permitted; scan and sink as spawned.
    Default,
    /// Every snapshot thread as spawned.
    Inherit,
    /// The default, and the scan and sink threads lowered to SCHED_BATCH nice 5 (the writers
    /// keep more CPU; the protection window gets longer).
    LowerBackground,
    /// Only the scan and sink threads lowered; the fault thread as spawned.
    BackgroundOnly,
}

impl From<ThreadPriorityArg> for ThreadPriority {
    fn from(arg: ThreadPriorityArg) -> ThreadPriority {
        let default = ThreadPriority::default();
        let inherit = ThreadPriority::inherit();
        match arg {
            ThreadPriorityArg::Default => default,
            ThreadPriorityArg::Inherit => inherit,
            ThreadPriorityArg::LowerBackground => ThreadPriority { background: BackgroundPriority::Lowered, ..default },
            ThreadPriorityArg::BackgroundOnly => ThreadPriority { background: BackgroundPriority::Lowered, ..inherit },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackingArg {
    Anonymous,
    Thp,
    Memfd,
    Hugetlbfs,
}

impl From<BackingArg> for Backing {
    fn from(b: BackingArg) -> Backing {
        match b {
            BackingArg::Anonymous => Backing::Anonymous,
            BackingArg::Thp => Backing::Thp,
            BackingArg::Memfd => Backing::Memfd,
            BackingArg::Hugetlbfs => Backing::Hugetlbfs,
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Region size: bytes or with a suffix K, M, G (KiB, MiB, GiB); a multiple of the page size.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub size: u64,
    /// What backs the region.
    #[arg(long, value_enum, default_value_t = BackingArg::Anonymous)]
    pub backing: BackingArg,
    /// Writer threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub writers: u32,
    /// Write pattern: uniform, zipf:THETA, hot-set:W/P, sequential, video.
    #[arg(long, default_value = "zipf:0.99", value_parser = parse_pattern)]
    pub pattern: Pattern,
    /// Writes per second per writer (0: as fast as possible).
    #[arg(long, default_value_t = 50_000.0, value_parser = parse_rate)]
    pub write_rate: f64,
    /// Throttle policy of the background scan, with its knobs: none, limit-scan-rate,
    /// limit-scan-rate-true-latency, bandwidth[:RATE], latency-target[:P99] (e.g.
    /// `bandwidth:256M`, `latency-target:2ms`; docs/policies.md). `seed` and
    /// `seed-true-latency` are the old names of limit-scan-rate and its variant. Default: none
    /// with `--model decoupled` (a policy only slows its scan), latency-target:1ms with
    /// `--model qemu` (docs/policies.md, "Defaults").
    #[arg(long)]
    pub policy: Option<PolicyConfig>,
    /// Old spelling of `--policy latency-target:P99` (microseconds); only with that policy.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub target_p99_us: Option<u64>,
    /// Old spelling of `--policy bandwidth:RATE` (suffixes K, M, G); only with that policy.
    #[arg(long, value_parser = parse_size)]
    pub scan_bandwidth: Option<u64>,
    /// A full policy as JSON (overrides --policy), e.g. '{"kind":"limit-scan-rate","slow_fault_ns":5000000,"poll_timeout_ns":5000000,"throttle_pages":200}'.
    #[arg(long)]
    pub policy_json: Option<String>,
    /// Who waits for what when a writer faults: decoupled or qemu.
    #[arg(long, default_value = "decoupled")]
    pub model: ServiceModel,
    /// Memory budget of the decoupled model (suffixes K, M, G); default: the region, within
    /// half of MemAvailable and of the cgroup's room, at most 8 GiB.
    #[arg(long, alias = "staging", value_parser = parse_size)]
    pub budget: Option<u64>,
    /// Microseconds the fault thread spins on the userfaultfd before sleeping (0..=500).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=500))]
    pub fault_spin_us: u64,
    /// Scheduling of the snapshot threads: default, inherit, lower-background, background-only.
    #[arg(long, value_enum, default_value_t = ThreadPriorityArg::Default)]
    pub thread_priority: ThreadPriorityArg,
    /// Pages per scan capture (one unprotect each). Default: 2 MiB of pages in the decoupled
    /// model (fewer unprotect calls, each a TLB flush on the program's CPUs), 16 in the qemu
    /// model (it reads faults only between captures).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub scan_batch_pages: Option<u64>,
    /// Snapshot backend.
    #[arg(long, value_enum, default_value_t = Backend::Uffd)]
    pub backend: Backend,
    /// Output: a file path, `-` for standard output, tcp:HOST:PORT, or cmd:COMMAND (the
    /// stream on the standard input of `sh -c COMMAND`, which must exit 0).
    #[arg(long, default_value = "snapshot.wps")]
    pub out: String,
    /// Open the output file with O_DIRECT.
    #[arg(long)]
    pub direct_io: bool,
    /// Emulate a slow device (hdd-7200, sata-ssd, nvme): bandwidth cap and seeded stalls.
    #[arg(long, value_parser = ["hdd-7200", "sata-ssd", "nvme"])]
    pub slow_device: Option<String>,
    /// Seed of the writers and of the slow-device stalls.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Writers run this long before the snapshot starts, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub warmup_ms: u64,
    /// Touch every page by reading it before arming, even if the kernel can protect
    /// unpopulated pages itself.
    #[arg(long)]
    pub force_touch: bool,
    /// Check the image against a reference copy taken at the snapshot instant (needs a file
    /// output, which is read back; costs a copy of the region in memory).
    #[arg(long)]
    pub check: bool,
    /// Also measure the yardsticks in the same run: the bare userfaultfd round trip (fault,
    /// copy 4 KiB, unprotect) with the writers running, and a bare whole-region write-protect
    /// of a populated region of the same size.
    #[arg(long)]
    pub baseline: bool,
    /// Writers read each page's pagemap entry before a write, so writes to write-protected
    /// pages (the real fault waits) are told from writes that were only preempted; costs a
    /// system call per write (docs/linux.md, "Synthetic writers").
    #[arg(long)]
    pub classify_faults: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the fault-wait percentile chart (SVG) here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Write the log2-ms bucket chart (SVG) here.
    #[arg(long)]
    pub log2_svg: Option<PathBuf>,
    /// Print the JSON report on standard output and no progress bar.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// `--policy` with the old knob flags applied; a knob flag the policy does not have is an
    /// error (it used to be ignored).
    pub fn policy_with_old_knobs(&self) -> Result<PolicyConfig, String> {
        let mut policy = match (&self.policy, self.target_p99_us) {
            (Some(policy), _) => policy.clone(),
            // The old knob alone used to tune the old default, latency-target.
            (None, Some(_)) => PolicyConfig::LatencyTarget(Default::default()),
            (None, None) => PolicyConfig::default_for(self.model),
        };
        match (&mut policy, self.scan_bandwidth, self.target_p99_us) {
            (PolicyConfig::Bandwidth(p), Some(bytes_per_sec), None) => p.bytes_per_sec = bytes_per_sec,
            (PolicyConfig::LatencyTarget(p), None, Some(us)) => p.target_p99_ns = us.saturating_mul(1_000),
            (_, None, None) => {}
            (_, Some(_), _) => {
                return Err(format!("--scan-bandwidth applies only to --policy bandwidth, not {policy}"));
            }
            (_, _, Some(_)) => {
                return Err(format!("--target-p99-us applies only to --policy latency-target, not {policy}"));
            }
        }
        policy.validate().map_err(|e| e.to_string())?;
        Ok(policy)
    }
}

#[derive(Debug, Args, Clone)]
pub struct VmArgs {
    /// Guest memory (suffixes K, M, G), a multiple of 2 MiB.
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    pub memory: u64,
    /// The guest's store region (default: all guest memory above 8 MiB).
    #[arg(long, value_parser = parse_size)]
    pub region: Option<u64>,
    /// The guest's store pattern: uniform, zipf, sequential, burst.
    #[arg(long, default_value = "uniform", value_parser = parse_guest_pattern)]
    pub workload: wpsnap_vmm::GuestPattern,
    /// vCPUs (each runs the workload).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub vcpus: u32,
    /// Seed of the guest's workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The guest's stats period in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub report_ms: u64,
    /// Guest memory without MADV_HUGEPAGE.
    #[arg(long)]
    pub no_huge_pages: bool,
    /// Leave the guest's huge pages split after the snapshot (by default MADV_COLLAPSE re-forms
    /// them, so the guest is not slower afterwards).
    #[arg(long)]
    pub no_collapse: bool,
    /// Do not allocate guest memory before boot (by default it is, like QEMU's -mem-prealloc).
    #[arg(long)]
    pub no_prefault: bool,
    /// Throttle policy of the background scan, with its knobs (as for `wpsnap run`; the
    /// default is QEMU's: none).
    #[arg(long, default_value = "none")]
    pub policy: PolicyConfig,
    /// Who waits for what when a vCPU faults: decoupled or qemu.
    #[arg(long, default_value = "decoupled")]
    pub model: ServiceModel,
    /// Memory budget of the decoupled model (suffixes K, M, G); default as for `wpsnap run`:
    /// guest memory, within half of MemAvailable and of the cgroup's room, at most 8 GiB.
    #[arg(long, alias = "staging", value_parser = parse_size)]
    pub budget: Option<u64>,
    /// Pages per scan capture (one unprotect each). Default: 2 MiB of pages in the decoupled
    /// model (fewer unprotect calls, each a TLB flush on the program's CPUs), 16 in the qemu
    /// model (it reads faults only between captures).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub scan_batch_pages: Option<u64>,
    /// Output: a file path, `-` for standard output, or tcp:HOST:PORT.
    #[arg(long, default_value = "vm.wps")]
    pub out: String,
    /// Pipe the snapshot into this shell command instead (e.g. 'pv -qL 50m > f'), as QEMU's
    /// `migrate exec:` does; the same as `--out 'cmd:COMMAND'`.
    #[arg(long)]
    pub sink_cmd: Option<String>,
    /// The guest runs this long before the snapshot, in milliseconds (its second half is the
    /// "before" window).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub warmup_ms: u64,
    /// The guest runs this long after the snapshot (or, with --no-snapshot, this is the
    /// measured window), in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub after_ms: u64,
    /// Run the same guest without a snapshot (the baseline).
    #[arg(long, conflicts_with = "restore")]
    pub no_snapshot: bool,
    /// Boot a new VM from this snapshot (memory size from its header, vCPUs as --vcpus), ask
    /// the guest to verify its self-check state, and run it for --after-ms.
    #[arg(long)]
    pub restore: Option<PathBuf>,
    /// Boot this multiboot ELF instead of the built-in guest.
    #[arg(long)]
    pub guest_elf: Option<PathBuf>,
    /// Write the built-in guest ELF here and print the host TSC frequency, then exit (for
    /// running the same guest under QEMU).
    #[arg(long)]
    pub write_guest_elf: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the guest's store-latency percentile chart (before, during, after) here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Print the JSON report on standard output.
    #[arg(long)]
    pub json: bool,
}

fn parse_guest_pattern(text: &str) -> Result<wpsnap_vmm::GuestPattern, String> {
    text.parse()
}

/// Parses `4096`, `64K`, `64M`, `1G` (binary units; an optional `iB`/`B` is accepted).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size like 4096, 64K, 64M or 1G"))?;
    n.checked_mul(1 << shift).filter(|&v| v > 0).ok_or_else(|| format!("{text:?} is zero or too large"))
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    text.parse::<Pattern>().map_err(|e| e.to_string())
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e8).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a rate in 0..=100000000 writes per second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes_and_reject_junk() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn bad_arguments_are_clap_errors() {
        for bad in [
            vec!["wpsnap", "run", "--size", "lots"],
            vec!["wpsnap", "run", "--pattern", "zipf:abc"],
            vec!["wpsnap", "run", "--writers", "1000"],
            vec!["wpsnap", "run", "--model", "fast"],
            vec!["wpsnap", "run", "--write-rate", "-5"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?} parsed");
        }
        assert!(Cli::try_parse_from(["wpsnap", "run", "--size", "8M", "--policy", "seed"]).is_ok());
    }

    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["wpsnap", "run"].iter().chain(args);
        match Cli::try_parse_from(argv) {
            Ok(Cli { command: Command::Run(run) }) => *run,
            Ok(_) => panic!("not a run"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn old_policy_knob_flags_apply_to_their_policy_only() {
        let new = run_args(&["--policy", "bandwidth:64M"]).policy_with_old_knobs();
        let old = run_args(&["--policy", "bandwidth", "--scan-bandwidth", "64M"]).policy_with_old_knobs();
        assert_eq!(new, old);
        assert!(matches!(new, Ok(PolicyConfig::Bandwidth(p)) if p.bytes_per_sec == 64 << 20));
        let old = run_args(&["--target-p99-us", "2000"]).policy_with_old_knobs();
        assert_eq!(old, run_args(&["--policy", "latency-target:2ms"]).policy_with_old_knobs());
        let wrong = run_args(&["--policy", "none", "--scan-bandwidth", "64M"]).policy_with_old_knobs();
        assert!(wrong.is_err_and(|e| e.contains("--scan-bandwidth")));
        let wrong = run_args(&["--policy", "bandwidth", "--target-p99-us", "10"]).policy_with_old_knobs();
        assert!(wrong.is_err_and(|e| e.contains("--target-p99-us")));
        assert!(Cli::try_parse_from(["wpsnap", "run", "--policy", "latency-target:burst=1M"]).is_err());
    }
}
