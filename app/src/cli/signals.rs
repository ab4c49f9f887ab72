//! SIGINT and SIGTERM during a snapshot: the handler only sets a flag; the job loop sees it,
//! cancels the snapshot (unprotecting everything, waking writers) and exits non-zero.

use std::sync::atomic::{AtomicI32, Ordering};

static INTERRUPTED_BY: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED_BY.store(signal, Ordering::SeqCst);
}

/// Installs the flag-setting handler for SIGINT and SIGTERM.
pub fn install_interrupt_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only performs an atomic store,
        // which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// The signal that interrupted us, if any ("SIGINT" / "SIGTERM").
pub fn interrupted() -> Option<&'static str> {
    match INTERRUPTED_BY.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("a signal"),
    }
}
