//! TCP output and receiver on loopback: a verified snapshot is committed and acknowledged; a
//! truncated stream is refused on both sides and leaves only NAME.partial; errors name the peer.

use std::io::Write;
use std::path::PathBuf;
use std::thread;
use wpsnap_format::{Header, SnapshotWriter};
use wpsnap_linux::output::{Output, OutputError, ReceiveError, ReceiveLimits, Receiver, TcpLimits, TcpOutput};

const PAGE_SIZE: u64 = 4096;
const PAGE_COUNT: u64 = 64;

fn header() -> Header {
    Header::single(PAGE_SIZE, PAGE_COUNT, "test", 1, "{}".into())
}

fn region() -> Vec<u8> {
    // Every fourth page left zero, to cover zero-page records on the wire.
    (0..PAGE_SIZE * PAGE_COUNT).map(|i| if (i / PAGE_SIZE).is_multiple_of(4) { 0 } else { (i % 253) as u8 }).collect()
}

fn limits() -> ReceiveLimits {
    ReceiveLimits { accept_timeout_ms: 20_000, idle_timeout_ms: 20_000, bytes_max: 16 << 20 }
}

fn tcp_limits() -> TcpLimits {
    TcpLimits { connect_timeout_ms: 5_000, write_timeout_ms: 20_000, ack_timeout_ms: 20_000 }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-tcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn snapshot_over_loopback_is_verified_committed_and_acknowledged() {
    let dir = scratch("ok");
    let out_path = dir.join("received.wps");
    let receiver = Receiver::bind("127.0.0.1:0").expect("bind");
    let addr = receiver.local_addr().expect("addr").to_string();
    let receiving = {
        let out_path = out_path.clone();
        thread::spawn(move || receiver.receive_one(&out_path, &limits()))
    };
    let region = region();
    let out: Box<dyn Output> = Box::new(TcpOutput::connect(&addr, &tcp_limits()).expect("connect"));
    let mut w = SnapshotWriter::new(out, &header()).expect("header");
    for i in 0..PAGE_COUNT {
        let at = (i * PAGE_SIZE) as usize;
        w.write_page(i, &region[at..at + PAGE_SIZE as usize]).expect("page");
    }
    let summary = w.finish("{\"test\":true}").expect("trailer").commit().expect("commit");
    assert!(summary.confirmed, "receiver acknowledged");
    assert_eq!(summary.kind, "tcp");
    let report = receiving.join().expect("receiver thread").expect("receive");
    assert_eq!(report.bytes, summary.bytes);
    assert!(report.ack_sent);
    assert_eq!(report.path, out_path);
    assert!(!dir.join("received.wps.partial").exists());
    let mut back = vec![1_u8; region.len()];
    wpsnap_format::load_into(&out_path, &mut back).expect("load");
    assert_eq!(back, region);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_stream_is_refused_and_leaves_only_the_partial() {
    let dir = scratch("truncated");
    let out_path = dir.join("received.wps");
    let receiver = Receiver::bind("127.0.0.1:0").expect("bind");
    let addr = receiver.local_addr().expect("addr").to_string();
    let receiving = {
        let out_path = out_path.clone();
        thread::spawn(move || receiver.receive_one(&out_path, &limits()))
    };
    // A complete snapshot in memory, of which only the first half is sent.
    let region = region();
    let mut w = SnapshotWriter::new(Vec::new(), &header()).expect("header");
    for i in 0..PAGE_COUNT {
        let at = (i * PAGE_SIZE) as usize;
        w.write_page(i, &region[at..at + PAGE_SIZE as usize]).expect("page");
    }
    let bytes = w.finish("{}").expect("trailer");
    let mut out: Box<dyn Output> = Box::new(TcpOutput::connect(&addr, &tcp_limits()).expect("connect"));
    out.write_all(&bytes[..bytes.len() / 2]).expect("write");
    let sent = out.commit();
    let received = receiving.join().expect("receiver thread");
    assert!(matches!(received, Err(ReceiveError::Verify { .. })), "{received:?}");
    match sent {
        Err(e @ OutputError::Rejected { .. }) => assert!(e.to_string().contains(&addr), "names the peer: {e}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!out_path.exists(), "nothing under the final name");
    assert!(dir.join("received.wps.partial").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejection_reaches_the_sender_with_the_peer_named() {
    let dir = scratch("rejected");
    let out_path = dir.join("received.wps");
    let receiver = Receiver::bind("127.0.0.1:0").expect("bind");
    let addr = receiver.local_addr().expect("addr").to_string();
    let receiving = {
        let out_path = out_path.clone();
        thread::spawn(move || receiver.receive_one(&out_path, &limits()))
    };
    let mut out: Box<dyn Output> = Box::new(TcpOutput::connect(&addr, &tcp_limits()).expect("connect"));
    out.write_all(&[0xAB; 5000]).expect("write garbage");
    match out.commit() {
        Err(e @ OutputError::Rejected { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&addr), "{text}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(receiving.join().expect("receiver thread").is_err());
    assert!(!out_path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loopback port that refuses connections by construction: a TCP socket bound to it that
/// never listens. While it lives, no other socket can bind the port (a port merely bound and
/// dropped could be taken by anything on the machine) and no connect picks it as its own source
/// port (which would make a TCP self-connect succeed).
struct RefusingPort {
    _socket: std::os::fd::OwnedFd,
    port: u16,
}

impl RefusingPort {
    fn bind() -> RefusingPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh socket that nothing else owns.
        let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mut addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_in of `len` bytes for both calls.
        let bound = unsafe { libc::bind(fd, (&raw const addr).cast(), len) };
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        // SAFETY: as above; getsockname writes at most `len` bytes into `addr`.
        let named = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) };
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        RefusingPort { _socket: socket, port: u16::from_be(addr.sin_port) }
    }
}

#[test]
fn connection_refused_names_the_peer() {
    let refusing = RefusingPort::bind();
    let addr = format!("127.0.0.1:{}", refusing.port);
    match TcpOutput::connect(&addr, &tcp_limits()) {
        Err(e @ OutputError::Connect { .. }) => assert!(e.to_string().contains(&addr), "{e}"),
        Err(other) => panic!("expected Connect, got {other}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[test]
fn receiver_gives_up_when_no_sender_comes() {
    let receiver = Receiver::bind("127.0.0.1:0").expect("bind");
    let dir = scratch("accept-timeout");
    let limits = ReceiveLimits { accept_timeout_ms: 50, ..limits() };
    let result = receiver.receive_one(&dir.join("x.wps"), &limits);
    assert!(matches!(result, Err(ReceiveError::AcceptTimeout { .. })), "{result:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plain_peer_without_acknowledgement_gives_an_unconfirmed_commit() {
    // A listener that reads everything and closes without answering, like `nc -l > file`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let sink = thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
        std::io::copy(&mut s, &mut std::io::sink())
    });
    let mut out: Box<dyn Output> = Box::new(TcpOutput::connect(&addr, &tcp_limits()).expect("connect"));
    out.write_all(&[1_u8; 100_000]).expect("write");
    let summary = out.commit().expect("commit");
    assert!(!summary.confirmed);
    assert_eq!(summary.bytes, 100_000);
    assert_eq!(sink.join().expect("sink thread").expect("copy"), 100_000);
}
