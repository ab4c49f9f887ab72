//! The `wpsnap` command line: argument definitions (clap) and the jobs behind them.
//!
//! The binary (`src/main.rs`) only parses and dispatches; everything a subcommand does lives
//! here so it can be tested as a library.

mod args;
mod bench;
mod files;
mod job;
mod paths;
mod signals;
mod summary;
mod usage;
mod vm;

pub use args::{Backend, BenchArgs, Cli, Command, DemoArgs, RunArgs, VmArgs, parse_size};
pub use bench::bench;
pub use files::{inspect, receive, restore, verify};
pub use job::{JobReport, demo, run};
pub use signals::{OnSignal, cancel_flag, install_signal_handling, interrupted, interrupted_exit_code};
pub use usage::{Parsed, UsageError, check_run, parse};
pub use vm::{VmReport, vm, vm_impact};

/// An error and its causes on one line, each cause once: a cause whose text the line
/// already holds (thiserror messages often embed their source) is not repeated.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}
