//! A shell command's standard input as a snapshot sink (`--out 'cmd:pv -qL 50m > /dev/null'`):
//! the consumer runs under wpsnap's control, so a run fails when the consumer fails, and
//! experiments with bursty or throttled readers need no shell pipeline around wpsnap.

use super::{Output, OutputError, OutputSummary, name_io_error};
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Buffer in front of the pipe: the same as standard output's, so `--out 'cmd:X'` and
/// `--out - | X` hand the consumer the same write sizes.
const COMMAND_BUFFER_BYTES: usize = 256 * 1024;

/// How long [`Output::commit`] waits, after closing the pipe, for the command to exit.
pub const COMMAND_EXIT_WAIT_MS_DEFAULT: u64 = 60_000;

/// How often the exit wait checks the command.
const EXIT_POLL_INTERVAL_MS: u64 = 5;

/// Writes to the standard input of `sh -c COMMAND`; the command's standard output and error
/// are wpsnap's. [`Output::commit`] flushes, closes the pipe (end of stream) and waits for the
/// command: it succeeds only when the command exits with status 0 within the exit wait.
/// [`Output::abort`] (or a drop) kills the command's process group and reaps the command.
/// The command runs in a process group of its own, so a terminal's Ctrl-C reaches wpsnap,
/// which then aborts the output, and a kill reaches every process the command started.
/// Writes block while the command does not read (as a pipe from standard output would).
pub struct CommandOutput {
    /// `None` once closed (commit) or when never taken.
    stdin: Option<BufWriter<ChildStdin>>,
    child: Option<Child>,
    command: String,
    destination: String,
    bytes: u64,
    exit_wait_ms: u64,
}

impl CommandOutput {
    /// Starts `sh -c command` with a pipe to its standard input, and the default exit wait.
    pub fn spawn(command: &str) -> Result<CommandOutput, OutputError> {
        CommandOutput::spawn_with_exit_wait(command, COMMAND_EXIT_WAIT_MS_DEFAULT)
    }

    /// As [`CommandOutput::spawn`], waiting at most `exit_wait_ms` for the command to exit
    /// after the end of the stream.
    pub fn spawn_with_exit_wait(command: &str, exit_wait_ms: u64) -> Result<CommandOutput, OutputError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| OutputError::Spawn { command: command.to_string(), source })?;
        let Some(stdin) = child.stdin.take() else {
            kill_and_reap(&mut child);
            return Err(OutputError::Spawn {
                command: command.to_string(),
                source: std::io::Error::other("no pipe to the command's standard input"),
            });
        };
        Ok(CommandOutput {
            stdin: Some(BufWriter::with_capacity(COMMAND_BUFFER_BYTES, stdin)),
            child: Some(child),
            command: command.to_string(),
            destination: format!("cmd:{command}"),
            bytes: 0,
            exit_wait_ms,
        })
    }

    /// The process id of `sh` (also its process group's id), while it has not been reaped.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn pipe(&mut self) -> std::io::Result<&mut BufWriter<ChildStdin>> {
        self.stdin.as_mut().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    /// Waits (bounded) for the command after the end of the stream.
    fn wait_for_exit(&mut self) -> Result<ExitStatus, OutputError> {
        let Some(child) = self.child.as_mut() else {
            return Err(OutputError::CommandExitTimeout { command: self.command.clone(), wait_ms: 0 });
        };
        let deadline = Instant::now() + Duration::from_millis(self.exit_wait_ms);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Ok(status);
                }
                Ok(None) if Instant::now() >= deadline => {
                    kill_and_reap(child);
                    self.child = None;
                    return Err(OutputError::CommandExitTimeout {
                        command: self.command.clone(),
                        wait_ms: self.exit_wait_ms,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(EXIT_POLL_INTERVAL_MS)),
                Err(source) => {
                    kill_and_reap(child);
                    self.child = None;
                    return Err(OutputError::Io { destination: self.destination.clone(), source });
                }
            }
        }
    }
}

/// Kills the command's process group (the command's pid is the group's id), then reaps the
/// command. Best effort: the command may have exited already.
fn kill_and_reap(child: &mut Child) {
    if let Some(group) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Write for CommandOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.pipe()?.write(buf).map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let n = self.pipe()?.write_vectored(bufs).map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.pipe()?.flush().map_err(|e| name_io_error(&self.destination, e))
    }
}

impl Output for CommandOutput {
    fn commit(mut self: Box<Self>) -> Result<OutputSummary, OutputError> {
        let flushed = match self.stdin.take() {
            // Dropping the pipe's write end is the command's end of stream.
            Some(pipe) => pipe.into_inner().map(drop).map_err(|e| e.into_error()),
            None => Ok(()),
        };
        let status = self.wait_for_exit()?;
        // The command's status says more than a broken pipe: check it first.
        if !status.success() {
            return Err(OutputError::CommandFailed { command: self.command.clone(), status: status.to_string() });
        }
        flushed.map_err(|source| OutputError::Io { destination: self.destination.clone(), source })?;
        Ok(OutputSummary {
            kind: "cmd".into(),
            destination: self.destination.clone(),
            bytes: self.bytes,
            // The command saw the end of the stream and exited with status 0.
            confirmed: true,
            slow_device_emulation: None,
        })
    }

    fn fork_fd(&mut self) -> Option<BorrowedFd<'_>> {
        let pipe = self.stdin.as_ref()?;
        if self.bytes > 0 || !pipe.buffer().is_empty() {
            return None;
        }
        Some(pipe.get_ref().as_fd())
    }

    fn add_forked_bytes(&mut self, bytes: u64, _emulation: Option<super::SlowDeviceReport>) {
        self.bytes += bytes;
    }

    fn abort(self: Box<Self>) {
        // Drop kills the command: a consumer such as `cat > file` must not finish a file
        // from a stream that was given up.
        drop(self);
    }
}

impl Drop for CommandOutput {
    fn drop(&mut self) {
        // Kill before closing the pipe: the command must never see an end of stream for a
        // stream that was given up.
        if let Some(child) = self.child.as_mut() {
            kill_and_reap(child);
        }
        self.stdin = None;
    }
}
