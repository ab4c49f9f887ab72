//! TCP output: the snapshot stream to a peer (normally `wpsnap receive`).

use super::receive::{ACK_BYTES_MAX, ACK_PREFIX};
use super::{Output, OutputError, OutputSummary, name_io_error};
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Buffer in front of the socket, so page-sized writes do not each cost a syscall.
const TCP_BUFFER_BYTES: usize = 256 * 1024;

/// Time bounds of a TCP output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpLimits {
    /// Per address tried.
    pub connect_timeout_ms: u64,
    /// A single write blocked longer than this fails (a stalled or vanished peer).
    pub write_timeout_ms: u64,
    /// After the stream is sent, how long to wait for the receiver's acknowledgement (it
    /// verifies and fsyncs the whole file first).
    pub ack_timeout_ms: u64,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits { connect_timeout_ms: 5_000, write_timeout_ms: 30_000, ack_timeout_ms: 120_000 }
    }
}

/// A connected TCP stream. Commit flushes, shuts down the write side and waits for the
/// receiver's verdict: `wpsnap receive` answers `ok` only after verifying and committing the
/// file. A peer that closes without answering (a plain `nc -l`) gives `confirmed: false`.
pub struct TcpOutput {
    stream: BufWriter<TcpStream>,
    peer: SocketAddr,
    destination: String,
    limits: TcpLimits,
    bytes: u64,
}

impl TcpOutput {
    /// Resolves `addr` (`host:port`) and connects to the first address that answers within
    /// the connect timeout.
    pub fn connect(addr: &str, limits: &TcpLimits) -> Result<TcpOutput, OutputError> {
        let candidates: Vec<SocketAddr> =
            addr.to_socket_addrs().map_err(|source| OutputError::Resolve { addr: addr.to_string(), source })?.collect();
        let connect_timeout = Duration::from_millis(limits.connect_timeout_ms.max(1));
        let mut last_error = std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolved to no address");
        for candidate in candidates {
            match TcpStream::connect_timeout(&candidate, connect_timeout) {
                Ok(stream) => return TcpOutput::from_stream(stream, candidate, limits),
                Err(e) => last_error = e,
            }
        }
        Err(OutputError::Connect { peer: addr.to_string(), source: last_error })
    }

    fn from_stream(stream: TcpStream, peer: SocketAddr, limits: &TcpLimits) -> Result<TcpOutput, OutputError> {
        let destination = format!("tcp:{peer}");
        let setup = |s: &TcpStream| -> std::io::Result<()> {
            s.set_write_timeout(Some(Duration::from_millis(limits.write_timeout_ms.max(1))))?;
            s.set_nodelay(true)
        };
        setup(&stream).map_err(|source| OutputError::Io { destination: destination.clone(), source })?;
        Ok(TcpOutput {
            stream: BufWriter::with_capacity(TCP_BUFFER_BYTES, stream),
            peer,
            destination,
            limits: limits.clone(),
            bytes: 0,
        })
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl Write for TcpOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.stream.write(buf).map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let n = self.stream.write_vectored(bufs).map_err(|e| name_io_error(&self.destination, e))?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush().map_err(|e| name_io_error(&self.destination, e))
    }
}

impl Output for TcpOutput {
    fn commit(self: Box<Self>) -> Result<OutputSummary, OutputError> {
        let TcpOutput { stream, peer, destination, limits, bytes } = *self;
        let io_err = |source| OutputError::Io { destination: destination.clone(), source };
        let mut stream = stream.into_inner().map_err(|e| io_err(e.into_error()))?;
        stream.shutdown(Shutdown::Write).map_err(io_err)?;
        let answer = read_ack(&mut stream, limits.ack_timeout_ms).map_err(|e| match e {
            AckReadError::Timeout => {
                OutputError::AckTimeout { peer: peer.to_string(), timeout_ms: limits.ack_timeout_ms }
            }
            AckReadError::Io(source) => io_err(source),
        })?;
        let confirmed = match answer.as_deref() {
            None => false,
            Some(line) => match line.strip_prefix(ACK_PREFIX) {
                Some(rest) if rest == "ok" || rest.starts_with("ok ") => true,
                Some(rest) => {
                    let message = rest.strip_prefix("error ").unwrap_or(rest).to_string();
                    return Err(OutputError::Rejected { peer: peer.to_string(), message });
                }
                None => {
                    return Err(OutputError::Rejected {
                        peer: peer.to_string(),
                        message: format!("unexpected answer {line:?}"),
                    });
                }
            },
        };
        Ok(OutputSummary { kind: "tcp".into(), destination, bytes, confirmed, slow_device_emulation: None })
    }

    fn fork_fd(&mut self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        if self.bytes > 0 || !self.stream.buffer().is_empty() {
            return None;
        }
        Some(self.stream.get_ref().as_fd())
    }

    fn add_forked_bytes(&mut self, bytes: u64, _emulation: Option<super::SlowDeviceReport>) {
        self.bytes += bytes;
    }

    fn abort(self: Box<Self>) {
        // Reset rather than a clean close, so the receiver cannot mistake a truncated stream
        // for a finished one even before it checks the trailer.
        // into_parts, not into_inner: do not flush what is buffered into a stream we abandon.
        let (stream, _unsent) = self.stream.into_parts();
        reset_on_close(&stream);
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// SO_LINGER with a zero timeout: closing sends RST instead of FIN.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the fd is a live socket owned by `stream`; the option value is a valid `linger`
    // of the size passed. Failure only means a FIN instead of a RST, which is acceptable.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

enum AckReadError {
    Timeout,
    Io(std::io::Error),
}

/// Reads one answer line (at most [`ACK_BYTES_MAX`]) or EOF; `None` when the peer closed
/// without a word.
fn read_ack(stream: &mut TcpStream, timeout_ms: u64) -> Result<Option<String>, AckReadError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(1));
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AckReadError::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(AckReadError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                if answer.contains(&b'\n') || answer.len() >= ACK_BYTES_MAX {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(AckReadError::Timeout);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(AckReadError::Io(e)),
        }
    }
    if answer.is_empty() {
        return Ok(None);
    }
    answer.truncate(ACK_BYTES_MAX);
    let text = String::from_utf8_lossy(&answer);
    Ok(Some(text.lines().next().unwrap_or("").to_string()))
}
