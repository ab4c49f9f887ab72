//! Helpers shared by the integration tests.
#![allow(dead_code)]

use wpsnap_format::{Header, SnapshotWriter};

/// A header for `page_count` 4 KiB pages.
pub fn header(page_count: u64) -> Header {
    Header::single(4096, page_count, "anonymous", 1_764_000_000_000_000_000, "{\"model\":\"test\"}".into())
}

/// Deterministic, page-specific, non-zero contents.
pub fn page_bytes(index: u64, page_size: usize) -> Vec<u8> {
    (0..page_size).map(|i| ((i as u64 * 31 + index * 7 + 1) % 251) as u8 + 1).collect()
}

/// A complete snapshot of pages written in `order`; pages where `zero(i)` are all zero.
pub fn write_snapshot(h: &Header, order: &[u64], zero: impl Fn(u64) -> bool, report: &str) -> Vec<u8> {
    let mut w = SnapshotWriter::new(Vec::new(), h).expect("header");
    let layout = h.layout();
    for &i in order {
        let page_size = layout.locate(i).expect("page in the layout").page_size as usize;
        let data = if zero(i) { vec![0u8; page_size] } else { page_bytes(i, page_size) };
        w.write_page(i, &data).expect("page");
    }
    w.finish(report).expect("finish")
}

pub mod raw;

use wpsnap_format::{FormatError, read_snapshot};

/// Reads a whole snapshot from bytes.
pub fn read_all(bytes: &[u8]) -> Result<(), FormatError> {
    let mut r = read_snapshot(bytes)?;
    while r.next_page()?.is_some() {}
    Ok(())
}
