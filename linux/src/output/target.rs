//! What a file output's path names, decided before any byte is written, and the writer for
//! each kind.
//!
//! | what is at the path | what happens |
//! |---|---|
//! | nothing | `NAME.partial` is written, fsynced and renamed to `NAME` on commit |
//! | a regular file | the same; the rename replaces the old file only on a successful commit |
//! | a symbolic link | followed: the file it points to is replaced as above (the link stays); a link to nothing, to a directory or to anything refused below is refused |
//! | a FIFO or a character device (`/dev/null`, a tape) | written directly, no `.partial`, no rename, no fsync; an abort leaves what was written |
//! | a directory, a block device, a socket | refused |
//!
//! The folder that will hold `NAME` must exist and be writable. A path that is one of the
//! command's inputs is refused ([`FileTarget::ensure_not_input`]).

use super::OutputError;
use serde::Serialize;
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use wpsnap_format::DurableFile;

/// A checked output path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTarget {
    /// The path as the user gave it.
    pub given: PathBuf,
    /// Where the bytes go: the given path, or what its symbolic link points to.
    pub path: PathBuf,
    /// How the bytes get there.
    pub kind: TargetKind,
}

/// How a [`FileTarget`] is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// `NAME.partial`, then an atomic rename to `NAME` (nothing there yet, or a regular file).
    ReplaceFile,
    /// A FIFO, written directly.
    Fifo,
    /// A character device, written directly.
    CharDevice,
}

impl TargetKind {
    /// Short name for summaries: "file", "fifo", "character-device".
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::ReplaceFile => "file",
            TargetKind::Fifo => "fifo",
            TargetKind::CharDevice => "character-device",
        }
    }
}

/// Why an output path was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{path} is a directory; give a file name inside it")]
    Directory { path: PathBuf },
    #[error("{path} is a {what}; snapshots are written to regular files, FIFOs or character devices")]
    Unsupported { path: PathBuf, what: &'static str },
    #[error("{path} is a symbolic link to {target}, which does not exist; give a path that exists or remove the link")]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error("the folder {dir} of {path} does not exist")]
    NoFolder { path: PathBuf, dir: PathBuf },
    #[error("{dir} is not a folder (it holds {path})")]
    FolderNotDir { path: PathBuf, dir: PathBuf },
    #[error("cannot write in the folder {dir}: {source}")]
    FolderNotWritable { dir: PathBuf, source: std::io::Error },
    #[error("{path} is also an input ({input}); writing it would destroy what is being read")]
    SameAsInput { path: PathBuf, input: PathBuf },
    #[error("looking at {path}: {source}")]
    Stat { path: PathBuf, source: std::io::Error },
}

impl FileTarget {
    /// Looks at what `given` names (following a symbolic link) and decides how it will be
    /// written, or refuses it. Touches nothing.
    pub fn resolve(given: &Path) -> Result<FileTarget, TargetError> {
        let stat_err = |source| TargetError::Stat { path: given.to_path_buf(), source };
        let path = match std::fs::symlink_metadata(given) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(given) {
                Ok(resolved) => resolved,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let target = std::fs::read_link(given).map_err(stat_err)?;
                    return Err(TargetError::DanglingLink { path: given.to_path_buf(), target });
                }
                Err(e) => return Err(stat_err(e)),
            },
            Ok(_) => given.to_path_buf(),
            Err(e) if absent(&e) => given.to_path_buf(),
            Err(e) => return Err(stat_err(e)),
        };
        let kind = match std::fs::metadata(&path) {
            Ok(m) => kind_of(&path, &m)?,
            Err(e) if absent(&e) => TargetKind::ReplaceFile,
            Err(e) => return Err(TargetError::Stat { path, source: e }),
        };
        if kind == TargetKind::ReplaceFile {
            check_folder(&path)?;
        }
        Ok(FileTarget { given: given.to_path_buf(), path, kind })
    }

    /// Refuses a target that is the same file as one of `inputs` (same device and inode, so
    /// links and different spellings of one path are caught).
    pub fn ensure_not_input(&self, inputs: &[&Path]) -> Result<(), TargetError> {
        let Ok(target) = std::fs::metadata(&self.path) else {
            return Ok(()); // Not there yet: it cannot be an existing input.
        };
        for input in inputs {
            if let Ok(m) = std::fs::metadata(input)
                && m.dev() == target.dev()
                && m.ino() == target.ino()
            {
                return Err(TargetError::SameAsInput { path: self.given.clone(), input: input.to_path_buf() });
            }
        }
        Ok(())
    }

    /// `NAME.partial` for a replaced file; `None` for targets written directly.
    pub fn partial_path(&self) -> Option<PathBuf> {
        (self.kind == TargetKind::ReplaceFile).then(|| wpsnap_format::partial_path_for(&self.path))
    }
}

/// Nothing at the path (ENOTDIR: a component is a file; the folder check names it).
fn absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn kind_of(path: &Path, m: &Metadata) -> Result<TargetKind, TargetError> {
    let t = m.file_type();
    let unsupported = |what| Err(TargetError::Unsupported { path: path.to_path_buf(), what });
    if t.is_file() {
        Ok(TargetKind::ReplaceFile)
    } else if t.is_dir() {
        Err(TargetError::Directory { path: path.to_path_buf() })
    } else if t.is_fifo() {
        Ok(TargetKind::Fifo)
    } else if t.is_char_device() {
        Ok(TargetKind::CharDevice)
    } else if t.is_block_device() {
        unsupported("block device")
    } else if t.is_socket() {
        unsupported("socket")
    } else {
        unsupported("special file")
    }
}

