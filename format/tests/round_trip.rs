//! Write then read back: contents, zero pages, any order, counts, stored texts.

mod common;

use common::{header, page_bytes, write_snapshot};
use wpsnap_format::{FormatError, PAGE_RECORD_HEADER_BYTES, SnapshotWriter, read_snapshot, verify_stream};

#[test]
fn pages_in_any_order_round_trip_with_zero_pages_stored_without_data() {
    let h = header(8);
    let order = [5u64, 0, 7, 2, 1, 6, 3, 4];
    let zero = |i: u64| i.is_multiple_of(3);
    let bytes = write_snapshot(&h, &order, zero, "{\"ok\":true}");
    let mut r = read_snapshot(&bytes[..]).expect("header");
    assert_eq!(r.header(), &h);
    let mut got = Vec::new();
    while let Some(p) = r.next_page().expect("page") {
        match p.data {
            Some(d) => assert_eq!(d, &page_bytes(p.index, 4096)[..]),
            None => assert!(zero(p.index), "page {} stored as zero", p.index),
        }
        got.push(p.index);
    }
    assert_eq!(got, order);
    let t = r.trailer().expect("trailer");
    assert_eq!((t.page_records, t.zero_pages), (8, 3));
    assert_eq!(t.report_json, "{\"ok\":true}");
    // Zero pages carry no data: 5 data pages, 8 record headers.
    let expected = h.encoded_len() as usize + 8 * PAGE_RECORD_HEADER_BYTES + 5 * 4096 + 32 + 11 + 4 + 8;
    assert_eq!(bytes.len(), expected);
    assert_eq!(verify_stream(&bytes[..]).expect("verify").stream_bytes, expected as u64);
}

#[test]
fn writer_rejects_wrong_length_out_of_range_duplicates_and_missing_pages() {
    let h = header(4);
    let mut w = SnapshotWriter::new(Vec::new(), &h).expect("header");
    let page = vec![1u8; 4096];
    assert!(matches!(w.write_page(0, &page[..100]), Err(FormatError::WrongPageLength { index: 0, len: 100, .. })));
    assert!(matches!(w.write_page(4, &page), Err(FormatError::PageIndexOutOfRange { index: 4, .. })));
    w.write_page(2, &page).expect("first write");
    assert!(matches!(w.write_page(2, &page), Err(FormatError::DuplicatePage { index: 2, .. })));
    w.write_page(0, &page).expect("still usable after rejected calls");
    assert_eq!(w.pages_written(), 2);
    match w.finish("{}") {
        Err(FormatError::MissingPages { missing: 2, first_missing: 1, .. }) => {}
        other => panic!("expected MissingPages, got {other:?}"),
    }
}

/// A sink that accepts `left` bytes, then fails like a full disk.
struct FailAfter {
    left: usize,
}

