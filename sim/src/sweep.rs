//! Many runs at once: a grid of configurations over several seeds, run in parallel on
//! plain threads (each run is single-threaded and deterministic, so the results do not
//! depend on the thread count or order).
//!
//! A grid can also be split over processes or machines without a scheduler of our own:
//! [`Shard`] `i/n` runs the cells whose index is `i-1` modulo `n` and writes a [`ShardFile`];
//! [`merge`] checks that a set of shard files covers one grid exactly once and gives back the
//! rows, from which [`report_text`] and [`json_lines`] print byte for byte what the unsharded
//! sweep prints.

use crate::config::SimConfig;
use crate::report::SimReport;
use crate::sim::{SimError, run};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most runs one sweep may contain.
pub const SWEEP_RUNS_MAX: usize = 100_000;

/// Most shards a grid may be split into.
pub const SHARDS_MAX: u32 = 10_000;

/// The `format` field of a [`ShardFile`].
pub const SHARD_FORMAT: &str = "wpsnap-sim-sweep-shard/1";

/// One cell of the grid.
#[derive(Clone, Debug)]
pub struct Job {
    pub seed: u64,
    pub label: String,
    pub config: SimConfig,
}

/// The headline numbers of one run, for tables and JSON lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub label: String,
    pub seed: u64,
    pub policy: String,
    pub model: String,
    pub disk: String,
    pub complete: bool,
    pub duration_ms: f64,
    pub faults: u64,
    pub wait_p50_us: f64,
    pub wait_p99_ms: f64,
    pub wait_p999_ms: f64,
    pub wait_max_ms: f64,
    pub waits_at_least_8ms: u64,
    pub waits_at_least_16ms: u64,
    pub seed_measure_p99_ms: f64,
    pub seed_measure_at_least_8ms: u64,
    pub pages_by_scan: u64,
    pub pages_by_fault: u64,
    pub throughput_ratio: Option<f64>,
    pub staging_peak_pages: u64,
    pub clean: bool,
    pub digest: String,
}

impl RunSummary {
    /// The summary of one report, under `label`.
    pub fn of(label: &str, r: &SimReport) -> RunSummary {
        let e = r.engine.as_ref();
        let wait = e.map(|e| e.fault_wait.clone()).unwrap_or_default();
        let seed = e.map(|e| e.seed_latency.clone()).unwrap_or_default();
        RunSummary {
            label: label.to_string(),
            seed: r.seed,
            policy: r.policy_name().to_string(),
            model: r.config.engine.service_model.to_string(),
            disk: r.config.disk_preset.to_string(),
            complete: e.is_some_and(|e| e.outcome == wpsnap_core::Outcome::Complete),
            duration_ms: r.snapshot.duration_ns.unwrap_or(0) as f64 / 1e6,
            faults: wait.count,
            wait_p50_us: wait.p50_ns as f64 / 1e3,
            wait_p99_ms: wait.p99_ns as f64 / 1e6,
            wait_p999_ms: wait.p999_ns as f64 / 1e6,
            wait_max_ms: wait.max_ns as f64 / 1e6,
            waits_at_least_8ms: wait.log2_ms.at_least_ms(8),
            waits_at_least_16ms: wait.log2_ms.at_least_ms(16),
            seed_measure_p99_ms: seed.p99_ns as f64 / 1e6,
            seed_measure_at_least_8ms: seed.log2_ms.at_least_ms(8),
            pages_by_scan: r.snapshot.pages_by_scan,
            pages_by_fault: r.snapshot.pages_by_fault,
            throughput_ratio: r.writers.throughput_ratio,
            staging_peak_pages: r.snapshot.staging_peak_pages,
            clean: r.is_clean(),
            digest: format!("{:016x}", r.digest()),
        }
    }
}

/// Runs every job on `threads` threads; `on_done` is called after each run (for a progress
/// bar). Results come back in job order.
pub fn run_all(jobs: &[Job], threads: usize, on_done: &(dyn Fn() + Sync)) -> Vec<Result<SimReport, SimError>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<SimReport, SimError>>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = run(job.seed, &job.config);
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                    on_done();
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SimError::Config(crate::ConfigFieldError::new("(sweep)", "run lost".into())))))
        .collect()
}

