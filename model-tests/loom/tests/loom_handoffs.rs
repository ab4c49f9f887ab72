//! loom models of the handoffs the real backend's threads share (docs/testing.md, issue 6).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release
//!       -p wpsnap-loom-tests --target-dir target/loom`. Without `--cfg loom` this file is empty.
//!
//! The handoffs module is wpsnap-linux's own `src/sync/`, compiled in by path so this model
//! checks the code that runs, on loom's `sync` types (its `shim` switches under `cfg(loom)`).
//! Page claiming is the engine behind a mutex, as `wpsnap-linux`'s `snapshot/shared.rs` holds it.
#![cfg(loom)]

#[allow(dead_code, unused_imports)]
#[path = "../../../linux/src/sync/mod.rs"]
mod sync;

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::time::Duration;
use sync::{ChangeSignal, PushError, StagedPages, StagingQueue};
use wpsnap_core::{Action, Engine, EngineConfig, Lane, Nanos, PageIndex, PolicyConfig, ServiceModel};

/// A staged run as the queue sees it: where it starts and how many pages it holds.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    first: u64,
    count: u64,
}

impl StagedPages for Run {
    fn pages(&self) -> u64 {
        self.count
    }
}

fn run(first: u64) -> Run {
    Run { first, count: 1 }
}

/// Copier → sink: every run pushed before the close is popped, in order; a push after the
/// close is refused; the sink is never left waiting (loom reports a deadlock otherwise).
#[test]
fn staging_delivers_every_run_and_close_wakes_the_sink() {
    loom::model(|| {
        let queue = Arc::new(StagingQueue::new(2));
        let copier = {
            let queue = queue.clone();
            thread::spawn(move || {
                let mut pushed = Vec::new();
                for page in 0..3 {
                    match queue.push(run(page)) {
                        Ok(()) => pushed.push(page),
                        // Back-pressure: the engine would not have offered this capture.
                        Err(PushError::Full { .. }) => {}
                        Err(PushError::Closed) => break,
                    }
                }
                queue.close();
                pushed
            })
        };
        let mut popped = Vec::new();
        while let Some(r) = queue.pop(Duration::from_secs(1)) {
            popped.push(r.first);
        }
        let pushed = copier.join().expect("copier");
        assert_eq!(popped, pushed, "the sink got exactly what the copier queued");
        assert_eq!(queue.pages_used(), 0);
    });
}

/// Cancel wakes a sink waiting on an empty queue, and later pushes fail instead of queueing.
#[test]
fn cancel_wakes_a_waiting_sink() {
    loom::model(|| {
        let queue = Arc::new(StagingQueue::<Run>::new(4));
        let sink = {
            let queue = queue.clone();
            thread::spawn(move || queue.pop(Duration::from_secs(1)).map(|r| r.first))
        };
        queue.close();
        assert_eq!(queue.push(run(7)), Err(PushError::Closed));
        assert_eq!(sink.join().expect("sink"), None);
    });
}

/// The scanner's sleep: a change made between reading the generation and waiting is never
/// lost.
#[test]
fn change_signal_loses_no_wake_up() {
    loom::model(|| {
        let signal = Arc::new(ChangeSignal::new());
        let work = Arc::new(AtomicBool::new(false));
        let scanner = {
            let (signal, work) = (signal.clone(), work.clone());
            thread::spawn(move || {
                let mut seen = signal.generation();
                while !work.load(Ordering::Acquire) {
                    seen = signal.wait_for_change(seen, Duration::from_secs(1));
                }
            })
        };
        work.store(true, Ordering::Release);
        signal.notify();
        scanner.join().expect("scanner wakes");
    });
}

