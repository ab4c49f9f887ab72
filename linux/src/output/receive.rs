//! The other side of a TCP output: accept one stream, store it durably, verify, acknowledge.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wpsnap_format::DurableFile;

/// First word of the receiver's one-line answer: `wpsnap-ack ok BYTES` or
/// `wpsnap-ack error MESSAGE`.
pub const ACK_PREFIX: &str = "wpsnap-ack ";
/// Longest answer line either side sends or reads.
pub(super) const ACK_BYTES_MAX: usize = 1024;
/// Read chunk from the socket.
const RECEIVE_CHUNK_BYTES: usize = 256 * 1024;
/// How often a non-blocking accept is retried while waiting for the sender.
const ACCEPT_POLL_MS: u64 = 10;

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
    /// `wpsnap_format::verify_file`'s report on the received file.
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
    #[error("creating {path}: {source}")]
    Create { path: PathBuf, source: wpsnap_format::FormatError },
    #[error("reading from {peer}: {source}")]
    Read { peer: String, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("stream from {peer} exceeds the limit of {bytes_max} bytes")]
    TooLarge { peer: String, bytes_max: u64 },
    #[error("stream from {peer} is not a complete, valid snapshot ({path} kept): {source}")]
    Verify { peer: String, path: PathBuf, source: wpsnap_format::FormatError },
    #[error("committing {path}: {source}")]
    Commit { path: PathBuf, source: wpsnap_format::FormatError },
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

    /// Accepts one sender, writes its stream to `out_path.partial`, verifies the complete file
    /// and only then commits it to `out_path` and answers `wpsnap-ack ok BYTES`. On any failure
    /// the sender gets `wpsnap-ack error ...` (if it is still there) and `out_path.partial` is
    /// left for inspection.
    pub fn receive_one(&self, out_path: &Path, limits: &ReceiveLimits) -> Result<ReceiveReport, ReceiveError> {
        let started = Instant::now();
        let (mut stream, peer) = self.accept(limits)?;
        let peer = peer.to_string();
        let result = store_and_verify(&mut stream, &peer, out_path, limits);
        let answer = match &result {
            Ok((bytes, _, _)) => format!("{ACK_PREFIX}ok {bytes}\n"),
            Err(e) => format!("{ACK_PREFIX}error {}\n", one_line(&e.to_string())),
        };
        let ack_sent = stream.write_all(answer.as_bytes()).and_then(|()| stream.flush()).is_ok();
        let (bytes, path, verify) = result?;
        Ok(ReceiveReport { peer, path, bytes, duration_ms: started.elapsed().as_millis() as u64, verify, ack_sent })
    }

    fn accept(&self, limits: &ReceiveLimits) -> Result<(TcpStream, SocketAddr), ReceiveError> {
        let accept_err = |source| ReceiveError::Accept { addr: self.addr.clone(), source };
        // Non-blocking accept polled until the deadline: std has no accept timeout.
        self.listener.set_nonblocking(true).map_err(accept_err)?;
        let deadline = Instant::now() + Duration::from_millis(limits.accept_timeout_ms);
        let accepted = loop {
            match self.listener.accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(ReceiveError::AcceptTimeout {
                            addr: self.addr.clone(),
                            timeout_ms: limits.accept_timeout_ms,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(accept_err(e)),
            }
        };
        let (stream, peer) = accepted;
        stream.set_nonblocking(false).map_err(accept_err)?;
        let idle = Some(Duration::from_millis(limits.idle_timeout_ms.max(1)));
        stream.set_read_timeout(idle).map_err(accept_err)?;
        stream.set_write_timeout(idle).map_err(accept_err)?;
        Ok((stream, peer))
    }
}

/// Binds `listen_addr`, receives one snapshot into `out_path` with default limits.
pub fn receive(listen_addr: &str, out_path: &Path) -> Result<ReceiveReport, ReceiveError> {
    Receiver::bind(listen_addr)?.receive_one(out_path, &ReceiveLimits::default())
}

fn store_and_verify(
    stream: &mut TcpStream,
    peer: &str,
    out_path: &Path,
    limits: &ReceiveLimits,
) -> Result<(u64, PathBuf, serde_json::Value), ReceiveError> {
    let mut file = DurableFile::create(out_path, false)
        .map_err(|source| ReceiveError::Create { path: out_path.to_path_buf(), source })?;
    let partial = file.partial_path().to_path_buf();
    let write_err = |source| ReceiveError::Write { path: partial.clone(), source };
    let mut chunk = vec![0_u8; RECEIVE_CHUNK_BYTES];
    let mut bytes: u64 = 0;
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ReceiveError::Read { peer: peer.to_string(), source }),
        };
        bytes += n as u64;
        if bytes > limits.bytes_max {
            return Err(ReceiveError::TooLarge { peer: peer.to_string(), bytes_max: limits.bytes_max });
        }
        file.write_all(&chunk[..n]).map_err(write_err)?;
    }
    file.flush().map_err(write_err)?;
    // The sender's clean close says nothing about completeness: the trailer does.
    let verify = wpsnap_format::verify_file(&partial, None).map_err(|source| ReceiveError::Verify {
        peer: peer.to_string(),
        path: partial.clone(),
        source,
    })?;
    let verify = serde_json::to_value(&verify).unwrap_or(serde_json::Value::Null);
    let path = file.commit().map_err(|source| ReceiveError::Commit { path: out_path.to_path_buf(), source })?;
    Ok((bytes, path, verify))
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
