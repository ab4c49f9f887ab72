//! Durable, atomic file creation: write to `NAME.partial`, then on commit flush, fsync the
//! file, rename it to `NAME` and fsync the directory. A file under its final name is therefore
//! always complete; a crash or an error at any point leaves at most `NAME.partial`.
//!
//! The protocol is written once, generic over [`SyncFs`], so the crash-consistency test runs the
//! very same steps on a simulated file system that loses unsynced data at a crash.

mod direct;
mod std_fs;

pub use direct::{DIRECT_BUFFER_BYTES, DIRECT_IO_ALIGN_BYTES};
pub use std_fs::{StdFile, StdFs};

use crate::error::FormatError;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The few file-system operations the commit protocol needs.
pub trait SyncFs {
    /// An open file being written.
    type File: Write;
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path, direct_io: bool) -> Result<Self::File, FormatError>;
    /// Writes out everything buffered and makes the file's data and size durable (fsync).
    fn sync_file(&self, file: &mut Self::File) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (the rename) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// `NAME.partial` for `NAME`.
pub fn partial_path_for(final_path: &Path) -> PathBuf {
    let mut name: OsString = final_path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The directory holding `path` ("." for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A file written under `NAME.partial` and published as `NAME` by [`DurableWriter::commit`],
/// over any [`SyncFs`]. Dropping it without commit leaves `NAME.partial`.
#[derive(Debug)]
pub struct DurableWriter<F: SyncFs> {
    fs: F,
    file: F::File,
    partial_path: PathBuf,
    final_path: PathBuf,
}

impl<F: SyncFs> DurableWriter<F> {
    /// Creates `final_path.partial` on `fs`.
    pub fn create_on(fs: F, final_path: &Path, direct_io: bool) -> Result<Self, FormatError> {
        let partial_path = partial_path_for(final_path);
        let file = fs.create(&partial_path, direct_io)?;
        Ok(DurableWriter { fs, file, partial_path, final_path: final_path.to_path_buf() })
    }

    /// Where the bytes go until commit.
    pub fn partial_path(&self) -> &Path {
        &self.partial_path
    }

    /// Where the file appears on commit.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Flush, fsync the file, rename to the final name, fsync the directory. If a step before
    /// the rename fails, only `.partial` exists. If the directory fsync fails, the rename has
    /// happened but may not survive a crash (the error says "fsync of the directory").
    pub fn commit(mut self) -> Result<PathBuf, FormatError> {
        let p = self.partial_path.display().to_string();
        self.file.flush().map_err(|e| FormatError::io(format!("{p}: flush"), e))?;
        self.fs.sync_file(&mut self.file).map_err(|e| FormatError::io(format!("{p}: fsync"), e))?;
        let DurableWriter { fs, file, partial_path, final_path } = self;
        drop(file);
        fs.rename(&partial_path, &final_path)
            .map_err(|e| FormatError::io(format!("rename {p} to {}", final_path.display()), e))?;
        let dir = parent_dir(&final_path);
        fs.sync_dir(&dir).map_err(|e| FormatError::io(format!("{}: fsync of the directory", dir.display()), e))?;
        Ok(final_path)
    }
}

impl<F: SyncFs> Write for DurableWriter<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.file.write_vectored(bufs)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A snapshot file on the real file system, written under `NAME.partial` and renamed to
/// `NAME` by [`DurableFile::commit`]. With `direct_io` the file is opened with `O_DIRECT` and
/// written through an aligned buffer of [`DIRECT_BUFFER_BYTES`]; without it, writes go straight
/// to the file (wrap it in a `BufWriter`).
#[derive(Debug)]
pub struct DurableFile {
    inner: DurableWriter<StdFs>,
}

impl DurableFile {
    /// Creates `final_path.partial` (truncating a leftover one). Fails with
    /// [`FormatError::DirectIoUnsupported`] if `direct_io` is asked and the file system refuses it.
    pub fn create(final_path: &Path, direct_io: bool) -> Result<DurableFile, FormatError> {
        Ok(DurableFile { inner: DurableWriter::create_on(StdFs, final_path, direct_io)? })
    }

    /// Where the bytes go until commit.
    pub fn partial_path(&self) -> &Path {
        self.inner.partial_path()
    }

    /// Where the file appears on commit.
    pub fn final_path(&self) -> &Path {
        self.inner.final_path()
    }

    /// Flush, fsync, rename to the final name, fsync the directory; returns the final path.
    pub fn commit(self) -> Result<PathBuf, FormatError> {
        self.inner.commit()
    }
}

impl Write for DurableFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
