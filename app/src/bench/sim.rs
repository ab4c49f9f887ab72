//! The simulator's speed, measured by running the `wpsnap-sim bench` binary (this crate does
//! not depend on `wpsnap-sim`, so the binary is the interface; it must have been built).

use super::options::BenchPlan;
use super::report::{SimSection, ratio};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The simulator run is killed (and reported as not measured) after this long.
const SIM_RUN_MAX: Duration = Duration::from_secs(120);
/// Shortest wall time that gives a usable rate (the binary prints it to 10 ms).
const SIM_WALL_S_MIN: f64 = 0.05;
/// Largest simulator output read.
const SIM_OUTPUT_BYTES_MAX: usize = 1 << 20;

/// Runs the simulator bench, or says honestly why it was not measured.
pub(super) fn measure(plan: &BenchPlan) -> SimSection {
    let not_measured = |note: String| SimSection {
        measured: false,
        note,
        pages: plan.sim_pages,
        events: 0,
        wall_s: 0.0,
        events_per_sec: 0.0,
        simulated_s: 0.0,
        simulated_per_wall_ratio: None,
        cpu_s: None,
        events_per_cpu_sec: None,
    };
    let Some(binary) = find_binary(plan) else {
        return not_measured(
            "not measured: no wpsnap-sim binary found (build it with `cargo build --release -p wpsnap-sim`, \
             or pass --sim-bin)"
                .to_string(),
        );
    };
    match run(&binary, plan.sim_pages) {
        Ok(run) if run.wall_s < SIM_WALL_S_MIN => not_measured(format!(
            "not measured: the run took {} s, under {SIM_WALL_S_MIN} s (give more --sim-pages)",
            run.wall_s
        )),
        Ok(SimRun { events, wall_s, simulated_s, cpu_s }) => SimSection {
            measured: true,
            note: format!(
                "`{} bench --pages {}` (nvme preset, 4 writers, qemu model)",
                binary.display(),
                plan.sim_pages
            ),
            pages: plan.sim_pages,
            events,
            wall_s,
            events_per_sec: events as f64 / wall_s.max(1e-9),
            simulated_s,
            simulated_per_wall_ratio: ratio(simulated_s, wall_s),
            cpu_s,
            events_per_cpu_sec: cpu_s.filter(|&c| c > 0.0).map(|c| events as f64 / c),
        },
        Err(e) => not_measured(format!("not measured: {} bench failed: {e}", binary.display())),
    }
}

fn find_binary(plan: &BenchPlan) -> Option<PathBuf> {
    if let Some(path) = &plan.sim_bin {
        return path.is_file().then(|| path.clone());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    ["release", "debug"].iter().map(|p| target.join(p).join("wpsnap-sim")).find(|p| p.is_file())
}

/// What one `wpsnap-sim bench` printed.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SimRun {
    events: u64,
    wall_s: f64,
    simulated_s: f64,
    /// CPU time of the simulating thread; older binaries do not print it.
    cpu_s: Option<f64>,
}

/// Runs the bench with a time bound.
fn run(binary: &Path, pages: u64) -> Result<SimRun, String> {
    let mut child = Command::new(binary)
        .args(["bench", "--pages", &pages.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting it: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(status)) => return Err(format!("it exited with {status}")),
            Ok(None) if started.elapsed() > SIM_RUN_MAX => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it ran longer than {} s and was killed", SIM_RUN_MAX.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
    let mut text = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.take(SIM_OUTPUT_BYTES_MAX as u64).read_to_string(&mut text);
    }
    parse(&text)
}

/// Reads "simulated: snapshot X s virtual, N events, ...", "wall time: Y s" and, if there,
/// "cpu time: Z s ...".
fn parse(text: &str) -> Result<SimRun, String> {
    let simulated = text.lines().find_map(|l| l.strip_prefix("simulated: snapshot "));
    let wall = text.lines().find_map(|l| l.strip_prefix("wall time: "));
    let (Some(simulated), Some(wall)) = (simulated, wall) else {
        return Err("its output has no `simulated:` or `wall time:` line".to_string());
    };
    let number = |s: &str| s.split_whitespace().next().and_then(|n| n.trim_end_matches(',').parse::<f64>().ok());
    let simulated_s = number(simulated).ok_or("unreadable simulated time")?;
    let events = simulated
        .split(", ")
        .find(|p| p.ends_with(" events"))
        .and_then(|p| p.trim_end_matches(" events").parse::<u64>().ok())
        .ok_or("unreadable event count")?;
    let wall_s = number(wall).ok_or("unreadable wall time")?;
    let cpu_s = text.lines().find_map(|l| l.strip_prefix("cpu time: ")).and_then(number);
    Ok(SimRun { events, wall_s, simulated_s, cpu_s })
}

#[cfg(test)]
mod tests {
    use super::{SimRun, parse};

    #[test]
    fn reads_the_sim_bench_output() {
        let text =
            "region: 16 pages\nsimulated: snapshot 1.50 s virtual, 12345 events, 16 pages saved\nwall time: 0.25 s\n";
        let old = SimRun { events: 12345, wall_s: 0.25, simulated_s: 1.5, cpu_s: None };
        assert_eq!(parse(text), Ok(old));
        let with_cpu = format!("{text}cpu time: 0.125 s (the simulating thread)\n");
        assert_eq!(parse(&with_cpu), Ok(SimRun { cpu_s: Some(0.125), ..old }));
        assert!(parse("nothing").is_err());
    }
}
