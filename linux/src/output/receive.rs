//! The other side of a TCP output: accept one stream, check it as it arrives, store it
//! durably, acknowledge.

use super::target::{FileTarget, TargetError, TargetWriter};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wpsnap_format::{StreamSummary, VerifyReport};

/// First word of the receiver's one-line answer: `wpsnap-ack ok BYTES` or
/// `wpsnap-ack error MESSAGE`.
pub const ACK_PREFIX: &str = "wpsnap-ack ";
/// Longest answer line either side sends or reads.
pub(super) const ACK_BYTES_MAX: usize = 1024;
/// Read chunk from the socket: at most this much of a bad stream reaches the disk before its
/// header is checked.
const RECEIVE_CHUNK_BYTES: usize = 256 * 1024;
/// How often a non-blocking accept is retried, and how long one socket read may block, while
/// waiting for the sender: the cancel flag is looked at this often.
const POLL_MS: u64 = 10;
/// Socket read timeout once connected (the cancel flag and the idle limit are checked after
/// each).
const READ_POLL_MS: u64 = 100;
/// After a rejection, how long and how much of the rest of the sender's stream is read and
/// discarded so a sender that stops soon can still read the answer (closing with unread data
/// resets the connection); a sender that keeps going is cut off.
const REJECT_DRAIN_MS_MAX: u64 = 1_000;
const REJECT_DRAIN_BYTES_MAX: u64 = 1 << 20;

/// Bounds of one receive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveLimits {
    /// How long to wait for the sender to connect.
    pub accept_timeout_ms: u64,
    /// A connection silent for longer than this is abandoned.
    pub idle_timeout_ms: u64,
    /// Streams longer than this are refused (and the partial file left behind).
    pub bytes_max: u64,
}

impl Default for ReceiveLimits {
    fn default() -> Self {
        ReceiveLimits { accept_timeout_ms: 600_000, idle_timeout_ms: 60_000, bytes_max: 1 << 40 }
    }
}

/// What a successful receive stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiveReport {
    pub peer: String,
    /// The committed file.
    pub path: PathBuf,
    pub bytes: u64,
    pub duration_ms: u64,
    /// The verification of the stream (a `wpsnap_format::VerifyReport`): every record and
    /// checksum was checked as it arrived.
    pub verify: serde_json::Value,
    /// False if the sender had gone before the acknowledgement could be sent (the file is
    /// committed regardless).
    pub ack_sent: bool,
}

/// Why a receive failed. Whenever a connection was accepted, only `NAME.partial` is left.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("listening on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("no sender connected to {addr} within {timeout_ms} ms")]
    AcceptTimeout { addr: String, timeout_ms: u64 },
    #[error("accepting on {addr}: {source}")]
    Accept { addr: String, source: std::io::Error },
    #[error("the output {path} cannot be used: {source}")]
    Target { path: PathBuf, source: TargetError },
    #[error("creating {path}: {source}")]
    Create { path: PathBuf, source: super::OutputError },
    #[error("reading from {peer}: {source}")]
    Read { peer: String, source: std::io::Error },
    #[error("the sender {peer} sent nothing for {idle_ms} ms; gave up")]
    Idle { peer: String, idle_ms: u64 },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("stream from {peer} exceeds the limit of {bytes_max} bytes")]
    TooLarge { peer: String, bytes_max: u64 },
    #[error("stream from {peer} is not a complete, valid snapshot (dropped at byte {bytes}): {source}")]
    Verify { peer: String, bytes: u64, source: wpsnap_format::FormatError },
    #[error("committing {path}: {source}")]
    Commit { path: PathBuf, source: wpsnap_format::FormatError },
    #[error("cancelled")]
    Cancelled,
}

/// A bound listening socket, ready to receive one snapshot per [`Receiver::receive_one`].
pub struct Receiver {
    listener: TcpListener,
    addr: String,
}

impl Receiver {
    /// Binds `listen_addr` (`host:port`; port 0 picks a free port, see [`Receiver::local_addr`]).
    pub fn bind(listen_addr: &str) -> Result<Receiver, ReceiveError> {
        let bind_err = |source| ReceiveError::Bind { addr: listen_addr.to_string(), source };
        let listener = TcpListener::bind(listen_addr).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?.to_string();
        Ok(Receiver { listener, addr })
    }