/// The folder that will hold the file exists, is a folder, and we may create files in it.
fn check_folder(path: &Path) -> Result<(), TargetError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(TargetError::FolderNotDir { path: path.to_path_buf(), dir }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TargetError::NoFolder { path: path.to_path_buf(), dir });
        }
        Err(source) => return Err(TargetError::Stat { path: dir, source }),
    }
    rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
        .map_err(|e| TargetError::FolderNotWritable { dir, source: e.into() })
}

fn io_error(context: String, source: std::io::Error) -> wpsnap_format::FormatError {
    wpsnap_format::FormatError::Io { context, source }
}

/// The open writer of a [`FileTarget`].
pub enum TargetWriter {
    /// `NAME.partial` until [`TargetWriter::commit`].
    Durable(DurableFile),
    /// A FIFO or character device, written in place.
    Direct { file: File, path: PathBuf },
}

impl TargetWriter {
    /// Opens the target: creates `NAME.partial`, or opens the FIFO/device for writing (a FIFO
    /// blocks here until a reader opens it). `direct_io` applies to regular files only.
    pub fn open(target: &FileTarget, direct_io: bool) -> Result<TargetWriter, OutputError> {
        let create_err = |source| OutputError::Create { path: target.given.clone(), source };
        match target.kind {
            TargetKind::ReplaceFile => {
                DurableFile::create(&target.path, direct_io).map(TargetWriter::Durable).map_err(create_err)
            }
            TargetKind::Fifo | TargetKind::CharDevice => {
                if direct_io {
                    return Err(OutputError::InvalidSpec {
                        spec: target.given.display().to_string(),
                        reason: "O_DIRECT applies to regular files only",
                    });
                }
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target.path)
                    .map_err(|e| create_err(io_error(format!("{}: open", target.path.display()), e)))?;
                Ok(TargetWriter::Direct { file, path: target.path.clone() })
            }
        }
    }

    /// Where bytes are being written now (`NAME.partial` or the device).
    pub fn writing_to(&self) -> &Path {
        match self {
            TargetWriter::Durable(f) => f.partial_path(),
            TargetWriter::Direct { path, .. } => path,
        }
    }

    /// A regular file: fsync and rename into place. A FIFO or device: nothing more to do.
    /// Returns the final path.
    pub fn commit(self) -> Result<PathBuf, wpsnap_format::FormatError> {
        match self {
            TargetWriter::Durable(f) => f.commit(),
            TargetWriter::Direct { mut file, path } => {
                file.flush().map_err(|e| io_error(format!("{}: flush", path.display()), e))?;
                Ok(path)
            }
        }
    }

    /// True when the commit makes the bytes durable (fsync + rename).
    pub fn is_durable(&self) -> bool {
        matches!(self, TargetWriter::Durable(_))
    }

    /// A descriptor for a forked child: a second open file of `NAME.partial` (offset 0), or
    /// the FIFO/device itself.
    pub(super) fn second_fd(&self) -> Option<std::os::fd::OwnedFd> {
        match self {
            TargetWriter::Durable(f) => {
                std::fs::OpenOptions::new().write(true).open(f.partial_path()).ok().map(Into::into)
            }
            TargetWriter::Direct { file, .. } => file.try_clone().ok().map(Into::into),
        }
    }
}

impl Write for TargetWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            TargetWriter::Durable(f) => f.write(buf),
            TargetWriter::Direct { file, .. } => file.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            TargetWriter::Durable(f) => f.write_vectored(bufs),
            TargetWriter::Direct { file, .. } => file.write_vectored(bufs),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            TargetWriter::Durable(f) => f.write_all(buf),
            TargetWriter::Direct { file, .. } => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            TargetWriter::Durable(f) => f.flush(),
            TargetWriter::Direct { file, .. } => file.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wpsnap-target-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn each_kind_of_path_is_decided() {
        let dir = temp("kinds");
        let new = dir.join("new.wps");
        assert_eq!(FileTarget::resolve(&new).map(|t| t.kind).ok(), Some(TargetKind::ReplaceFile));
        let file = dir.join("old.wps");
        std::fs::write(&file, b"x").expect("write");
        assert_eq!(FileTarget::resolve(&file).map(|t| t.kind).ok(), Some(TargetKind::ReplaceFile));
        assert!(matches!(FileTarget::resolve(&dir), Err(TargetError::Directory { .. })));
        let link = dir.join("link.wps");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let t = FileTarget::resolve(&link).expect("link resolves");
        assert_eq!(t.path, std::fs::canonicalize(&file).expect("canonical"));
        let dangling = dir.join("dangling.wps");
        std::os::unix::fs::symlink(dir.join("missing"), &dangling).expect("symlink");
        assert!(matches!(FileTarget::resolve(&dangling), Err(TargetError::DanglingLink { .. })));
        assert!(matches!(FileTarget::resolve(&dir.join("nope/x.wps")), Err(TargetError::NoFolder { .. })));
        assert!(matches!(FileTarget::resolve(&file.join("x.wps")), Err(TargetError::FolderNotDir { .. })));
        let fifo = dir.join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o600), 0)
            .expect("mkfifo");
        assert_eq!(FileTarget::resolve(&fifo).map(|t| t.kind).ok(), Some(TargetKind::Fifo));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_input_is_not_an_output_under_any_spelling() {
        let dir = temp("input");
        let file = dir.join("c.wps");
        std::fs::write(&file, b"x").expect("write");
        let link = dir.join("l.wps");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let t = FileTarget::resolve(&link).expect("resolve");
        assert!(matches!(t.ensure_not_input(&[&file]), Err(TargetError::SameAsInput { .. })));
        let other = dir.join("d.wps");
        std::fs::write(&other, b"y").expect("write");
        assert!(t.ensure_not_input(&[&other]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
