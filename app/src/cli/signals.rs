//! SIGINT and SIGTERM, through `signal-hook`: a watcher thread (no work in a signal handler)
//! sets one cancel flag. Commands that can stop cleanly ([`OnSignal::Cancel`]: `run`, `demo`,
//! `vm`, `receive`) pass the flag to the library, which polls it, releases writers, aborts the
//! output and returns; `main` then exits 130 (SIGINT) or 143 (SIGTERM). Commands that only
//! read, or whose output is published by a rename at the very end ([`OnSignal::Exit`]:
//! `verify`, `inspect`, `restore`, `bench`), exit at once with that code. A second signal
//! always exits at once.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set by the first SIGINT or SIGTERM.
static CANCEL: AtomicBool = AtomicBool::new(false);
/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Said on standard error when a signal ends the process at once (e.g. which `.partial` may
/// be left).
static EXIT_NOTE: OnceLock<String> = OnceLock::new();

/// What the first signal does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSignal {
    /// Set the cancel flag; the command stops itself and returns an error.
    Cancel,
    /// Exit at once with 128 + the signal number.
    Exit,
}

/// Starts the watcher thread for SIGINT and SIGTERM.
pub fn install_signal_handling(on_signal: OnSignal) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let first = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
            CANCEL.store(true, Ordering::SeqCst);
            if !first || on_signal == OnSignal::Exit {
                let note = EXIT_NOTE.get().map(|n| format!("; {n}")).unwrap_or_default();
                eprintln!("error: interrupted by {}{note}", signal_name(signal));
                std::process::exit(128 + signal);
            }
        }
    })?;
    Ok(())
}

/// Sets what an immediate exit says (first call wins).
pub fn set_exit_note(note: String) {
    let _ = EXIT_NOTE.set(note);
}

/// The flag the library's long-running operations poll.
pub fn cancel_flag() -> &'static AtomicBool {
    &CANCEL
}

/// The signal that interrupted us, if any ("SIGINT" / "SIGTERM").
pub fn interrupted() -> Option<&'static str> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal_name(signal)),
    }
}

/// The exit status for an interruption: 128 + the signal number (130, 143).
pub fn interrupted_exit_code() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(128 + signal),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
