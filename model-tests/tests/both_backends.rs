//! Property 6 (docs/testing.md): the same small workload on both backends. The simulator and
//! the real backend must both keep the snapshot invariant and agree on which policy gives the
//! lower fault waits.
//!
//! The workload: a 2 MiB region, two writers at 50 writes/s each, the qemu service model, and a
//! sink that takes 2 ms for every page (real: a sink that sleeps 2 ms per page; simulated:
//! direct writes with a 2 ms request latency and no page cache). With no limiter the scan keeps
//! the one thread busy, so a fault usually waits for the scan page in flight plus its own
//! write; with a 200 pages/s bandwidth cap the thread is idle 60% of the time (asleep on the
//! rate limit in 5 ms slices, reading no fault) and most faults wait for a short sleep and
//! their own write only. Both backends should rank `bandwidth` below `none` at the 90th
//! percentile fault wait, by a clear margin.
//!
//! Why the 90th percentile and not the median: under `none` the thread is always writing a
//! 16-page scan capture (32 ms), so the slowest tenth of the faults (those that land early in
//! a capture) wait for most of one whatever the load; but a real writer held back by a loaded
//! machine catches up in bursts, and a burst's faults that land between two captures are
//! served at once, which under two CPU hogs once pulled the real `none` median (4.3 ms) below
//! `bandwidth`'s (4.9 ms) in 30 runs. The medians are printed.
//!
//! The write rate is low on purpose: the real writers keep a Poisson *schedule* and catch up
//! after a block (a write due while blocked is issued at once), whereas the simulated writers
//! draw their think time after each write. At 500 writes/s the real writer's catch-up write
//! faults right after each unprotect, before the one thread starts a scan page, and the two
//! backends then disagree (measured: real 2.15 ms for both policies, simulator 3.3 vs 2.0 ms).
//! At 50 writes/s a 2-4 ms block rarely puts a writer behind its schedule.
//!
//! Why the real qemu thread runs `SCHED_FIFO` here (`QemuThreadPriority::Raised`; QEMU's
//! migration thread, and the session's default, run at normal priority): the simulator has
//! no CPU contention, and on a loaded machine the thread's wake-ups after each 2 ms sink
//! write and each 5 ms rate-limit slice are what decides the real waits. At a load of 12 (two
//! CPU hogs beside five builds) a `bandwidth` fault's 90th percentile reached 28-35 ms, as
//! high as `none`'s 30-34 ms, in 2 of 10 runs, with a normal-priority thread. What stays is
//! the writers' own wait for a CPU after their page is unprotected, once per fault under
//! either policy.
//!
//! The real waits are exact: the writers classify each write from its page's pagemap entry
//! (`RunOptions::classify_faults`), so a write a CPU hog preempted is not taken for a fault.

mod real;

use real::{Case, RunOptions, quantile_of_slowest, snapshot_and_check_with, uffd_available};
use std::time::Duration;
use wpsnap_core::policy::BandwidthParams;
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_linux::region::Backing;
use wpsnap_linux::snapshot::{QemuThreadPriority, ThreadPriority, default_scan_batch_pages};
use wpsnap_sim::SimConfig;
use wpsnap_sim::config::STREAM_PAGE_HEADER_BYTES;
use wpsnap_sim::disk::{DiskParams, DiskPreset};
use wpsnap_workload::Pattern;

const PAGES: u64 = 512;
const WRITERS: u32 = 2;
const WRITES_PER_SEC: f64 = 50.0;
const PAGE_WRITE: Duration = Duration::from_millis(2);
/// A ranking counts only when one policy's 90th percentile is this many times the other's.
const CLEAR_MARGIN: f64 = 1.2;

