//! [`SyncFs`] on the real file system (std + `O_DIRECT`).

use super::SyncFs;
use super::direct::DirectFile;
use crate::error::FormatError;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// A file opened by [`StdFs`]: plain, or `O_DIRECT` behind an aligned buffer.
#[derive(Debug)]
pub enum StdFile {
    /// Ordinary buffered-by-the-kernel file.
    Plain(File),
    /// `O_DIRECT` file with its aligned staging buffer.
    Direct(DirectFile),
}

impl SyncFs for StdFs {
    type File = StdFile;

    fn create(&self, path: &Path, direct_io: bool) -> Result<StdFile, FormatError> {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        if direct_io {
            opts.custom_flags(libc::O_DIRECT);
        }
        match opts.open(path) {
            Ok(f) if direct_io => Ok(StdFile::Direct(DirectFile::new(f))),
            Ok(f) => Ok(StdFile::Plain(f)),
            // tmpfs and some FUSE file systems answer O_DIRECT with EINVAL.
            Err(e) if direct_io && e.raw_os_error() == Some(libc::EINVAL) => {
                Err(FormatError::DirectIoUnsupported { path: path.to_path_buf(), source: e })
            }
            Err(e) => Err(FormatError::io(format!("{}: create", path.display()), e)),
        }
    }

    fn sync_file(&self, file: &mut StdFile) -> io::Result<()> {
        match file {
            StdFile::Plain(f) => f.sync_all(),
            StdFile::Direct(d) => d.finish_and_sync(),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl Write for StdFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StdFile::Plain(f) => f.write(buf),
            StdFile::Direct(d) => d.write(buf),
        }
    }

    // One writev(2) for a plain file; the O_DIRECT file copies into its aligned buffer anyway.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            StdFile::Plain(f) => f.write_vectored(bufs),
            StdFile::Direct(d) => d.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            StdFile::Plain(f) => f.flush(),
            StdFile::Direct(d) => d.flush(),
        }
    }
}
