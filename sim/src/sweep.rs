//! Many runs at once: a grid of configurations over several seeds, run in parallel on
//! plain threads (each run is single-threaded and deterministic, so the results do not
//! depend on the thread count or order).

use crate::config::SimConfig;
use crate::report::SimReport;
use crate::sim::{SimError, run};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most runs one sweep may contain.
pub const SWEEP_RUNS_MAX: usize = 100_000;

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
    fn aggregate_gives_the_range_over_seeds_per_configuration() {
        let rows = vec![row("a", 1, 5), row("a", 2, 9), row("b", 1, 7)];
        let text = aggregate(&rows);
        let line_a = text.lines().find(|l| l.starts_with("a ")).unwrap_or_default();
        assert!(line_a.contains("5-9") && line_a.contains("1.0-2.0"), "{line_a}");
        assert!(text.lines().any(|l| l.starts_with("b ") && l.contains("7-7")), "{text}");
    }
}
