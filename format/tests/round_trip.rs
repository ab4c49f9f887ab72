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
