//! Runs `wpsnap bench` through the library until the CLI has the subcommand:
//! `cargo run --release -p wpsnap-linux --example bench -- [--quick] [--json FILE] [--markdown FILE]`.
//! Progress goes to standard error, the markdown tables to standard output.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use wpsnap_linux::bench::{BenchOptions, run_bench};

#[derive(Parser)]
#[command(name = "bench", about = "wpsnap bench: wpsnap against its floors and fork(), as ratios")]
struct Cli {
    #[command(flatten)]
    options: BenchOptions,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the markdown tables here too.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = run_bench(&cli.options, &|line| eprintln!("bench: {line}"))?;
    let markdown = report.to_markdown();
    print!("{markdown}");
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.markdown {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