/// Claiming: the fault thread and the scanner share the engine behind a mutex, each taking
/// captures for its lane and completing them after copying outside the lock, while a writer's
/// fault arrives. Every page is saved exactly once and the snapshot completes.
#[test]
fn fault_thread_and_scanner_save_each_page_once() {
    const PAGES: u64 = 3;
    loom::model(|| {
        let mut config = EngineConfig::new(4096, PAGES, ServiceModel::Decoupled, PolicyConfig::None);
        config.budget_pages = 8;
        let engine = Arc::new(Mutex::new(Engine::new(config, Nanos::ZERO).expect("valid")));
        let saves: Arc<Vec<AtomicU64>> = Arc::new((0..PAGES).map(|_| AtomicU64::new(0)).collect());

        let lane_worker = |lane: Lane, fault: Option<u64>| {
            let (engine, saves) = (engine.clone(), saves.clone());
            thread::spawn(move || {
                if let Some(page) = fault {
                    let mut e = engine.lock().expect("lock");
                    let _ = e.handle_fault(Nanos(1), PageIndex(page));
                    while e.poll_action().is_some() {}
                }
                // Bounded: each turn either completes a capture or finds none.
                for _ in 0..PAGES + 2 {
                    let capture = engine.lock().expect("lock").poll_capture(Nanos(2), lane);
                    let Some(capture) = capture else { break };
                    for page in capture.run().pages() {
                        saves[page.0 as usize].fetch_add(1, Ordering::Relaxed);
                    }
                    let mut e = engine.lock().expect("lock");
                    let pages = capture.run().count;
                    e.handle_captured(Nanos(3), capture).expect("in flight");
                    while e.poll_action().is_some() {}
                    e.handle_sink_drained(Nanos(3), pages).expect("staged");
                    while e.poll_action().is_some() {}
                }
            })
        };
        let fault_thread = lane_worker(Lane::Fault, Some(1));
        let scanner = lane_worker(Lane::Scan, None);
        fault_thread.join().expect("fault thread");
        scanner.join().expect("scanner");

        // Whatever the interleaving left, the scan finishes alone.
        let mut e = engine.lock().expect("lock");
        while let Some(capture) = e.poll_capture(Nanos(4), Lane::Scan) {
            for page in capture.run().pages() {
                saves[page.0 as usize].fetch_add(1, Ordering::Relaxed);
            }
            let pages = capture.run().count;
            e.handle_captured(Nanos(5), capture).expect("in flight");
            while e.poll_action().is_some() {}
            e.handle_sink_drained(Nanos(5), pages).expect("staged");
            let actions: Vec<_> = std::iter::from_fn(|| e.poll_action()).collect();
            let _ = actions.iter().filter(|a| **a == Action::Complete).count();
        }
        assert!(e.is_complete(), "{e:?}");
        for (page, count) in saves.iter().enumerate() {
            assert_eq!(count.load(Ordering::Relaxed), 1, "page {page}");
        }
    });
}

// ---- The model can fail: deliberately broken handoffs ----

/// A claim that checks "still pending?" and marks it in two steps: both threads can save the
/// same page. loom finds the interleaving.
#[test]
#[should_panic(expected = "saved twice")]
fn broken_claim_without_compare_and_swap_is_caught() {
    loom::model(|| {
        let pending = Arc::new(AtomicBool::new(true));
        let saves = Arc::new(AtomicU64::new(0));
        let claimer = |pending: Arc<AtomicBool>, saves: Arc<AtomicU64>| {
            move || {
                if pending.load(Ordering::Acquire) {
                    pending.store(false, Ordering::Release);
                    saves.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let a = thread::spawn(claimer(pending.clone(), saves.clone()));
        claimer(pending, saves.clone())();
        a.join().expect("thread");
        assert_eq!(saves.load(Ordering::Relaxed), 1, "page saved twice");
    });
}

/// A wait that checks the condition outside the lock: the notify can fall between the check
/// and the wait, and the waiter sleeps forever. loom reports the deadlock; since loom then
/// aborts the process, the broken model runs in a child process of this test binary.
#[test]
fn broken_signal_that_loses_a_wake_up_is_caught() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args(["--exact", "broken_signal_child", "--ignored", "--test-threads=1", "--nocapture"])
        .output()
        .expect("run the child model");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "loom accepted a lost wake-up");
    assert!(output.contains("deadlock"), "expected loom to report a deadlock, got:\n{output}");
}

#[test]
#[ignore = "run by broken_signal_that_loses_a_wake_up_is_caught in a child process"]
fn broken_signal_child() {
    loom::model(|| {
        let ready = Arc::new(AtomicBool::new(false));
        let lock = Arc::new((Mutex::new(()), loom::sync::Condvar::new()));
        let waiter = {
            let (ready, lock) = (ready.clone(), lock.clone());
            thread::spawn(move || {
                if !ready.load(Ordering::Acquire) {
                    let guard = lock.0.lock().expect("lock");
                    let _guard = lock.1.wait(guard).expect("wait");
                }
            })
        };
        ready.store(true, Ordering::Release);
        lock.1.notify_all();
        waiter.join().expect("waiter");
    });
}
