//! Where snapshot bytes go: a file, standard output (which is how pipes are used), a shell
//! command's standard input, or a TCP peer; plus a receiver for the TCP peer's side, a slow-device emulation wrapper for
//! experiments, and a test helper that fails on purpose.
//!
//! What it does:
//! - [`open_output`] turns an [`OutputSpec`] into a [`Box<dyn Output>`]: a byte sink
//!   ([`std::io::Write`]) that is finished with [`Output::commit`] (make the bytes durable or
//!   delivered, and say so) or [`Output::abort`] (give up; leave no file that looks complete).
//! - File output goes through [`wpsnap_format::DurableFile`]: bytes land in `NAME.partial`, and
//!   only `commit` renames it to `NAME` after fsync, so a failed snapshot never leaves a file
//!   under the final name. What the path names is decided first ([`FileTarget`]): a symbolic
//!   link is followed, a FIFO or character device is written in place, a directory, block
//!   device or socket is refused.
//! - TCP output connects with a timeout, writes with a timeout (a stuck peer turns into an
//!   error, never into a writer blocked forever), and on commit flushes, shuts down its write
//!   side and waits (bounded) for the receiver's acknowledgement. Errors name the peer.
//! - [`Receiver`] / [`receive`]: accepts one connection, checks the stream as it arrives with
//!   the format reader (a bad header or record drops the connection at once), writes it to the
//!   output path, commits only a complete, valid stream and acknowledges to the sender. Its
//!   waits poll a cancel flag the caller sets (the library installs no signal handlers).
//! - [`CommandOutput`] (`cmd:COMMAND`): runs `sh -c COMMAND` with the stream on its standard
//!   input; commit closes the pipe and waits (bounded) for the command, and fails when it exits
//!   with a non-zero status. Abort kills it.
//! - [`SlowDevice`]: an *emulation* of a slow disk (bandwidth cap plus seeded stalls) for
//!   experiments; it does not make anything durable and is labelled as emulation in its
//!   report.
//! - [`FailingOutput`]: fails with a chosen error after N bytes, for failure tests.
//!
//! What it does not do: it knows nothing of the snapshot format beyond the receiver's final
//! verification; it does not retry, reconnect or resume a broken TCP stream; it does not
//! encrypt or authenticate the stream (use it on trusted networks or tunnel it); it runs a
//! shell command only when the spec says `cmd:` (the text is passed to `sh -c` as given).

mod command;
mod failing;
mod file;
mod receive;
mod slow_device;
mod stdout;
mod target;
mod tcp;
mod writer;

pub use command::{COMMAND_EXIT_WAIT_MS_DEFAULT, CommandOutput};
pub use failing::FailingOutput;
pub use file::FileOutput;
pub use receive::{ACK_PREFIX, ReceiveError, ReceiveLimits, ReceiveReport, Receiver, receive};
pub use slow_device::{
    DevicePacer, STALL_SOURCES_MAX, SlowDevice, SlowDeviceProfile, SlowDeviceReport, StallLength, StallSource,
};
pub use stdout::StdoutOutput;
pub use target::{FileTarget, TargetError, TargetKind, TargetWriter};
pub use tcp::{TcpLimits, TcpOutput};
pub use writer::{WriterOutput, WriterSlot};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a snapshot is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputSpec {
    /// A file, written as `path.partial` and renamed to `path` on commit.
    File {
        path: PathBuf,
        /// Open with O_DIRECT (bypass the page cache).
        direct_io: bool,
    },
    /// Standard output; `wpsnap run --out - | tool` is how pipes are used.
    Stdout,
    /// A TCP peer, `host:port`, normally running `wpsnap receive`.
    Tcp(String),
    /// A shell command (`sh -c`) reading the stream on its standard input, e.g.
    /// `pv -qL 50m > /dev/null` for a bursty 50 MB/s consumer.
    Command(String),
}

impl OutputSpec {
    /// Human-readable destination: the path, "stdout", "tcp:host:port" or "cmd:COMMAND".
    pub fn destination(&self) -> String {
        match self {
            OutputSpec::File { path, .. } => path.display().to_string(),
            OutputSpec::Stdout => "stdout".to_string(),
            OutputSpec::Tcp(addr) => format!("tcp:{addr}"),
            OutputSpec::Command(command) => format!("cmd:{command}"),
        }
    }
}

/// Parses the command line's form: `-` is standard output, `tcp:HOST:PORT` a TCP peer,
/// `cmd:COMMAND` a shell command reading the stream, anything else a file path (without O_DIRECT; set `direct_io` separately).
impl FromStr for OutputSpec {
    type Err = OutputError;

