//! The `wpsnap` command. Parsing and dispatch only; the work is in `wpsnap::cli`.
//!
//! Exit status: 0 done; 1 failed; 2 usage error; 130 / 143 stopped by SIGINT / SIGTERM.

use wpsnap::cli::{self, Command, OnSignal, UsageError};

/// Exit status of a usage error (as clap's own).
const EXIT_USAGE: i32 = 2;
/// Exit status of any other failure.
const EXIT_FAILED: i32 = 1;

fn main() {
    let cli::Parsed { cli: args, given } = cli::parse();
    let json = args.command.wants_json();
    let on_signal = match &args.command {
        Command::Run(_) | Command::Demo(_) | Command::Receive { .. } | Command::Vm(_) => OnSignal::Cancel,
        Command::Verify { .. }
        | Command::Inspect { .. }
        | Command::Restore { .. }
        | Command::Bench(_)
        | Command::VmImpact { .. } => OnSignal::Exit,
    };
    let result = cli::install_signal_handling(on_signal)
        .map_err(|e| anyhow::anyhow!("installing the SIGINT/SIGTERM handling: {e}"))
        .and_then(|()| dispatch(args.command, &given));
    let Err(error) = result else {
        return;
    };
    let code = if error.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        cli::interrupted_exit_code().unwrap_or(EXIT_FAILED)
    };
    let text = cli::error_text(&error);
    if json {
        let value = serde_json::json!({ "error": text, "exit_code": code });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string()));
    }
    // No backtrace for users; the cause chain on one line.
    eprintln!("error: {text}");
    std::process::exit(code);
}

fn dispatch(command: Command, given: &[String]) -> anyhow::Result<()> {
    match command {
        Command::Demo(demo) => cli::demo(&demo).map(drop),
        Command::Run(run) => {
            cli::check_run(&run, given)?;
            cli::run(&run).map(drop)
        }
        Command::Verify { file, against, json } => cli::verify(&file, against.as_deref(), json),
        Command::Inspect { file, json } => cli::inspect(&file, json),
        Command::Restore { file, raw, json } => cli::restore(&file, &raw, json),
        Command::Bench(bench) => cli::bench(&bench),
        Command::Receive { listen, out, idle_timeout_ms, json } => cli::receive(&listen, &out, idle_timeout_ms, json),
        Command::Vm(vm) => cli::vm(&vm).map(drop),
        Command::VmImpact { file, warmup_ms } => cli::vm_impact(&file, warmup_ms),
    }
}