/// Shard `index` of `count` (both from 1): the cells whose index is `index - 1` modulo
/// `count`. Round robin, so every shard gets a share of every configuration and seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Checks 1 <= index <= count <= [`SHARDS_MAX`] (a shard read from a file has not been).
    pub fn check(&self) -> Result<(), ShardError> {
        if self.index == 0 || self.index > self.count || self.count > SHARDS_MAX {
            return Err(ShardError::InvalidSpec { spec: self.to_string() });
        }
        Ok(())
    }

    /// Whether cell `cell` (its index in the grid) belongs to this shard.
    pub fn owns(&self, cell: usize) -> bool {
        cell % self.count as usize == (self.index - 1) as usize
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `I/N` with 1 <= I <= N <= [`SHARDS_MAX`].
impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let invalid = || ShardError::InvalidSpec { spec: s.to_string() };
        let (index, count) = s.split_once('/').ok_or_else(invalid)?;
        let index: u32 = index.trim().parse().map_err(|_| invalid())?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let shard = Shard { index, count };
        shard.check()?;
        Ok(shard)
    }
}

/// One finished cell of a shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRow {
    /// The cell's index in the whole grid.
    pub cell: usize,
    pub summary: RunSummary,
}

/// What `wpsnap-sim sweep --shard I/N --out FILE` writes: the shard's rows and what
/// identifies the grid, so [`merge`] can refuse shards of different grids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    /// [`SHARD_FORMAT`].
    pub format: String,
    pub shard: Shard,
    /// Cells in the whole grid.
    pub cells: usize,
    /// [`grid_digest`] of the whole grid.
    pub grid_digest: String,
    /// This shard's rows, in cell order.
    pub rows: Vec<ShardRow>,
}

/// Why a shard spec, a shard file or a merge is refused.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("invalid shard `{spec}`: expected I/N with 1 <= I <= N <= {SHARDS_MAX}")]
    InvalidSpec { spec: String },
    #[error("no shard files to merge")]
    NoShards,
    #[error("shard {shard}: format `{found}`, expected `{SHARD_FORMAT}`")]
    Format { shard: Shard, found: String },
    #[error(
        "shard {shard} is of another grid ({cells} cells, digest {digest}) than shard {first} ({first_cells} cells, digest {first_digest})"
    )]
    OtherGrid { shard: Shard, cells: usize, digest: String, first: Shard, first_cells: usize, first_digest: String },
    #[error("shard {index}/{count} appears twice")]
    Duplicate { index: u32, count: u32 },
    #[error("shard {index}/{count} is missing")]
    Missing { index: u32, count: u32 },
    #[error("shard {shard} holds cell {cell}, which is not its own or is outside the grid of {cells} cells")]
    ForeignCell { shard: Shard, cell: usize, cells: usize },
    #[error("cell {cell} appears twice in shard {shard}")]
    DuplicateCell { shard: Shard, cell: usize },
    #[error("a grid of {cells} cells is more than the bound of {SWEEP_RUNS_MAX}")]
    TooManyCells { cells: usize },
    #[error("the shards hold {found} of the grid's {cells} cells")]
    CellsMissing { found: usize, cells: usize },
}

/// FNV-1a over every cell's seed, label and config (JSON): two processes that build the same
/// grid get the same digest.
pub fn grid_digest(jobs: &[Job]) -> String {
    let fnv = |h: u64, bytes: &[u8]| bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    let digest = jobs.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, job| {
        let h = fnv(h, &job.seed.to_le_bytes());
        let h = fnv(h, job.label.as_bytes());
        fnv(h, serde_json::to_string(&job.config).unwrap_or_default().as_bytes())
    });
    format!("{digest:016x}")
}

