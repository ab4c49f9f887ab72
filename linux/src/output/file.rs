//! File output: a regular file through [`wpsnap_format::DurableFile`] (`NAME.partial` until
//! commit), or a FIFO / character device written in place (see [`super::target`]).

use super::target::{FileTarget, TargetWriter};
use super::{Output, OutputError, OutputSummary, name_io_error};
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Buffer in front of the file, so page-sized writes do not each cost a syscall.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;
/// A vectored write of at least this many bytes goes to the file without the buffer (the
/// syscall costs little next to copying that much).
const VECTORED_UNBUFFERED_BYTES_MIN: usize = 64 * 1024;

/// A snapshot file. For a regular file, bytes go to `NAME.partial`; [`Output::commit`]
/// flushes, fsyncs, renames to `NAME` and fsyncs the folder; [`Output::abort`] (or a drop)
/// leaves only `NAME.partial`. A FIFO or character device is written directly.
pub struct FileOutput {
    file: BufWriter<TargetWriter>,
    target: FileTarget,
    destination: String,
    bytes: u64,
    direct_io: bool,
    /// A second descriptor for a forked child (see [`Output::fork_fd`]).
    fork_fd: Option<OwnedFd>,
}

impl FileOutput {
    /// Checks what `final_path` names ([`FileTarget::resolve`]) and opens it: creates
    /// `final_path.partial` (O_DIRECT when `direct_io`), or opens the FIFO/device.
    pub fn create(final_path: &Path, direct_io: bool) -> Result<FileOutput, OutputError> {
        Self::create_at(&FileTarget::resolve(final_path)?, direct_io)
    }

    /// Opens an already checked target.
    pub fn create_at(target: &FileTarget, direct_io: bool) -> Result<FileOutput, OutputError> {
        let file = TargetWriter::open(target, direct_io)?;
        let destination = file.writing_to().display().to_string();
        Ok(FileOutput {
            file: BufWriter::with_capacity(FILE_BUFFER_BYTES, file),
            target: target.clone(),
            destination,
            bytes: 0,
            direct_io,
            fork_fd: None,
        })
    }

    /// The path bytes are written to until commit (`NAME.partial`, or the FIFO/device).
    pub fn partial_path(&self) -> &Path {
        self.file.get_ref().writing_to()
    }
}

impl Write for FileOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf).map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    // Forwarded so a vectored record write reaches writev(2) (the default writes one slice);
    // a large one skips the buffer (flushed first, to keep the order): no copy of its bytes.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let result = if total >= VECTORED_UNBUFFERED_BYTES_MIN {
            self.file.flush().and_then(|()| self.file.get_mut().write_vectored(bufs))
        } else {
            self.file.write_vectored(bufs)
        };
        let n = result.map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| name_io_error(&self.destination, e))
    }
}

impl Output for FileOutput {
    fn commit(self: Box<Self>) -> Result<OutputSummary, OutputError> {
        let FileOutput { file, target, destination, bytes, fork_fd, .. } = *self;
        // A forked child's descriptor: the fsync in DurableFile::commit covers its writes
        // (fsync is per file, not per descriptor).
        drop(fork_fd);
        let file = file
            .into_inner()
            .map_err(|e| OutputError::Io { destination: destination.clone(), source: e.into_error() })?;
        let durable = file.is_durable();
        let path: PathBuf =
            file.commit().map_err(|source| OutputError::Commit { path: target.given.clone(), source })?;
        Ok(OutputSummary {
            kind: target.kind.name().into(),
            destination: path.display().to_string(),
            bytes,
            // A FIFO's reader or a device may still fail; only a renamed, fsynced file is known.
            confirmed: durable,
            slow_device_emulation: None,
        })
    }

    fn fork_fd(&mut self) -> Option<BorrowedFd<'_>> {
        if self.direct_io || self.bytes > 0 || !self.file.buffer().is_empty() {
            return None;
        }
        if self.fork_fd.is_none() {
            // A separate open file: its offset starts at 0, where the child's stream begins;
            // the DurableFile's own descriptor is never written.
            self.fork_fd = Some(self.file.get_ref().second_fd()?);
        }
        self.fork_fd.as_ref().map(AsFd::as_fd)
    }

    fn add_forked_bytes(&mut self, bytes: u64, _emulation: Option<super::SlowDeviceReport>) {
        self.bytes += bytes;
    }

    fn abort(self: Box<Self>) {
        // Dropping the DurableFile without commit leaves NAME.partial and never NAME.
        drop(self);
    }
}
