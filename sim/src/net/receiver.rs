//! The receiving host: accepts one stream, writes it to its disk (memory here),
//! acknowledges what it has, then verifies the file and says so.

use super::{PORT, page_bytes};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpListener;

/// The receiver acknowledges at least every this many bytes.
pub const ACK_EVERY_BYTES: u64 = 16 * 1024;
/// Acknowledgement tags (one byte, then a little-endian u64).
pub const ACK_PROGRESS: u8 = 0;
/// The file is complete and verified.
pub const ACK_VERIFIED: u8 = 1;
/// The file is complete but failed verification.
pub const ACK_REJECTED: u8 = 2;
/// The largest file the receiver accepts (a bound, so a broken sender cannot exhaust it).
const FILE_BYTES_MAX: u64 = 1 << 30;

/// What the receiver did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiverResult {
    pub bytes: u64,
    pub verified: bool,
    pub pages: u64,
    pub error: Option<String>,
}

pub(super) async fn serve(result: Rc<RefCell<Option<ReceiverResult>>>, disk: Rc<RefCell<Vec<u8>>>) -> turmoil::Result {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    let (mut stream, _) = listener.accept().await?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut acked = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let len = {
            let mut file = disk.borrow_mut();
            file.extend_from_slice(&buf[..n]);
            file.len() as u64
        };
        if len > FILE_BYTES_MAX {
            return Err("stream larger than the receiver's bound".into());
        }
        if len - acked >= ACK_EVERY_BYTES {
            send_ack(&mut stream, ACK_PROGRESS, len).await?;
            acked = len;
        }
        // The sender's last bytes are a complete file; it then waits for the verdict
        // without closing, so check for completeness as bytes arrive.
        let verdict = {
            let file = disk.borrow();
            verify(&file)
        };
        if let Some(verdict) = verdict {
            let tag = if verdict.verified { ACK_VERIFIED } else { ACK_REJECTED };
            send_ack(&mut stream, tag, len).await?;
            *result.borrow_mut() = Some(verdict);
            return Ok(());
        }
    }
    let file_len = disk.borrow().len() as u64;
    *result.borrow_mut() =
        Some(ReceiverResult { bytes: file_len, verified: false, pages: 0, error: Some("stream ended early".into()) });
    Ok(())
}

async fn send_ack(stream: &mut turmoil::net::TcpStream, tag: u8, bytes: u64) -> std::io::Result<()> {
    let mut msg = [0u8; 9];
    msg[0] = tag;
    msg[1..].copy_from_slice(&bytes.to_le_bytes());
    stream.write_all(&msg).await
}

/// `Some` once the file is complete (verified or not), `None` while it is still partial.
fn verify(file: &[u8]) -> Option<ReceiverResult> {
    let mut reader = match wpsnap_format::read_snapshot(file) {
        Ok(r) => r,
        Err(e) if e.is_incomplete() => return None,
        Err(e) => return Some(rejected(file, e.to_string())),
    };
    loop {
        match reader.next_page() {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Some(ReceiverResult {
                    bytes: file.len() as u64,
                    verified: true,
                    pages: reader.pages_read(),
                    error: None,
                });
            }
            Err(e) if e.is_incomplete() => return None,
            Err(e) => return Some(rejected(file, e.to_string())),
        }
    }
}

fn rejected(file: &[u8], error: String) -> ReceiverResult {
    ReceiverResult { bytes: file.len() as u64, verified: false, pages: 0, error: Some(error) }
}

/// Does the received file hold, for every page, its content at the snapshot instant?
pub(super) fn image_matches(file: &[u8], instant_versions: &[u32]) -> bool {
    let Ok(mut reader) = wpsnap_format::read_snapshot(file) else { return false };
    let Some(page_size) = reader.header().uniform_page_size() else { return false };
    let page_size = page_size as usize;
    let mut seen = vec![false; instant_versions.len()];
    loop {
        match reader.next_page() {
            Ok(Some(record)) => {
                let index = record.index as usize;
                let Some(&version) = instant_versions.get(index) else { return false };
                let expected = page_bytes(record.index, version, page_size);
                let matches = match record.data {
                    Some(data) => data == expected.as_slice(),
                    None => expected.iter().all(|&b| b == 0),
                };
                if !matches || seen[index] {
                    return false;
                }
                seen[index] = true;
            }
            Ok(None) => return seen.iter().all(|&s| s),
            Err(_) => return false,
        }
    }
}