    fn from_str(s: &str) -> Result<OutputSpec, OutputError> {
        if s.is_empty() {
            return Err(OutputError::InvalidSpec { spec: s.to_string(), reason: "empty output" });
        }
        if s == "-" {
            return Ok(OutputSpec::Stdout);
        }
        if let Some(addr) = s.strip_prefix("tcp:") {
            if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
                return Err(OutputError::InvalidSpec { spec: s.to_string(), reason: "expected tcp:HOST:PORT" });
            }
            return Ok(OutputSpec::Tcp(addr.to_string()));
        }
        if let Some(command) = s.strip_prefix("cmd:") {
            if command.trim().is_empty() {
                return Err(OutputError::InvalidSpec { spec: s.to_string(), reason: "expected cmd:COMMAND" });
            }
            return Ok(OutputSpec::Command(command.to_string()));
        }
        Ok(OutputSpec::File { path: PathBuf::from(s), direct_io: false })
    }
}

/// What an output did, for reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputSummary {
    /// "file", "stdout", "tcp" or "cmd".
    pub kind: String,
    /// Final path, "stdout", or the peer's address.
    pub destination: String,
    /// Bytes accepted by the output.
    pub bytes: u64,
    /// True when the bytes are known durable or delivered: fsynced and renamed (file), or
    /// acknowledged by a `wpsnap receive` peer that verified and committed them (tcp), or
    /// read by a command that then exited with status 0 (cmd).
    pub confirmed: bool,
    /// Set when the bytes went through [`SlowDevice`]: the emulation's parameters and what it
    /// injected. Figures measured with it are emulated, not a real device's.
    pub slow_device_emulation: Option<SlowDeviceReport>,
}