fn policies() -> [(&'static str, PolicyConfig); 2] {
    // 5 ms slices (one page each): in the qemu model the thread sleeps out each used-up slice
    // reading no fault (QEMU's rate limit), so the sleeps must stay short next to a writer's
    // think time, or the real writers' catch-up after a long block decides the ranking; and
    // short next to what `none` waits, or a loaded machine's scheduling delays close the gap
    // (with 10 ms slices, real medians came within 1.2x of each other under two CPU hogs).
    let bandwidth = BandwidthParams { bytes_per_sec: 200 * 4096, slice_ns: 5_000_000 };
    [("none", PolicyConfig::None), ("bandwidth", PolicyConfig::Bandwidth(bandwidth))]
}

/// The simulated fault waits' (median, 90th percentile), in ns.
fn simulated_waits_ns(policy: &PolicyConfig) -> (u64, u64) {
    let mut config = SimConfig::new(PAGES * 4096, ServiceModel::Qemu, policy.clone(), DiskPreset::Tmpfs);
    config.writers.count = WRITERS;
    config.writers.pattern = Pattern::Uniform;
    config.writers.writes_per_sec = WRITES_PER_SEC;
    config.zero_page_percent = 0;
    config.baseline = false;
    // The real session's scan batch (the qemu model's default), so both run the same engine config.
    config.engine.scan_batch_pages = default_scan_batch_pages(ServiceModel::Qemu, 4096);
    // Direct writes at 2 ms per page record, whatever the batch: the sink of the real run.
    let record_bytes = 4096 + STREAM_PAGE_HEADER_BYTES;
    config.disk = Some(DiskParams {
        bandwidth_bytes_per_sec: record_bytes * 1_000_000_000 / PAGE_WRITE.as_nanos() as u64,
        request_latency_ns: 0,
        ..DiskPreset::Tmpfs.params()
    });
    let report = wpsnap_sim::run(3, &config).expect("valid config");
    assert!(report.is_clean(), "simulator invariant: {:?}", report.invariants.first_violations);
    assert_eq!(report.invariants.image_equals_snapshot_instant, Some(true));
    let wait = &report.engine.as_ref().expect("snapshot ran").fault_wait;
    assert!(wait.count >= 20, "simulator: too few faults ({})", wait.count);
    (wait.p50_ns, wait.p90_ns)
}

/// The real faulting writes' (median, 90th percentile), in ns.
fn real_waits_ns(policy: &PolicyConfig) -> (u64, u64) {
    let case = Case {
        backing: Backing::Anonymous,
        pages: PAGES,
        untouched_every: 0,
        writers: WRITERS,
        writes_per_sec: WRITES_PER_SEC,
        pattern: Pattern::Uniform,
        model: ServiceModel::Qemu,
        policy: policy.clone(),
        kernel_writes: Vec::new(),
    };
    // snapshot_and_check asserts the invariant: the image is the instant, no write lost.
    let options = RunOptions {
        stall_per_page: Some(PAGE_WRITE),
        thread_priority: Some(ThreadPriority { qemu: QemuThreadPriority::Raised, ..ThreadPriority::default() }),
        classify_faults: true,
        ..RunOptions::default()
    };
    let run = snapshot_and_check_with(&case, options);
    // The writes to pages write-protected just before the store (the writers classify them
    // from pagemap): the fault waits, without the writes a CPU hog preempted. The estimate
    // from the slowest writes, as many as the engine's faults, is printed beside them.
    let exact = run.writers.protected_write_latency.as_ref().expect("classified");
    let faults = exact.count();
    assert!(faults >= 20, "real backend: too few faults ({faults})");
    let estimate_faults = run.report.engine.stats.faults.min(run.writers.fault_wait.count());
    let of_slowest = |q: f64| quantile_of_slowest(&run.writers.fault_wait, estimate_faults, q).as_ns() / 1000;
    eprintln!(
        "real {}: {faults} writes to protected pages, p50 {} us, p90 {} us; slowest-{estimate_faults} estimate p50 {} us, p90 {} us",
        policy.name(),
        exact.quantile(0.5).as_ns() / 1000,
        exact.quantile(0.9).as_ns() / 1000,
        of_slowest(0.5),
        of_slowest(0.9),
    );
    (exact.quantile(0.5).as_ns(), exact.quantile(0.9).as_ns())
}

/// `Some(true)` if the first is clearly lower, `Some(false)` if clearly higher, `None` if
/// neither is `CLEAR_MARGIN` times the other.
fn clearly_lower(a: u64, b: u64) -> Option<bool> {
    let (a, b) = (a.max(1) as f64, b.max(1) as f64);
    if a * CLEAR_MARGIN <= b {
        Some(true)
    } else if b * CLEAR_MARGIN <= a {
        Some(false)
    } else {
        None
    }
}

#[test]
fn simulator_and_real_backend_rank_the_policies_alike() {
    if !uffd_available("simulator_and_real_backend_rank_the_policies_alike") {
        return;
    }
    let [(a_name, a), (b_name, b)] = policies();
    let (sim_a, sim_b) = (simulated_waits_ns(&a), simulated_waits_ns(&b));
    let (real_a, real_b) = (real_waits_ns(&a), real_waits_ns(&b));
    let us = |(p50, p90): (u64, u64)| format!("p50 {} us, p90 {} us", p50 / 1000, p90 / 1000);
    eprintln!(
        "fault waits: simulator {a_name} {}, {b_name} {}; real {a_name} {}, {b_name} {}",
        us(sim_a),
        us(sim_b),
        us(real_a),
        us(real_b)
    );
    let (sim, real) = ((sim_a.1, sim_b.1), (real_a.1, real_b.1));
    let sim_rank = clearly_lower(sim.1, sim.0);
    let real_rank = clearly_lower(real.1, real.0);
    assert!(sim_rank.is_some(), "the simulator does not separate the policies: {sim:?}");
    assert!(real_rank.is_some(), "the real backend does not separate the policies: {real:?}");
    assert_eq!(sim_rank, real_rank, "the backends disagree on which policy waits less: sim {sim:?}, real {real:?}");
}