    /// The bound address (with the port the system picked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ReceiveError> {
        self.listener.local_addr().map_err(|source| ReceiveError::Bind { addr: self.addr.clone(), source })
    }

    /// [`Receiver::receive_until`] without a cancel flag.
    pub fn receive_one(&self, out_path: &Path, limits: &ReceiveLimits) -> Result<ReceiveReport, ReceiveError> {
        self.receive_until(out_path, limits, &AtomicBool::new(false))
    }

    /// Accepts one sender and writes its stream to `out_path` (as `out_path.partial` for a
    /// regular file, see [`FileTarget`]), checking it as it arrives: a bad header or record
    /// drops the connection at once. Only a complete, valid stream is committed and answered
    /// `wpsnap-ack ok BYTES`; on any failure the sender gets `wpsnap-ack error ...` (if it is
    /// still there) and `out_path.partial` is left. `cancel` is looked at every few
    /// milliseconds while waiting and between reads; once set, the receive ends with
    /// [`ReceiveError::Cancelled`].
    pub fn receive_until(
        &self,
        out_path: &Path,
        limits: &ReceiveLimits,
        cancel: &AtomicBool,
    ) -> Result<ReceiveReport, ReceiveError> {
        let target =
            FileTarget::resolve(out_path).map_err(|source| ReceiveError::Target { path: out_path.into(), source })?;
        let started = Instant::now();
        let (mut stream, peer) = self.accept(limits, cancel)?;
        let peer = peer.to_string();
        let result = store_and_verify(&mut stream, &peer, &target, limits, cancel);
        let answer = match &result {
            Ok((bytes, _, _)) => format!("{ACK_PREFIX}ok {bytes}\n"),
            Err(e) => format!("{ACK_PREFIX}error {}\n", one_line(&e.to_string())),
        };
        let ack_sent = stream.write_all(answer.as_bytes()).and_then(|()| stream.flush()).is_ok();
        if result.is_err() {
            drain_after_rejection(&mut stream, cancel);
        }
        let (bytes, path, verify) = result?;
        Ok(ReceiveReport { peer, path, bytes, duration_ms: started.elapsed().as_millis() as u64, verify, ack_sent })
    }

    fn accept(&self, limits: &ReceiveLimits, cancel: &AtomicBool) -> Result<(TcpStream, SocketAddr), ReceiveError> {
        let accept_err = |source| ReceiveError::Accept { addr: self.addr.clone(), source };
        // Non-blocking accept polled until the deadline: std has no accept timeout.
        self.listener.set_nonblocking(true).map_err(accept_err)?;
        let deadline = Instant::now() + Duration::from_millis(limits.accept_timeout_ms);
        let accepted = loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(ReceiveError::Cancelled);
            }
            match self.listener.accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(ReceiveError::AcceptTimeout {
                            addr: self.addr.clone(),
                            timeout_ms: limits.accept_timeout_ms,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(POLL_MS));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(accept_err(e)),
            }
        };
        let (stream, peer) = accepted;
        stream.set_nonblocking(false).map_err(accept_err)?;
        stream.set_read_timeout(Some(Duration::from_millis(READ_POLL_MS))).map_err(accept_err)?;
        let idle = Some(Duration::from_millis(limits.idle_timeout_ms.max(1)));
        stream.set_write_timeout(idle).map_err(accept_err)?;
        Ok((stream, peer))
    }
}

/// [`Receiver::bind`] then [`Receiver::receive_until`] with default limits. The output path
/// is checked before the socket is bound.
pub fn receive(listen_addr: &str, out_path: &Path, cancel: &AtomicBool) -> Result<ReceiveReport, ReceiveError> {
    FileTarget::resolve(out_path).map_err(|source| ReceiveError::Target { path: out_path.into(), source })?;
    Receiver::bind(listen_addr)?.receive_until(out_path, &ReceiveLimits::default(), cancel)
}

