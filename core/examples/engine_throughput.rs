//! How many captures per second the engine itself sustains (scan only, instant captures).
//! `cargo run --release -p wpsnap-core --example engine_throughput -- [pages] [batch]`

// A driver, not the engine: it may read the wall clock to time the engine.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::time::Instant;
use wpsnap_core::{Engine, EngineConfig, Lane, Nanos, PolicyConfig, ServiceModel};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let pages = args.next().and_then(Result::ok).unwrap_or(16 << 20);
    let batch = args.next().and_then(Result::ok).unwrap_or(1);
    let mut config = EngineConfig::new(4096, pages, ServiceModel::Qemu, PolicyConfig::None);
    config.scan_batch_pages = batch;
    let started = Instant::now();
    let mut engine = match Engine::new(config, Nanos::ZERO) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut now = Nanos::ZERO;
    let mut captures = 0u64;
    while let Some(c) = engine.poll_capture(now, Lane::Single) {
        now = now + Nanos(100);
        captures += 1;
        if engine.handle_captured(now, c).is_err() {
            std::process::exit(1);
        }
        while engine.poll_action().is_some() {}
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{pages} pages, batch {batch}: {captures} captures in {secs:.3} s = {:.1} M captures/s, complete={}",
        captures as f64 / secs / 1e6,
        engine.is_complete()
    );
}
