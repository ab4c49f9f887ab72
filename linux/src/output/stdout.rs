//! Standard output as a snapshot sink (pipes: `wpsnap run --out - | tool`).

use super::{Output, OutputError, OutputSummary, name_io_error};
use std::io::{BufWriter, Stdout, Write};

/// Buffer in front of standard output, so page-sized writes do not each cost a syscall.
const STDOUT_BUFFER_BYTES: usize = 256 * 1024;

/// Writes to the process's standard output. Commit flushes; nothing can be taken back on abort.
pub struct StdoutOutput {
    out: BufWriter<Stdout>,
    bytes: u64,
}

impl StdoutOutput {
    /// Standard output behind a buffer.
    pub fn new() -> StdoutOutput {
        StdoutOutput { out: BufWriter::with_capacity(STDOUT_BUFFER_BYTES, std::io::stdout()), bytes: 0 }
    }
}

impl Default for StdoutOutput {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for StdoutOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf).map_err(|e| name_io_error("stdout", e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let n = self.out.write_vectored(bufs).map_err(|e| name_io_error("stdout", e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().map_err(|e| name_io_error("stdout", e))
    }
}

impl Output for StdoutOutput {
    fn commit(mut self: Box<Self>) -> Result<OutputSummary, OutputError> {
        self.out.flush().map_err(|source| OutputError::Io { destination: "stdout".into(), source })?;
        Ok(OutputSummary {
            kind: "stdout".into(),
            destination: "stdout".into(),
            bytes: self.bytes,
            // A reader at the other end of a pipe may still fail; we cannot know.
            confirmed: false,
            slow_device_emulation: None,
        })
    }

    fn fork_fd(&mut self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        if self.bytes > 0 || !self.out.buffer().is_empty() {
            return None;
        }
        Some(self.out.get_ref().as_fd())
    }

    fn add_forked_bytes(&mut self, bytes: u64, _emulation: Option<super::SlowDeviceReport>) {
        self.bytes += bytes;
    }

    fn abort(mut self: Box<Self>) {
        // What was written is gone already; flush so the reader sees a truncated stream (which
        // it detects by the missing trailer) rather than waiting.
        let _ = self.out.flush();
    }
}