/// Why an output could not be opened, written or committed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("invalid output {spec:?}: {reason}")]
    InvalidSpec { spec: String, reason: &'static str },
    #[error("creating {path}: {source}")]
    Create { path: PathBuf, source: wpsnap_format::FormatError },
    #[error("committing {path}: {source}")]
    Commit { path: PathBuf, source: wpsnap_format::FormatError },
    #[error("resolving {addr}: {source}")]
    Resolve { addr: String, source: std::io::Error },
    #[error("connecting to {peer}: {source}")]
    Connect { peer: String, source: std::io::Error },
    #[error("{destination}: {source}")]
    Io { destination: String, source: std::io::Error },
    #[error("peer {peer} rejected the snapshot: {message}")]
    Rejected { peer: String, message: String },
    #[error("peer {peer} sent no acknowledgement within {timeout_ms} ms")]
    AckTimeout { peer: String, timeout_ms: u64 },
    #[error("starting `sh -c {command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("the output command `{command}` failed ({status})")]
    CommandFailed { command: String, status: String },
    #[error("the output command `{command}` did not exit within {wait_ms} ms of the end of the stream (killed)")]
    CommandExitTimeout { command: String, wait_ms: u64 },
    #[error("{what} (injected failure)")]
    Injected { what: String },
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl OutputError {
    /// The errno behind the failure, when the operating system reported one: a caller tells a
    /// full disk (`ENOSPC`) from a peer that went away (`EPIPE`, `ECONNRESET`) with
    /// `e.errno().map(Errno::code)`.
    pub fn errno(&self) -> Option<crate::errno::Errno> {
        match self {
            OutputError::Create { source, .. } | OutputError::Commit { source, .. } => {
                source.raw_os_error().map(crate::errno::Errno::from_code)
            }
            OutputError::Resolve { source, .. }
            | OutputError::Connect { source, .. }
            | OutputError::Io { source, .. }
            | OutputError::Spawn { source, .. } => crate::errno::Errno::of_io(source),
            OutputError::Target(TargetError::FolderNotWritable { source, .. } | TargetError::Stat { source, .. }) => {
                crate::errno::Errno::of_io(source)
            }
            OutputError::InvalidSpec { .. }
            | OutputError::Rejected { .. }
            | OutputError::AckTimeout { .. }
            | OutputError::Injected { .. }
            | OutputError::CommandFailed { .. }
            | OutputError::CommandExitTimeout { .. }
            | OutputError::Target(_) => None,
        }
    }
}

/// A byte sink for one snapshot. Write to it, then call exactly one of [`Output::commit`] or
/// [`Output::abort`]. Dropping it without either behaves like `abort`.
pub trait Output: std::io::Write + Send {
    /// Finishes the output: flushes, makes the bytes durable or delivered, and reports.
    fn commit(self: Box<Self>) -> Result<OutputSummary, OutputError>;
    /// Gives up: nothing under the final name, connection closed. Never fails (best effort).
    fn abort(self: Box<Self>);
    /// A file descriptor a forked child may write the whole stream to with raw `write(2)`
    /// calls, bypassing this object (the fork backend's child must not run buffered or
    /// locking code). Only offered while nothing has been written through this object; the
    /// parent then calls [`Output::commit`] after the child has finished, which makes the
    /// child's bytes durable (file: fsync + rename) or delivered (tcp: shutdown + wait for
    /// the acknowledgement). `None` when the output cannot be shared that way (O_DIRECT
    /// files, test helpers).
    fn fork_fd(&mut self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    /// The slow-device emulation a forked child must apply itself while writing to
    /// [`Output::fork_fd`] (`Some` only for [`SlowDevice`]).
    fn fork_slow_device(&self) -> Option<SlowDeviceProfile> {
        None
    }
    /// Tells the output what a forked child wrote through [`Output::fork_fd`] (bytes, and the
    /// emulation's report when it applied one), so the summary counts them.
    fn add_forked_bytes(&mut self, _bytes: u64, _emulation: Option<SlowDeviceReport>) {}
}

/// Opens the output an [`OutputSpec`] names, with default TCP limits.
pub fn open_output(spec: &OutputSpec) -> Result<Box<dyn Output>, OutputError> {
    match spec {
        OutputSpec::File { path, direct_io } => Ok(Box::new(FileOutput::create(path, *direct_io)?)),
        OutputSpec::Stdout => Ok(Box::new(StdoutOutput::new())),
        OutputSpec::Tcp(addr) => Ok(Box::new(TcpOutput::connect(addr, &TcpLimits::default())?)),
        OutputSpec::Command(command) => Ok(Box::new(CommandOutput::spawn(command)?)),
    }
}

/// Options beyond the [`OutputSpec`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputOptions {
    pub tcp: TcpLimits,
    /// Wrap the output in the [`SlowDevice`] emulation with this profile (experiments only).
    pub slow_device: Option<SlowDeviceProfile>,
}

/// Opens the output an [`OutputSpec`] names with the given TCP limits, wrapped in the
/// slow-device emulation when asked.
pub fn open_output_with(spec: &OutputSpec, options: &OutputOptions) -> Result<Box<dyn Output>, OutputError> {
    let out: Box<dyn Output> = match spec {
        OutputSpec::Tcp(addr) => Box::new(TcpOutput::connect(addr, &options.tcp)?),
        other => open_output(other)?,
    };
    Ok(match &options.slow_device {
        Some(profile) => Box::new(SlowDevice::new(out, profile.clone())),
        None => out,
    })
}

/// Wraps an io::Error so its text names where it happened (the error kind is kept).
fn name_io_error(destination: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{destination}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_the_command_line_forms() {
        assert_eq!("-".parse::<OutputSpec>().ok(), Some(OutputSpec::Stdout));
        assert_eq!("tcp:127.0.0.1:9000".parse::<OutputSpec>().ok(), Some(OutputSpec::Tcp("127.0.0.1:9000".into())));
        assert_eq!("tcp:[::1]:9000".parse::<OutputSpec>().ok(), Some(OutputSpec::Tcp("[::1]:9000".into())));
        assert_eq!(
            "snap.wps".parse::<OutputSpec>().ok(),
            Some(OutputSpec::File { path: "snap.wps".into(), direct_io: false })
        );
        assert!(matches!("tcp:host".parse::<OutputSpec>(), Err(OutputError::InvalidSpec { .. })));
        assert!(matches!("tcp::80".parse::<OutputSpec>(), Err(OutputError::InvalidSpec { .. })));
        assert!(matches!("".parse::<OutputSpec>(), Err(OutputError::InvalidSpec { .. })));
        assert_eq!(
            "cmd:pv -qL 50m > /dev/null".parse::<OutputSpec>().ok(),
            Some(OutputSpec::Command("pv -qL 50m > /dev/null".into()))
        );
        assert!(matches!("cmd: ".parse::<OutputSpec>(), Err(OutputError::InvalidSpec { .. })));
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = OutputSpec::File { path: "/tmp/x.wps".into(), direct_io: true };
        let json = serde_json::to_string(&spec).unwrap_or_default();
        assert_eq!(serde_json::from_str::<OutputSpec>(&json).ok(), Some(spec));
    }
}