/// Combines shard files of one grid into its rows in cell order. Refuses files of another
/// format or grid, a missing or repeated shard, and a cell that is missing, repeated or not
/// the shard's own.
pub fn merge(shards: Vec<ShardFile>) -> Result<Vec<RunSummary>, ShardError> {
    let first = shards.first().ok_or(ShardError::NoShards)?;
    let (count, cells, digest, first_shard) = (first.shard.count, first.cells, first.grid_digest.clone(), first.shard);
    first_shard.check()?;
    if cells > SWEEP_RUNS_MAX {
        return Err(ShardError::TooManyCells { cells });
    }
    let mut seen_shards = vec![false; count as usize];
    let mut rows: Vec<Option<RunSummary>> = vec![None; cells];
    for file in shards {
        let shard = file.shard;
        if file.format != SHARD_FORMAT {
            return Err(ShardError::Format { shard, found: file.format });
        }
        shard.check()?;
        if shard.count != count || file.cells != cells || file.grid_digest != digest {
            return Err(ShardError::OtherGrid {
                shard,
                cells: file.cells,
                digest: file.grid_digest,
                first: first_shard,
                first_cells: cells,
                first_digest: digest,
            });
        }
        let slot =
            seen_shards.get_mut(shard.index as usize - 1).ok_or(ShardError::InvalidSpec { spec: shard.to_string() })?;
        if std::mem::replace(slot, true) {
            return Err(ShardError::Duplicate { index: shard.index, count });
        }
        for row in file.rows {
            let cell = row.cell;
            let slot = rows.get_mut(cell).filter(|_| shard.owns(cell)).ok_or(ShardError::ForeignCell {
                shard,
                cell,
                cells,
            })?;
            if slot.replace(row.summary).is_some() {
                return Err(ShardError::DuplicateCell { shard, cell });
            }
        }
    }
    if let Some(missing) = seen_shards.iter().position(|seen| !seen) {
        return Err(ShardError::Missing { index: missing as u32 + 1, count });
    }
    let found = rows.iter().filter(|r| r.is_some()).count();
    if found != cells {
        return Err(ShardError::CellsMissing { found, cells });
    }
    Ok(rows.into_iter().flatten().collect())
}

/// Sorts rows as every sweep prints them: by label, then seed.
pub fn sort_rows(rows: &mut [RunSummary]) {
    rows.sort_by(|x, y| x.label.cmp(&y.label).then(x.seed.cmp(&y.seed)));
}

/// What a sweep prints on standard output: the table of every run, then the ranges over seeds.
pub fn report_text(rows: &[RunSummary]) -> String {
    format!("{}\nranges over seeds:\n{}", table(rows), aggregate(rows))
}

/// A sweep's `--out` file: one JSON summary per line.
pub fn json_lines(rows: &[RunSummary]) -> String {
    let lines: Vec<String> = rows.iter().filter_map(|r| serde_json::to_string(r).ok()).collect();
    lines.join("\n") + "\n"
}

/// A fixed-width table of summaries, one row each.
pub fn table(rows: &[RunSummary]) -> String {
    let mut out = format!(
        "{:<28} {:>5} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>9} {:>9} {:>8} {:>6}\n",
        "run",
        "seed",
        "duration",
        "faults",
        "p50 us",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        ">=8ms",
        ">=16",
        "seed>=8ms",
        "scan pg",
        "thruput",
        "clean"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<28} {:>5} {:>8.0}ms {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>6} {:>9} {:>9} {:>8} {:>6}\n",
            r.label,
            r.seed,
            r.duration_ms,
            r.faults,
            r.wait_p50_us,
            r.wait_p99_ms,
            r.wait_p999_ms,
            r.wait_max_ms,
            r.waits_at_least_8ms,
            r.waits_at_least_16ms,
            r.seed_measure_at_least_8ms,
            r.pages_by_scan,
            r.throughput_ratio.map(|t| format!("{t:.3}")).unwrap_or_else(|| "-".into()),
            if r.clean { "yes" } else { "NO" }
        ));
    }
    out
}

