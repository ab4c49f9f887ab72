//! File output through [`wpsnap_format::DurableFile`]: `NAME.partial` until commit.

use super::{Output, OutputError, OutputSummary, name_io_error};
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use wpsnap_format::DurableFile;

/// Buffer in front of the file, so page-sized writes do not each cost a syscall.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

/// A snapshot file. Bytes go to `NAME.partial`; [`Output::commit`] flushes, fsyncs, renames to
/// `NAME` and fsyncs the folder; [`Output::abort`] (or a drop) leaves only `NAME.partial`.
pub struct FileOutput {
    file: BufWriter<DurableFile>,
    final_path: PathBuf,
    destination: String,
    bytes: u64,
    direct_io: bool,
    /// A second descriptor of `NAME.partial` for a forked child (see [`Output::fork_fd`]).
    fork_fd: Option<OwnedFd>,
}

impl FileOutput {
    /// Creates `final_path.partial` (O_DIRECT when `direct_io`).
    pub fn create(final_path: &Path, direct_io: bool) -> Result<FileOutput, OutputError> {
        let file = DurableFile::create(final_path, direct_io)
            .map_err(|source| OutputError::Create { path: final_path.to_path_buf(), source })?;
        let destination = file.partial_path().display().to_string();
        Ok(FileOutput {
            file: BufWriter::with_capacity(FILE_BUFFER_BYTES, file),
            final_path: final_path.to_path_buf(),
            destination,
            bytes: 0,
            direct_io,
            fork_fd: None,
        })
    }

    /// The path bytes are written to until commit.
    pub fn partial_path(&self) -> &Path {
        self.file.get_ref().partial_path()
    }
}

impl Write for FileOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf).map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| name_io_error(&self.destination, e))
    }
}

impl Output for FileOutput {
    fn commit(self: Box<Self>) -> Result<OutputSummary, OutputError> {
        let FileOutput { file, final_path, destination, bytes, fork_fd, .. } = *self;
        // A forked child's descriptor: the fsync in DurableFile::commit covers its writes
        // (fsync is per file, not per descriptor).
        drop(fork_fd);
        let file = file
            .into_inner()
            .map_err(|e| OutputError::Io { destination: destination.clone(), source: e.into_error() })?;
        let path = file.commit().map_err(|source| OutputError::Commit { path: final_path, source })?;
        Ok(OutputSummary {
            kind: "file".into(),
            destination: path.display().to_string(),
            bytes,
            confirmed: true,
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
            let second = std::fs::OpenOptions::new().write(true).open(self.partial_path()).ok()?;
            self.fork_fd = Some(OwnedFd::from(second));
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
