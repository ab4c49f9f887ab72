//! `wpsnap bench` (issue 7, first half): measures wpsnap against its floors and against
//! `fork()` in one run on one machine, and reports every figure as a ratio to a baseline
//! measured in the same run (the machines it runs on are shared and noisy, so absolute times
//! vary between runs; ratios vary less).
//!
//! What it measures ([`run_bench`]):
//! - fault wait p50/p99/p999/max of the `decoupled` and `qemu` service models and of fork's
//!   copy-on-write first write, against the bare userfaultfd round trip ([`crate::baseline`]);
//! - the start pause against region size (4 KiB pages and THP): wpsnap's arm pause and the
//!   `fork()` call, against a bare whole-region write-protect;
//! - throughput to a file, against the same file output's raw write speed and memcpy speed;
//! - writer slowdown: writes per second during a wpsnap and a fork snapshot, against the same
//!   writers with no snapshot;
//! - extra memory: wpsnap's peak staging, fork's copy-on-write growth, against the region size;
//! - decoupled p99 fault wait with the `hdd-7200` slow-device *emulation* as the sink;
//! - issue 15: writer stalls (writes of 16 ms or more) with a bursty `pv -qL 50m` pipe and with a
//!   file on the throttled loop disk, against the same writers alone; the protection window
//!   against memcpy + a bare whole-region unprotect; huge pages kept on a THP region; the
//!   faults-only fault wait against the busy-polling floor; every target in one met/missed
//!   table ([`TargetRow`]);
//! - the simulator's events per second, by running the `wpsnap-sim bench` binary when it is
//!   built (this crate does not depend on `wpsnap-sim`).
//!
//! What it does not do: it asserts nothing about speed (targets are reported as met or
//! missed); it does not repeat measurements to build confidence intervals (one run each,
//! except memcpy which takes the best of three); it does not run the throttle-policy study.

mod disturbance;
mod markdown;
mod measure;
mod options;
mod report;
mod sim;
mod targets;

pub use options::{BenchOptions, BenchPlan};
pub use report::{
    BenchReport, FaultWaitSection, LatencyRow, MemorySection, PauseRow, ProtectionWindowSection, STALL_THRESHOLD_MS,
    SimSection, SlowDiskSection, SlowdownSection, StallRow, TargetRow, ThpSection, ThroughputSection, ratio,
};

use anyhow::Context;
use std::time::Instant;

/// Runs every measurement the options ask for and returns the report. `progress` receives a
/// line of text before each step (the example prints it to standard error).
pub fn run_bench(options: &BenchOptions, progress: &dyn Fn(&str)) -> anyhow::Result<BenchReport> {
    let plan = options.plan()?;
    let started = Instant::now();
    let dir = plan.dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = measure::run_all(&plan, progress);
    // The scratch files are removed by each step; the folder only if we made it and it is empty.
    if options.dir.is_none() {
        let _ = std::fs::remove_dir(&dir);
    }
    let mut report = result?;
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}
