//! A test helper output that fails on purpose (issue 5's failure tests).

use super::{Output, OutputError, OutputSummary};
use std::io::{ErrorKind, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What happened to a [`FailingOutput`], readable after it was consumed by commit or abort.
#[derive(Clone, Debug, Default)]
pub struct FailingProbe {
    state: Arc<ProbeState>,
}

#[derive(Debug, Default)]
struct ProbeState {
    bytes: AtomicU64,
    failed: AtomicBool,
    committed: AtomicBool,
    aborted: AtomicBool,
}

impl FailingProbe {
    /// Bytes accepted before the failure.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }
    /// The injected write error was returned at least once.
    pub fn failed(&self) -> bool {
        self.state.failed.load(Ordering::SeqCst)
    }
    /// `commit` succeeded.
    pub fn committed(&self) -> bool {
        self.state.committed.load(Ordering::SeqCst)
    }
    /// `abort` was called.
    pub fn aborted(&self) -> bool {
        self.state.aborted.load(Ordering::SeqCst)
    }
}

/// Accepts `fail_after_bytes` bytes (discarding them), then fails every write with an
/// `io::Error` of the chosen kind and message. A write that crosses the limit is accepted up
/// to it (a short write), like a device that fills up. Commit fails once a write has failed.
pub struct FailingOutput {
    fail_after_bytes: u64,
    kind: ErrorKind,
    message: String,
    probe: FailingProbe,
}

impl FailingOutput {
    /// Accepts `fail_after_bytes`, then fails with `kind` and `message`.
    pub fn new(fail_after_bytes: u64, kind: ErrorKind, message: &str) -> FailingOutput {
        FailingOutput { fail_after_bytes, kind, message: message.to_string(), probe: FailingProbe::default() }
    }

    /// A handle to observe the output after it has been boxed and consumed.
    pub fn probe(&self) -> FailingProbe {
        self.probe.clone()
    }
}

impl Write for FailingOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.probe.bytes();
        let room = self.fail_after_bytes.saturating_sub(written);
        if room == 0 && !buf.is_empty() {
            self.probe.state.failed.store(true, Ordering::SeqCst);
            return Err(std::io::Error::new(self.kind, self.message.clone()));
        }
        let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.probe.state.bytes.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output for FailingOutput {
    fn commit(self: Box<Self>) -> Result<OutputSummary, OutputError> {
        if self.probe.failed() {
            return Err(OutputError::Injected { what: format!("commit after failed write: {}", self.message) });
        }
        self.probe.state.committed.store(true, Ordering::SeqCst);
        Ok(OutputSummary {
            kind: "failing-test-output".into(),
            destination: "nowhere (test helper)".into(),
            bytes: self.probe.bytes(),
            confirmed: false,
            slow_device_emulation: None,
        })
    }

    fn abort(self: Box<Self>) {
        self.probe.state.aborted.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_after_the_limit_with_the_chosen_error() {
        let out = FailingOutput::new(10, ErrorKind::StorageFull, "disk full");
        let probe = out.probe();
        let mut out: Box<dyn Output> = Box::new(out);
        assert_eq!(out.write(&[0; 6]).ok(), Some(6));
        assert_eq!(out.write(&[0; 6]).ok(), Some(4), "short write up to the limit");
        let err = out.write(&[0; 1]).err();
        assert_eq!(err.as_ref().map(std::io::Error::kind), Some(ErrorKind::StorageFull));
        assert!(probe.failed());
        assert_eq!(probe.bytes(), 10);
        assert!(matches!(out.commit(), Err(OutputError::Injected { .. })));
        assert!(!probe.committed());
    }

    #[test]
    fn abort_is_observable() {
        let out = FailingOutput::new(0, ErrorKind::BrokenPipe, "gone");
        let probe = out.probe();
        Box::new(out).abort();
        assert!(probe.aborted());
    }
}
