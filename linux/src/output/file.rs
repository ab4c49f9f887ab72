//! File output through [`wpsnap_format::DurableFile`]: `NAME.partial` until commit.

use super::{Output, OutputError, OutputSummary, name_io_error};
use std::io::{BufWriter, Write};
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
        let FileOutput { file, final_path, destination, bytes } = *self;
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

    fn abort(self: Box<Self>) {
        // Dropping the DurableFile without commit leaves NAME.partial and never NAME.
        drop(self);
    }
}
