//! The `wpsnap` command. Parsing and dispatch only; the work is in `wpsnap::cli`.

use clap::Parser;
use wpsnap::cli::{self, Cli, Command};

fn main() {
    let args = Cli::parse();
    cli::install_interrupt_handlers();
    let result = match args.command {
        Command::Demo(demo) => cli::demo(&demo).map(drop),
        Command::Run(run) => cli::run(&run).map(drop),
        Command::Verify { file, against, json } => cli::verify(&file, against.as_deref(), json),
        Command::Inspect { file, json } => cli::inspect(&file, json),
        Command::Restore { file, raw } => cli::restore(&file, &raw),
        Command::Bench(bench) => cli::bench(&bench),
        Command::Receive { listen, out } => cli::receive(&listen, &out),
    };
    if let Err(error) = result {
        // The cause chain on one line; no backtrace for users.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