/// Per label (configuration), the range over seeds of the headline numbers.
pub fn aggregate(rows: &[RunSummary]) -> String {
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    labels.dedup();
    let mut out = format!(
        "{:<36} {:>5} {:>15} {:>13} {:>13} {:>17} {:>13} {:>6}\n",
        "configuration", "seeds", "duration s", ">=8ms", ">=16ms", "wait p99 ms", "thruput", "clean"
    );
    let range = |values: Vec<f64>, decimals: usize| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if values.is_empty() { "-".to_string() } else { format!("{lo:.decimals$}-{hi:.decimals$}") }
    };
    for label in labels {
        let of: Vec<&RunSummary> = rows.iter().filter(|r| r.label == label).collect();
        out.push_str(&format!(
            "{:<36} {:>5} {:>15} {:>13} {:>13} {:>17} {:>13} {:>6}\n",
            label,
            of.len(),
            range(of.iter().map(|r| r.duration_ms / 1e3).collect(), 1),
            range(of.iter().map(|r| r.waits_at_least_8ms as f64).collect(), 0),
            range(of.iter().map(|r| r.waits_at_least_16ms as f64).collect(), 0),
            range(of.iter().map(|r| r.wait_p99_ms).collect(), 2),
            range(of.iter().filter_map(|r| r.throughput_ratio).collect(), 2),
            if of.iter().all(|r| r.clean) { "yes" } else { "NO" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, seed: u64, at_least_8ms: u64) -> RunSummary {
        RunSummary {
            label: label.into(),
            seed,
            policy: "none".into(),
            model: "qemu".into(),
            disk: "tmpfs".into(),
            complete: true,
            duration_ms: 1000.0 * seed as f64,
            faults: 10,
            wait_p50_us: 1.0,
            wait_p99_ms: 2.0,
            wait_p999_ms: 3.0,
            wait_max_ms: 4.0,
            waits_at_least_8ms: at_least_8ms,
            waits_at_least_16ms: 0,
            seed_measure_p99_ms: 0.0,
            seed_measure_at_least_8ms: 0,
            pages_by_scan: 1,
            pages_by_fault: 1,
            throughput_ratio: Some(0.5),
            staging_peak_pages: 0,
            clean: true,
            digest: String::new(),
        }
    }

    #[test]
    fn shard_specs_parse_and_split_cells_round_robin() {
        assert_eq!("2/3".parse::<Shard>().ok(), Some(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "1/10001", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
        for cell in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.owns(cell)).count(), 1, "cell {cell}");
        }
        assert!(shards[0].owns(0) && shards[1].owns(1) && shards[2].owns(2) && shards[0].owns(3));
    }

    /// A grid of `cells` rows split into `count` shard files.
    fn shard_files(cells: usize, count: u32) -> Vec<ShardFile> {
        (1..=count)
            .map(|index| {
                let shard = Shard { index, count };
                ShardFile {
                    format: SHARD_FORMAT.into(),
                    shard,
                    cells,
                    grid_digest: "00000000000000ab".into(),
                    rows: (0..cells)
                        .filter(|&c| shard.owns(c))
                        .map(|cell| ShardRow { cell, summary: row(&format!("c{cell}"), 1, cell as u64) })
                        .collect(),
                }
            })
            .collect()
    }

    #[test]
    fn merge_gives_the_rows_in_cell_order_whatever_the_file_order() {
        let mut files = shard_files(7, 3);
        files.reverse();
        let rows = merge(files).unwrap_or_default();
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    }

    #[test]
    fn merge_refuses_incomplete_repeated_foreign_or_mixed_shards() {
        let mut missing = shard_files(7, 3);
        missing.remove(1);
        assert!(matches!(merge(missing), Err(ShardError::Missing { index: 2, count: 3 })));
        let mut twice = shard_files(7, 3);
        twice.push(twice[0].clone());
        assert!(matches!(merge(twice), Err(ShardError::Duplicate { index: 1, .. })));
        let mut other_grid = shard_files(7, 3);
        other_grid[2].grid_digest = "ffffffffffffffff".into();
        assert!(matches!(merge(other_grid), Err(ShardError::OtherGrid { .. })));
        let mut foreign = shard_files(7, 3);
        foreign[0].rows[0].cell = 1;
        assert!(matches!(merge(foreign), Err(ShardError::ForeignCell { cell: 1, .. })));
        let mut lost_row = shard_files(7, 3);
        lost_row[0].rows.pop();
        assert!(matches!(merge(lost_row), Err(ShardError::CellsMissing { found: 6, cells: 7 })));
        let mut zero = shard_files(7, 3);
        zero[0].shard = Shard { index: 0, count: 3 };
        assert!(merge(zero).is_err());
        assert!(matches!(merge(Vec::new()), Err(ShardError::NoShards)));
    }

    #[test]
    fn aggregate_gives_the_range_over_seeds_per_configuration() {
        let rows = vec![row("a", 1, 5), row("a", 2, 9), row("b", 1, 7)];
        let text = aggregate(&rows);
        let line_a = text.lines().find(|l| l.starts_with("a ")).unwrap_or_default();
        assert!(line_a.contains("5-9") && line_a.contains("1.0-2.0"), "{line_a}");
        assert!(text.lines().any(|l| l.starts_with("b ") && l.contains("7-7")), "{text}");
    }
}
