//! `wpsnap bench`: runs [`crate::bench::run_bench`] and writes its tables and JSON.

use super::args::BenchArgs;
use anyhow::Context;

/// Runs the benchmark: progress on standard error, markdown tables on standard output.
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    // The report paths are checked before minutes of measuring, not after.
    let json = args.json.as_deref().map(|p| super::paths::checked_target("--json", p)).transpose()?;
    let markdown = args.markdown.as_deref().map(|p| super::paths::checked_target("--markdown", p)).transpose()?;
    if let (Some(j), Some(m)) = (&json, &markdown) {
        super::paths::ensure_distinct(&[("--json", j), ("--markdown", m)])?;
    }
    let report = crate::bench::run_bench(&args.options, &|line| eprintln!("bench: {line}"))?;
    let markdown = report.to_markdown();
    print!("{markdown}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("serialising the bench report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
