//! What `wpsnap bench` runs: the command-line options, and the plan they resolve to.

use crate::cli::parse_size;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Largest region any bench step maps (8 GiB): the machine is shared.
pub const BENCH_REGION_BYTES_MAX: u64 = 8 << 30;
/// Most region sizes the start-pause step measures.
pub const PAUSE_SIZES_MAX: usize = 8;
/// Most rounds of a step.
pub const ROUNDS_MAX: u32 = 10;
/// Most writer threads a bench step starts.
pub const BENCH_WRITERS_MAX: u32 = 16;

/// `wpsnap bench` options. Defaults are the full run (under 10 minutes on a 2-core machine);
/// `--quick` replaces every size with a small one (for CI, which checks no timing).
#[derive(Clone, Debug, Args, Serialize, Deserialize)]
pub struct BenchOptions {
    /// Small regions and short steps (under 2 minutes); overrides the size options.
    #[arg(long)]
    pub quick: bool,
    /// Region of the fault-wait, writer-slowdown and extra-memory steps.
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub fault_region: u64,
    /// Region sizes of the start-pause step (comma-separated), each with 4 KiB pages and THP.
    #[arg(long, value_parser = parse_size, value_delimiter = ',', default_value = "256M,1G,2G")]
    pub pause_sizes: Vec<u64>,
    /// Region of the throughput step.
    #[arg(long, value_parser = parse_size, default_value = "1G")]
    pub throughput_region: u64,
    /// Region of the slow-disk step.
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub slow_disk_region: u64,
    /// Writer threads of the fault-wait and slowdown steps (as fast as they can, uniform).
    #[arg(long, default_value_t = 1)]
    pub writers: u32,
    /// Writes per second per writer in the slow-disk step (zipf 0.99).
    #[arg(long, default_value_t = 20_000.0)]
    pub slow_disk_write_rate: f64,
    /// Folder for the scratch snapshot files (default: a new folder in the temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The `wpsnap-sim` binary (default: target/release/wpsnap-sim, else target/debug).
    #[arg(long)]
    pub sim_bin: Option<PathBuf>,
    /// Region of the simulator bench, in pages.
    #[arg(long, default_value_t = 1 << 22)]
    pub sim_pages: u64,
    /// Seed of the writers and of the slow-device emulation's stalls.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rounds of the fault-wait, start-pause and throughput steps; each round measures every
    /// side once, one after the other, so noise from other processes hits all sides alike.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            quick: false,
            fault_region: 256 << 20,
            pause_sizes: vec![256 << 20, 1 << 30, 2 << 30],
            throughput_region: 1 << 30,
            slow_disk_region: 256 << 20,
            writers: 1,
            slow_disk_write_rate: 20_000.0,
            dir: None,
            sim_bin: None,
            sim_pages: 1 << 22,
            seed: 1,
            rounds: 3,
        }
    }
}

/// The sizes actually used (after `--quick`), checked against the bounds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchPlan {
    pub quick: bool,
    pub fault_region_bytes: u64,
    pub pause_sizes_bytes: Vec<u64>,
    pub throughput_region_bytes: u64,
    pub slow_disk_region_bytes: u64,
    pub writers: u32,
    pub slow_disk_write_rate: f64,
    pub dir: PathBuf,
    pub sim_bin: Option<PathBuf>,
    pub sim_pages: u64,
    pub seed: u64,
    pub rounds: u32,
}

impl BenchOptions {
    /// The plan these options describe; an error names the first option out of bounds.
    pub fn plan(&self) -> anyhow::Result<BenchPlan> {
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("wpsnap-bench-{}", std::process::id())));
        let plan = if self.quick {
            BenchPlan {
                quick: true,
                fault_region_bytes: 16 << 20,
                pause_sizes_bytes: vec![16 << 20],
                throughput_region_bytes: 32 << 20,
                slow_disk_region_bytes: 16 << 20,
                writers: self.writers,
                slow_disk_write_rate: self.slow_disk_write_rate,
                dir,
                sim_bin: self.sim_bin.clone(),
                sim_pages: 1 << 18,
                seed: self.seed,
                rounds: 1,
            }
        } else {
            BenchPlan {
                quick: false,
                fault_region_bytes: self.fault_region,
                pause_sizes_bytes: self.pause_sizes.clone(),
                throughput_region_bytes: self.throughput_region,
                slow_disk_region_bytes: self.slow_disk_region,
                writers: self.writers,
                slow_disk_write_rate: self.slow_disk_write_rate,
                dir,
                sim_bin: self.sim_bin.clone(),
                sim_pages: self.sim_pages,
                seed: self.seed,
                rounds: self.rounds,
            }
        };
        let page = wpsnap_linux::region::HUGE_PAGE_BYTES;
        let sizes = [plan.fault_region_bytes, plan.throughput_region_bytes, plan.slow_disk_region_bytes];
        for bytes in sizes.iter().chain(&plan.pause_sizes_bytes) {
            anyhow::ensure!(
                *bytes >= page && *bytes <= BENCH_REGION_BYTES_MAX && bytes % page == 0,
                "region size {bytes} must be a multiple of 2 MiB in 2 MiB..={BENCH_REGION_BYTES_MAX}"
            );
        }
        anyhow::ensure!(
            !plan.pause_sizes_bytes.is_empty() && plan.pause_sizes_bytes.len() <= PAUSE_SIZES_MAX,
            "give 1..={PAUSE_SIZES_MAX} pause sizes"
        );
        anyhow::ensure!((1..=BENCH_WRITERS_MAX).contains(&plan.writers), "writers must be in 1..={BENCH_WRITERS_MAX}");
        anyhow::ensure!(
            plan.slow_disk_write_rate.is_finite()
                && plan.slow_disk_write_rate > 0.0
                && plan.slow_disk_write_rate <= 1e7,
            "the slow-disk write rate must be in (0, 10000000] writes per second"
        );
        anyhow::ensure!((1..=ROUNDS_MAX).contains(&plan.rounds), "rounds must be in 1..={ROUNDS_MAX}");
        anyhow::ensure!((1..=1 << 26).contains(&plan.sim_pages), "sim pages must be in 1..=2^26");
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_plans_are_refused() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("0").is_err());
        let bad = BenchOptions { fault_region: 4096, ..BenchOptions::default() };
        assert!(bad.plan().is_err());
        let too_many = BenchOptions { writers: 0, ..BenchOptions::default() };
        assert!(too_many.plan().is_err());
        assert!(BenchOptions::default().plan().is_ok());
        let quick = BenchOptions { quick: true, fault_region: 4096, ..BenchOptions::default() };
        assert_eq!(quick.plan().map(|p| p.fault_region_bytes).ok(), Some(16 << 20));
    }
}