impl std::io::Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_sink_is_reported_and_poisons_the_writer() {
    let h = header(4);
    let page = vec![3u8; 4096];
    let mut w = SnapshotWriter::new(FailAfter { left: h.encoded_len() as usize + 5000 }, &h).expect("header fits");
    w.write_page(0, &page).expect("first page fits");
    match w.write_page(1, &page) {
        Err(FormatError::Io { context, source }) => {
            assert!(context.contains("page"), "{context}");
            assert_eq!(source.raw_os_error(), Some(28));
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(matches!(w.write_page(2, &page), Err(FormatError::Poisoned { what: "writer" })));
    assert!(matches!(w.finish("{}"), Err(FormatError::Poisoned { .. })));
    assert!(matches!(SnapshotWriter::new(FailAfter { left: 3 }, &h), Err(FormatError::Io { .. })));
}

#[test]
fn the_writer_refuses_invalid_headers() {
    let mut h = header(4);
    h.regions[0].len += 1;
    assert!(matches!(SnapshotWriter::new(Vec::new(), &h), Err(FormatError::InvalidHeader { .. })));
    let mut h = header(4);
    h.regions[0].backing = "x".repeat(wpsnap_format::BACKING_LEN_MAX as usize + 1);
    assert!(matches!(SnapshotWriter::new(Vec::new(), &h), Err(FormatError::InvalidHeader { .. })));
    let mut w = SnapshotWriter::new(Vec::new(), &header(1)).expect("header");
    w.write_page(0, &[0u8; 4096]).expect("page");
    let report = " ".repeat(wpsnap_format::REPORT_JSON_LEN_MAX as usize + 1);
    assert!(matches!(w.finish(&report), Err(FormatError::LengthTooLarge { field: "report_json_len", .. })));
}

#[test]
fn crc32c_is_the_castagnoli_polynomial_documented() {
    // The check value quoted in docs/format.md.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn digested_pages_give_the_same_bytes_as_plain_writes() {
    use wpsnap_format::PageDigest;
    let h = header(4);
    let pages: Vec<Vec<u8>> = (0..4).map(|i| if i == 2 { vec![0; 4096] } else { page_bytes(i, 4096) }).collect();
    let plain = write_snapshot(&h, &[0, 1, 2, 3], |i| i == 2, "{}");
    let mut w = SnapshotWriter::new(Vec::new(), &h).expect("header");
    let digests: Vec<PageDigest> = pages.iter().enumerate().map(|(i, p)| PageDigest::of(i as u64, p)).collect();
    assert!(digests[2].is_zero() && !digests[0].is_zero());
    assert!(matches!(
        w.write_page_digested(1, &pages[1], &digests[0]),
        Err(FormatError::DigestMismatch { index: 1, digest_index: 0 })
    ));
    for (i, p) in pages.iter().enumerate() {
        w.write_page_digested(i as u64, p, &digests[i]).expect("page");
    }
    assert_eq!(w.finish("{}").expect("finish"), plain);
}

/// A sink whose flush fails (a stream whose reader went away).
struct FailingFlush(Vec<u8>);

impl std::io::Write for FailingFlush {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

#[test]
fn a_failed_flush_is_reported_and_poisons_the_writer() {
    let h = header(2);
    let page = vec![5u8; 4096];
    let mut w = SnapshotWriter::new(FailingFlush(Vec::new()), &h).expect("header");
    w.write_page(0, &page).expect("buffered");
    assert!(matches!(w.flush(), Err(FormatError::Io { .. })));
    assert!(matches!(w.write_page(1, &page), Err(FormatError::Poisoned { .. })));
    assert!(matches!(w.finish("{}"), Err(FormatError::Poisoned { .. })));
}

/// A writer that takes at most `step` bytes per call, vectored or not, so short writes occur.
struct Trickle {
    out: Vec<u8>,
    step: usize,
}

impl std::io::Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let mut left = self.step;
        for b in bufs {
            let n = b.len().min(left);
            self.out.extend_from_slice(&b[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        Ok(self.step - left)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn vectored_runs_write_the_same_bytes_as_page_by_page() {
    use wpsnap_format::{DigestedRun, PageDigest};
    let h = header(700);
    // Page data with every 5th page all zero (stored without data).
    let data: Vec<u8> =
        (0..700u64).flat_map(|i| if i % 5 == 0 { vec![0u8; 4096] } else { page_bytes(i, 4096) }).collect();
    let digests: Vec<PageDigest> = (0..700u64).map(|i| PageDigest::of(i, &data[i as usize * 4096..][..4096])).collect();
    // Runs out of order and of uneven lengths, one batch of more than 1024 slices.
    let cuts = [(600u64, 700u64), (0, 3), (3, 4), (4, 600)];
    for step in [1_000_000, 4099, 7] {
        let mut vectored = SnapshotWriter::new(Trickle { out: Vec::new(), step }, &h).expect("header");
        let run = |&(a, b): &(u64, u64)| DigestedRun {
            first: a,
            data: &data[a as usize * 4096..b as usize * 4096],
            digests: &digests[a as usize..b as usize],
        };
        vectored.write_runs_digested(&[run(&cuts[0]), run(&cuts[1])]).expect("runs");
        vectored.write_runs_digested(&[run(&cuts[2]), run(&cuts[3])]).expect("runs");
        assert_eq!(vectored.pages_written(), 700);
        assert_eq!(vectored.zero_pages_written(), 140);
        let got = vectored.finish("{}").expect("trailer").out;
        let mut reference = SnapshotWriter::new(Vec::new(), &h).expect("header");
        for &(a, b) in &cuts {
            for i in a..b {
                reference
                    .write_page_digested(i, &data[i as usize * 4096..][..4096], &digests[i as usize])
                    .expect("page");
            }
        }
        assert_eq!(got, reference.finish("{}").expect("trailer"), "step {step}");
        assert_eq!(verify_stream(&got[..]).expect("verify").stream_bytes, got.len() as u64);
    }
}

#[test]
fn vectored_runs_refuse_overlaps_duplicates_and_stale_digests_before_writing() {
    use wpsnap_format::{DigestedRun, PageDigest};
    let h = header(8);
    let data: Vec<u8> = (0..8u64).flat_map(|i| page_bytes(i, 4096)).collect();
    let digests: Vec<PageDigest> = (0..8u64).map(|i| PageDigest::of(i, &data[i as usize * 4096..][..4096])).collect();
    let run =
        |a: usize, b: usize| DigestedRun { first: a as u64, data: &data[a * 4096..b * 4096], digests: &digests[a..b] };
    let mut w = SnapshotWriter::new(Vec::new(), &h).expect("header");
    let before = w.bytes_written();
    assert!(matches!(w.write_runs_digested(&[run(0, 4), run(3, 6)]), Err(FormatError::DuplicatePage { index: 3, .. })));
    let shifted = DigestedRun { first: 1, data: &data[..4096], digests: &digests[..1] };
    assert!(matches!(w.write_runs_digested(&[shifted]), Err(FormatError::DigestMismatch { index: 1, .. })));
    let short = DigestedRun { first: 0, data: &data[..100], digests: &digests[..1] };
    assert!(matches!(w.write_runs_digested(&[short]), Err(FormatError::WrongPageLength { .. })));
    assert_eq!(w.bytes_written(), before, "nothing written");
    w.write_runs_digested(&[run(0, 8)]).expect("all pages");
    assert!(matches!(w.write_runs_digested(&[run(2, 3)]), Err(FormatError::DuplicatePage { index: 2, .. })));
    w.finish("{}").expect("complete");
}
