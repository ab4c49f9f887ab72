//! Measures how long a woken thread takes to run again on this machine, beside busy threads:
//! the input of the simulator's writer scheduling delay (`writers.wake_delay_ns`).
//!
//!     cargo run --release -p wpsnap-sim --example wake_latency -- HOGS SAMPLES [SLEEP_US]
//!
//! A "writer" thread spins for 20 us (as a writer storing as fast as it can) or, with
//! SLEEP_US > 0, sleeps that long (as a writer at a set rate), then hands a request to a
//! "handler" thread over a channel and blocks for the answer, as a writer blocks on a
//! write-protect fault. The handler takes a timestamp and answers; the writer takes its own
//! once it runs again. The difference is the wake-up latency the writer sees: the kernel's
//! wake-up plus however long the writer waits for a CPU. HOGS threads spin meanwhile (the
//! load). Prints one JSON line: the hogs, the samples, /proc/loadavg before and after,
//! percentiles, counts >= 1/4/16 ms and the quantile table the simulator reads
//! (`[probability, ns]` pairs, denser in the tail: 1 % steps to 99 %, then 0.1 % and 0.01 %).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most samples one run takes (the quantile table needs no more).
const SAMPLES_MAX: usize = 1_000_000;
/// Most busy threads (more would only measure the run queue's length).
const HOGS_MAX: usize = 64;
/// How long the writer spins between requests: about one fault's service in the real runs.
const SPIN_BETWEEN: Duration = Duration::from_micros(20);
/// Longest sleep between requests (a writer at 1 write/s would not need this tool).
const SLEEP_US_MAX: usize = 1_000_000;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn arg(index: usize, default: usize) -> anyhow::Result<usize> {
    match std::env::args().nth(index) {
        Some(text) => Ok(text.parse()?),
        None => Ok(default),
    }
}

/// The writer's side: `samples` request/answer round trips; returns the wake latencies (ns).
fn measure(samples: usize, sleep_between: Duration) -> anyhow::Result<Vec<u64>> {
    let (to_handler, requests) = mpsc::sync_channel::<()>(1);
    let (to_writer, answers) = mpsc::sync_channel::<Instant>(1);
    let handler = std::thread::spawn(move || {
        while requests.recv().is_ok() {
            if to_writer.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let mut wake_ns = Vec::with_capacity(samples);
    for _ in 0..samples {
        if sleep_between.is_zero() {
            spin_for(SPIN_BETWEEN);
        } else {
            std::thread::sleep(sleep_between);
        }
        to_handler.send(())?;
        let sent = answers.recv()?;
        wake_ns.push(sent.elapsed().as_nanos() as u64);
    }
    drop(to_handler);
    handler.join().map_err(|_| anyhow::anyhow!("handler thread panicked"))?;
    Ok(wake_ns)
}

fn main() -> anyhow::Result<()> {
    let hogs = arg(1, 0)?.min(HOGS_MAX);
    let samples = arg(2, 20_000)?.clamp(100, SAMPLES_MAX);
    let sleep_us = arg(3, 0)?.min(SLEEP_US_MAX);
    let load_before = loadavg();
    let stop = Arc::new(AtomicBool::new(false));
    let hog_threads: Vec<_> = (0..hogs)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let measured = measure(samples, Duration::from_micros(sleep_us as u64));
    stop.store(true, Ordering::Relaxed);
    for hog in hog_threads {
        hog.join().map_err(|_| anyhow::anyhow!("hog thread panicked"))?;
    }
    let mut wake_ns = measured?;
    wake_ns.sort_unstable();
    let at = |q: f64| wake_ns[((wake_ns.len() - 1) as f64 * q).round() as usize];
    let probabilities = (0..100)
        .map(|i| i as f64 / 100.0)
        .chain((1..10).map(|i| 0.99 + i as f64 / 1000.0))
        .chain((1..10).map(|i| 0.999 + i as f64 / 10_000.0))
        .chain([1.0]);
    let table: Vec<String> = probabilities.map(|p| format!("[{p:.4}, {}]", at(p))).collect();
    let ge = |ms: u64| wake_ns.iter().filter(|&&ns| ns >= ms * 1_000_000).count();
    println!(
        "{{\"hogs\": {hogs}, \"samples\": {samples}, \"sleep_us\": {sleep_us}, \"loadavg_before\": \"{load_before}\", \"loadavg_after\": \"{}\", \
         \"p50_ns\": {}, \"p90_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"max_ns\": {}, \"ge1ms\": {}, \"ge4ms\": {}, \
         \"ge16ms\": {}, \"table\": [{}]}}",
        loadavg(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0),
        ge(1),
        ge(4),
        ge(16),
        table.join(", ")
    );
    Ok(())
}
