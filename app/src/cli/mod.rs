//! The `wpsnap` command line: argument definitions (clap) and the jobs behind them.
//!
//! The binary (`src/main.rs`) only parses and dispatches; everything a subcommand does lives
//! here so it can be tested as a library.

mod args;
mod bench;
mod files;
mod job;
mod signals;
mod summary;

pub use args::{Backend, BenchArgs, Cli, Command, DemoArgs, RunArgs, parse_size};
pub use bench::bench;
pub use files::{inspect, receive, restore, verify};
pub use job::{JobReport, demo, run};
pub use signals::{install_interrupt_handlers, interrupted};