/// The socket as a reader that copies every byte it hands out into the output file, and
/// turns silence, cancellation, size and disk trouble into a [`ReceiveError`] kept aside
/// (the format reader only sees an I/O error).
struct TeeToFile<'a> {
    stream: &'a mut TcpStream,
    file: &'a mut TargetWriter,
    peer: &'a str,
    limits: &'a ReceiveLimits,
    cancel: &'a AtomicBool,
    bytes: u64,
    failure: Option<ReceiveError>,
}

impl TeeToFile<'_> {
    fn fail(&mut self, e: ReceiveError) -> std::io::Error {
        let text = e.to_string();
        self.failure = Some(e);
        std::io::Error::other(text)
    }
}

impl Read for TeeToFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let quiet_since = Instant::now();
        let n = loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(self.fail(ReceiveError::Cancelled));
            }
            match self.stream.read(buf) {
                Ok(n) => break n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if quiet_since.elapsed() >= Duration::from_millis(self.limits.idle_timeout_ms) {
                        let idle =
                            ReceiveError::Idle { peer: self.peer.to_string(), idle_ms: self.limits.idle_timeout_ms };
                        return Err(self.fail(idle));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.fail(ReceiveError::Read { peer: self.peer.to_string(), source })),
            }
        };
        self.bytes += n as u64;
        if self.bytes > self.limits.bytes_max {
            let too_large = ReceiveError::TooLarge { peer: self.peer.to_string(), bytes_max: self.limits.bytes_max };
            return Err(self.fail(too_large));
        }
        if let Err(source) = self.file.write_all(&buf[..n]) {
            let path = self.file.writing_to().to_path_buf();
            return Err(self.fail(ReceiveError::Write { path, source }));
        }
        Ok(n)
    }
}

fn store_and_verify(
    stream: &mut TcpStream,
    peer: &str,
    target: &FileTarget,
    limits: &ReceiveLimits,
    cancel: &AtomicBool,
) -> Result<(u64, PathBuf, serde_json::Value), ReceiveError> {
    let mut file = TargetWriter::open(target, false)
        .map_err(|source| ReceiveError::Create { path: target.given.clone(), source })?;
    let mut tee = TeeToFile { stream, file: &mut file, peer, limits, cancel, bytes: 0, failure: None };
    let checked = check_stream(BufReader::with_capacity(RECEIVE_CHUNK_BYTES, &mut tee));
    let bytes = tee.bytes;
    if let Some(failure) = tee.failure.take() {
        return Err(failure);
    }
    let summary = checked.map_err(|source| ReceiveError::Verify { peer: peer.to_string(), bytes, source })?;
    let writing_to = file.writing_to().to_path_buf();
    file.flush().map_err(|source| ReceiveError::Write { path: writing_to, source })?;
    let path = file.commit().map_err(|source| ReceiveError::Commit { path: target.given.clone(), source })?;
    let verify = VerifyReport { path: path.clone(), summary, compared_with_raw: None };
    let verify = serde_json::to_value(&verify).unwrap_or(serde_json::Value::Null);
    Ok((bytes, path, verify))
}

/// Reads the whole stream through the format reader: the header as soon as it is in, every
/// record and checksum, the trailer, and nothing after it.
fn check_stream<R: Read>(src: R) -> Result<StreamSummary, wpsnap_format::FormatError> {
    wpsnap_format::verify_stream(src)
}

/// Reads and discards what the rejected sender still sends, for at most
/// [`REJECT_DRAIN_MS_MAX`] and [`REJECT_DRAIN_BYTES_MAX`], after closing our side, so it can
/// read the answer.
fn drain_after_rejection(stream: &mut TcpStream, cancel: &AtomicBool) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_millis(REJECT_DRAIN_MS_MAX);
    let mut sink = [0_u8; 64 * 1024];
    let mut drained: u64 = 0;
    while Instant::now() < deadline && drained < REJECT_DRAIN_BYTES_MAX && !cancel.load(Ordering::SeqCst) {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => drained += n as u64,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

fn one_line(text: &str) -> String {
    let limit = ACK_BYTES_MAX - ACK_PREFIX.len() - "error \n".len();
    let mut line = String::new();
    for c in text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }) {
        if line.len() + c.len_utf8() > limit {
            break;
        }
        line.push(c);
    }
    line
}
