//! Any [`std::io::Write`] as a snapshot output (a `Vec<u8>`, a pipe the caller opened, a
//! socket the caller connected), handed back to the caller after commit.

use super::{Output, OutputError, OutputSummary};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where a [`WriterOutput`] returns its writer on commit.
pub type WriterSlot<W> = Arc<Mutex<Option<W>>>;

/// Writes to `W`. Commit flushes and puts `W` into the slot; abort drops it (the bytes
/// written so far lack the trailer, which every reader detects as incomplete).
pub struct WriterOutput<W: Write + Send> {
    writer: Option<W>,
    bytes: u64,
    slot: WriterSlot<W>,
}

impl<W: Write + Send> WriterOutput<W> {
    /// The output, and the slot the writer is returned in after a successful commit.
    pub fn new(writer: W) -> (WriterOutput<W>, WriterSlot<W>) {
        let slot = Arc::new(Mutex::new(None));
        (WriterOutput { writer: Some(writer), bytes: 0, slot: slot.clone() }, slot)
    }
}

impl<W: Write + Send> Write for WriterOutput<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let writer = self.writer.as_mut().ok_or_else(|| std::io::Error::other("the writer was already returned"))?;
        let n = writer.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl<W: Write + Send> Output for WriterOutput<W> {
    fn commit(mut self: Box<Self>) -> Result<OutputSummary, OutputError> {
        let destination = "writer".to_string();
        let mut writer = self.writer.take().ok_or_else(|| OutputError::Io {
            destination: destination.clone(),
            source: std::io::Error::other("the writer was already returned"),
        })?;
        writer.flush().map_err(|source| OutputError::Io { destination: destination.clone(), source })?;
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        // Delivered to the caller's writer; whether it is durable is the caller's to know.
        Ok(OutputSummary {
            kind: "writer".into(),
            destination,
            bytes: self.bytes,
            confirmed: false,
            slow_device_emulation: None,
        })
    }

    fn abort(self: Box<Self>) {}
}
