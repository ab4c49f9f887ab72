//! `--sink-cmd`: the snapshot stream piped into a shell command (`pv -qL 50m > f`, `cat > f`),
//! as QEMU's `migrate exec:` does.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use wpsnap_linux::output::{Output, OutputError, OutputSummary};

/// Bound on the command finishing after its input is closed.
const SINK_CMD_WAIT_MAX: Duration = Duration::from_secs(600);
/// How often a finishing command is looked at.
const SINK_CMD_POLL: Duration = Duration::from_millis(5);

/// Writes the stream to `sh -c COMMAND`'s standard input.
pub struct CommandOutput {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    bytes: u64,
}

impl CommandOutput {
    /// Starts `sh -c command`.
    pub fn spawn(command: &str) -> Result<CommandOutput, OutputError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|source| OutputError::Io { destination: format!("sh -c {command}"), source })?;
        let stdin = child.stdin.take();
        Ok(CommandOutput { command: command.to_string(), child, stdin, bytes: 0 })
    }

    fn error(&self, source: std::io::Error) -> OutputError {
        OutputError::Io { destination: format!("sh -c {}", self.command), source }
    }
}

impl Write for CommandOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("the command's input is closed"))?;
        let n = stdin.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), |s| s.flush())
    }
}

impl Output for CommandOutput {
    fn commit(mut self: Box<Self>) -> Result<OutputSummary, OutputError> {
        drop(self.stdin.take());
        let started = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < SINK_CMD_WAIT_MAX => std::thread::sleep(SINK_CMD_POLL),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(self.error(std::io::Error::other(format!(
                        "did not finish within {} s of its input closing",
                        SINK_CMD_WAIT_MAX.as_secs()
                    ))));
                }
                Err(e) => return Err(self.error(e)),
            }
        };
        if !status.success() {
            return Err(self.error(std::io::Error::other(format!("exited with {status}"))));
        }
        Ok(OutputSummary {
            kind: "command".into(),
            destination: self.command.clone(),
            bytes: self.bytes,
            // The command finished successfully; whether it made the bytes durable is its own
            // business.
            confirmed: false,
            slow_device_emulation: None,
        })
    }

    fn abort(mut self: Box<Self>) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_bytes_into_the_command_and_reports_its_failure() {
        let dir = std::env::temp_dir().join(format!("wpsnap-sink-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        let file = dir.join("out");
        let mut out = Box::new(CommandOutput::spawn(&format!("cat > '{}'", file.display())).expect("spawns"));
        out.write_all(b"hello").expect("writes");
        let summary = out.commit().expect("commits");
        assert_eq!(summary.bytes, 5);
        assert_eq!(std::fs::read(&file).expect("the command wrote its file"), b"hello");
        let failing = Box::new(CommandOutput::spawn("cat > /dev/null; exit 3").expect("spawns"));
        assert!(failing.commit().is_err(), "a failing command committed");
        let _ = std::fs::remove_dir_all(dir);
    }
}
