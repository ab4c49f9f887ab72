//! Parsing with the knowledge of which options were given on the command line, and the
//! checks between options that clap cannot express: each is a usage error (exit status 2).

use super::args::{Backend, Cli, Command, RunArgs};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use wpsnap_linux::output::OutputSpec;
use wpsnap_linux::region::Backing;

/// A command line that parses but does not make sense; `main` exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The parsed command line and the ids of the `run` options given explicitly.
pub struct Parsed {
    pub cli: Cli,
    pub given: Vec<String>,
}

/// Parses the process's arguments (clap errors exit with status 2 as usual).
pub fn parse() -> Parsed {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = match matches.subcommand() {
        Some(("run", m)) => m
            .ids()
            .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_string())
            .collect(),
        _ => Vec::new(),
    };
    Parsed { cli, given }
}

/// Options that mean nothing with `--backend fork`.
const UFFD_ONLY: [&str; 9] = [
    "model",
    "policy",
    "policy_json",
    "scan_bandwidth",
    "target_p99_us",
    "staging",
    "scan_batch_pages",
    "force_touch",
    "direct_io",
];

/// Refuses options that do not apply to the others given, and values clap cannot judge alone.
pub fn check_run(args: &RunArgs, given: &[String]) -> Result<(), UsageError> {
    let was_given = |id: &str| given.iter().any(|g| g == id);
    let flag = |id: &str| format!("--{}", id.replace('_', "-"));
    let page_size = Backing::from(args.backing).page_size();
    if !args.size.is_multiple_of(page_size) {
        return Err(UsageError(format!(
            "--size {} is not a multiple of the {} page size ({page_size} B)",
            args.size,
            Backing::from(args.backing)
        )));
    }
    if args.backend == Backend::Fork {
        if let Some(id) = UFFD_ONLY.iter().find(|id| was_given(id)) {
            return Err(UsageError(format!("{} does not apply to --backend fork", flag(id))));
        }
    } else if was_given("policy_json") {
        if let Some(id) = ["policy", "scan_bandwidth", "target_p99_us"].iter().find(|id| was_given(id)) {
            return Err(UsageError(format!(
                "{} does not apply with --policy-json (it sets the whole policy)",
                flag(id)
            )));
        }
    } else {
        // A knob of another policy (`--policy none --scan-bandwidth 1M`) is a usage error.
        args.policy_with_old_knobs().map_err(UsageError)?;
    }
    if args.check && !matches!(args.out.parse::<OutputSpec>(), Ok(OutputSpec::File { .. })) {
        return Err(UsageError(format!(
            "--check needs a file output (--out PATH) to read back; --out is {}",
            args.out
        )));
    }
    Ok(())
}

impl Command {
    /// Whether the command was asked for JSON on standard output (errors are then JSON too).
    pub fn wants_json(&self) -> bool {
        match self {
            Command::Demo(d) => d.json,
            Command::Run(r) => r.json,
            Command::Verify { json, .. }
            | Command::Inspect { json, .. }
            | Command::Restore { json, .. }
            | Command::Receive { json, .. } => *json,
            Command::Vm(v) => v.json,
            Command::Bench(_) | Command::VmImpact { .. } => false,
        }
    }
}
