//! Every class of damaged input gives its own error, with the right byte offset, and never a
//! panic. Files are built with the writer or with the independent encoder in `common::raw`.

mod common;

use common::{raw, read_all, write_snapshot};
use wpsnap_format::{
    BACKING_LEN_MAX, CONFIG_JSON_LEN_MAX, FormatError, Header, PAGE_COUNT_MAX, REPORT_JSON_LEN_MAX, RegionEntry,
    read_snapshot,
};

fn small_file() -> Vec<u8> {
    write_snapshot(&common::header(3), &[2, 0, 1], |i| i == 1, "{\"r\":1}")
}

/// The same three pages as `small_file`, in a version-1 file from the independent encoder.
fn small_file_v1() -> Vec<u8> {
    let (d2, d0) = (common::page_bytes(2, 4096), common::page_bytes(0, 4096));
    let hdr = raw::header(1, 0, 4096, 3, 3 * 4096, b"anonymous", b"{}");
    raw::file(hdr, &[raw::page(2, Some(&d2)), raw::page(0, Some(&d0)), raw::page(1, None)], 1)
}

/// Two regions (2 + 1 pages of 4 KiB) at known addresses, pages in any order.
fn two_region_file() -> Vec<u8> {
    let h = Header {
        regions: vec![
            RegionEntry { start: 0x7f00_0000_0000, len: 2 * 4096, page_size: 4096, backing: "anonymous".into() },
            RegionEntry { start: 0x7f00_1000_0000, len: 4096, page_size: 4096, backing: "memfd".into() },
        ],
        created_unix_ns: 9,
        config_json: "{}".into(),
    };
    write_snapshot(&h, &[2, 0, 1], |i| i == 1, "{}")
}

#[test]
fn the_independent_encoder_matches_the_writer_byte_for_byte() {
    let data = |i| common::page_bytes(i, 4096);
    let h = common::header(3);
    let ours = write_snapshot(&h, &[2, 0, 1], |i| i == 1, "{}");
    let entry = raw::Entry { start: 0, len: 3 * 4096, page_size: 4096, flags: 0, backing: b"anonymous" };
    let hdr = raw::header_v2(2, 0, h.created_unix_ns, &[entry], b"{\"model\":\"test\"}");
    let d2 = data(2);
    let d0 = data(0);
    let theirs = raw::file(hdr, &[raw::page(2, Some(&d2)), raw::page(0, Some(&d0)), raw::page(1, None)], 1);
    assert_eq!(ours, theirs);
    // Two regions: page indices run over both, in table order.
    let ours = two_region_file();
    let entries = [
        raw::Entry { start: 0x7f00_0000_0000, len: 2 * 4096, page_size: 4096, flags: 0, backing: b"anonymous" },
        raw::Entry { start: 0x7f00_1000_0000, len: 4096, page_size: 4096, flags: 0, backing: b"memfd" },
    ];
    let hdr = raw::header_v2(2, 0, 9, &entries, b"{}");
    let theirs = raw::file(hdr, &[raw::page(2, Some(&d2)), raw::page(0, Some(&d0)), raw::page(1, None)], 1);
    assert_eq!(ours, theirs);
}

#[test]
fn truncation_at_every_offset_is_reported_as_incomplete_at_that_offset() {
    for (name, file) in [("v2", small_file()), ("v1", small_file_v1()), ("two regions", two_region_file())] {
        assert!(read_all(&file).is_ok(), "{name}");
        for cut in 0..file.len() {
            match read_all(&file[..cut]) {
                Err(FormatError::Truncated { offset, .. }) => assert_eq!(offset, cut as u64, "{name}: cut at {cut}"),
                other => panic!("{name}: cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn flipping_any_single_bit_is_detected() {
    for (name, file) in [("v2", small_file()), ("v1", small_file_v1()), ("two regions", two_region_file())] {
        let mut damaged = file.clone();
        for byte in 0..file.len() {
            for bit in 0..8 {
                damaged[byte] ^= 1 << bit;
                let result = read_all(&damaged);
                assert!(result.is_err(), "{name}: flip of bit {bit} of byte {byte} went unnoticed");
                damaged[byte] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn bad_magic_version_and_flags() {
    let mut f = small_file();
    f[0] = b'X';
    assert!(matches!(read_all(&f), Err(FormatError::BadMagic { offset: 0, .. })));
    let f = raw::header(3, 0, 4096, 1, 4096, b"", b"");
    assert!(matches!(read_all(&f), Err(FormatError::UnsupportedVersion { offset: 8, found: 3, supported: 2 })));
    let f = raw::header(1, 4, 4096, 1, 4096, b"", b"");
    assert!(matches!(read_all(&f), Err(FormatError::BadFlags { offset: 12, what: "header", flags: 4 })));
    let f = raw::header_v2(2, 4, 0, &[raw::entry(0, 1)], b"");
    assert!(matches!(read_all(&f), Err(FormatError::BadFlags { offset: 12, what: "header", flags: 4 })));
}

#[test]
fn a_version_1_file_reads_as_one_region_without_an_address() {
    let f = small_file_v1();
    let mut r = read_snapshot(&f[..]).expect("header");
    assert_eq!(r.format_version(), 1);
    assert_eq!(
        r.header().regions,
        vec![RegionEntry { start: 0, len: 3 * 4096, page_size: 4096, backing: "anonymous".into() }]
    );
    let mut seen = Vec::new();
    while let Some(p) = r.next_page().expect("page") {
        assert_eq!(p.location.image_offset, p.index * 4096);
        seen.push(p.index);
    }
    assert_eq!(seen, vec![2, 0, 1]);
}

#[test]
fn region_table_errors() {
    let field = |f: &[u8]| match read_all(f) {
        Err(FormatError::BadHeaderField { field, offset, .. }) => (field, offset),
        other => panic!("expected BadHeaderField, got {other:?}"),
    };
    // Fixed part 32 bytes, then entries of 32 bytes + backing.
    assert_eq!(field(&raw::header_v2(2, 0, 0, &[], b"")), ("region_count", 24));
    let e = |start, len, page_size| raw::Entry { start, len, page_size, flags: 0, backing: b"" };
    assert_eq!(field(&raw::header_v2(2, 0, 0, &[e(0, 4096, 4095)], b"")), ("page_size", 32 + 16));
    assert_eq!(field(&raw::header_v2(2, 0, 0, &[e(0, 0, 4096)], b"")), ("region_len", 32 + 8));
    assert_eq!(field(&raw::header_v2(2, 0, 0, &[e(0, 4097, 4096)], b"")), ("region_len", 32 + 8));
    assert_eq!(field(&raw::header_v2(2, 0, 0, &[e(0x1001, 4096, 4096)], b"")), ("region_start", 32));
    assert_eq!(field(&raw::header_v2(2, 0, 0, &[e(0, 4096, 4096), e(0, 8192, 1 << 31)], b"")), ("page_size", 64 + 16));
    // Overlapping known addresses.
    assert_eq!(
        field(&raw::header_v2(2, 0, 0, &[e(0x10000, 8192, 4096), e(0x11000, 4096, 4096)], b"")).0,
        "region_start"
    );
    let mut flagged = raw::entry(0, 1);
    flagged.flags = 1;
    assert!(matches!(
        read_all(&raw::header_v2(2, 0, 0, &[flagged], b"")),
        Err(FormatError::BadFlags { offset: 60, what: "region entry", flags: 1 })
    ));
    let big = raw::Entry { start: 0, len: 4096, page_size: 4096, flags: 0, backing: &[b'x'; 5000] };
    assert!(matches!(
        read_all(&raw::header_v2(2, 0, 0, &[big], b"")),
        Err(FormatError::LengthTooLarge { offset: 56, field: "backing_len", .. })
    ));
}

#[test]
fn pages_of_each_region_have_that_region_s_size() {
    // Region 0: one 4 KiB page; region 1: one 2 MiB page.
    let h = Header {
        regions: vec![
            RegionEntry { start: 0x20_0000_0000, len: 4096, page_size: 4096, backing: "anonymous".into() },
            RegionEntry { start: 0x30_0000_0000, len: 2 << 20, page_size: 2 << 20, backing: "hugetlbfs".into() },
        ],
        created_unix_ns: 1,
        config_json: "{}".into(),
    };
    let mut w = wpsnap_format::SnapshotWriter::new(Vec::new(), &h).expect("header");
    assert!(matches!(
        w.write_page(1, &[1u8; 4096]),
        Err(FormatError::WrongPageLength { index: 1, page_size: 2097152, .. })
    ));
    w.write_page(1, &vec![7u8; 2 << 20]).expect("huge page");
    w.write_page(0, &[3u8; 4096]).expect("small page");
    let file = w.finish("{}").expect("finish");
    let mut r = read_snapshot(&file[..]).expect("header");
    let first = r.next_page().expect("page").map(|p| (p.index, p.location, p.data.map(<[u8]>::len)));
    let huge = first.expect("a page");
    assert_eq!(
        (huge.0, huge.1.region, huge.1.image_offset, huge.1.address, huge.2),
        (1, 1, 4096, 0x30_0000_0000, Some(2 << 20))
    );
    let small = r.next_page().expect("page").map(|p| (p.index, p.location.region, p.data.map(<[u8]>::len)));
    assert_eq!(small, Some((0, 0, Some(4096))));
    r.read_to_end().expect("complete");
}

#[test]
fn bad_geometry() {
    let field = |f: &[u8]| match read_all(f) {
        Err(FormatError::BadHeaderField { field, offset, .. }) => (field, offset),
        other => panic!("expected BadHeaderField, got {other:?}"),
    };
    assert_eq!(field(&raw::header(1, 0, 4095, 1, 4095, b"", b"")), ("page_size", 16));
    assert_eq!(field(&raw::header(1, 0, 2048, 1, 2048, b"", b"")), ("page_size", 16));
    assert_eq!(field(&raw::header(1, 0, 1 << 31, 1, 1 << 31, b"", b"")), ("page_size", 16));
    assert_eq!(field(&raw::header(1, 0, 4096, 0, 0, b"", b"")), ("page_count", 24));
    assert_eq!(field(&raw::header(1, 0, 4096, PAGE_COUNT_MAX + 1, 0, b"", b"")), ("page_count", 24));
    assert_eq!(field(&raw::header(1, 0, 4096, 2, 4096, b"", b"")), ("region_len", 32));
    // page_size * page_count overflowing u64 must not wrap around to a "valid" region_len.
    assert_eq!(field(&raw::header(1, 0, 1 << 30, PAGE_COUNT_MAX, 0, b"", b"")), ("region_len", 32));
}

#[test]
fn absurd_lengths_are_refused_before_allocating() {
    // The lengths are claimed, the bytes are absent: a reader that trusted them would allocate.
    let mut f = raw::header(1, 0, 4096, 1, 4096, b"", b"");
    f[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
    match read_all(&f) {
        Err(FormatError::LengthTooLarge { offset: 48, field: "backing_len", max, .. }) => {
            assert_eq!(max, BACKING_LEN_MAX)
        }
        other => panic!("{other:?}"),
    }
    let mut f = raw::header(1, 0, 4096, 1, 4096, b"", b"");
    f[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
    match read_all(&f) {
        Err(FormatError::LengthTooLarge { offset: 52, field: "config_json_len", max, .. }) => {
            assert_eq!(max, CONFIG_JSON_LEN_MAX)
        }
        other => panic!("{other:?}"),
    }
    // Report length in the trailer.
    let h = raw::good_header(1);
    let hlen = h.len() as u64;
    let rec = raw::page(0, None);
    let mut f = raw::file(h, std::slice::from_ref(&rec), 1);
    let report_len_at = hlen as usize + rec.0.len() + 28;
    f[report_len_at..report_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    match read_all(&f) {
        Err(FormatError::LengthTooLarge { offset, field: "report_json_len", max, .. }) => {
            assert_eq!((offset, max), (report_len_at as u64, REPORT_JSON_LEN_MAX))
        }
        other => panic!("{other:?}"),
    }
    // A length within bounds but beyond the data is plain truncation.
    let mut f = raw::header(1, 0, 4096, 1, 4096, b"", b"");
    f[52..56].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(read_all(&f), Err(FormatError::Truncated { .. })));
}

#[test]
fn text_that_is_not_utf8() {
    let f = raw::header(1, 0, 4096, 1, 4096, &[0xff, 0xfe], b"");
    assert!(matches!(read_all(&f), Err(FormatError::NotUtf8 { offset: 56, field: "backing" })));
}

#[test]
fn header_checksum() {
    let mut f = raw::header(1, 0, 4096, 1, 4096, b"abc", b"");
    f[57] ^= 1; // inside "backing": structurally fine, only the crc can tell
    match read_all(&f) {
        Err(FormatError::ChecksumMismatch { offset: 59, what, .. }) => assert_eq!(what, "header"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn page_record_errors() {
    let h = raw::good_header(4);
    let at = h.len() as u64;
    let d = vec![9u8; 4096];
    let with = |records: &[(Vec<u8>, u32)]| raw::file(h.clone(), records, 0);

    let mut f = with(&[raw::page(0, Some(&d))]);
    f[at as usize] = b'X';
    assert!(matches!(read_all(&f), Err(FormatError::UnknownRecordTag { offset, .. }) if offset == at));

    let mut rec = raw::page(0, None);
    rec.0[4] = 3; // flags: zero + an undefined bit
    assert!(matches!(read_all(&with(&[rec])), Err(FormatError::BadFlags { what: "page record", flags: 3, .. })));

    let f = with(&[raw::page(4, None)]);
    assert!(
        matches!(read_all(&f), Err(FormatError::PageIndexOutOfRange { index: 4, page_count: 4, offset }) if offset == at + 8)
    );

    let f = with(&[raw::page(1, Some(&d)), raw::page(1, Some(&d))]);
    let second = at + 20 + 4096;
    assert!(matches!(read_all(&f), Err(FormatError::DuplicatePage { index: 1, offset }) if offset == second));

    let mut f = with(&[raw::page(2, Some(&d))]);
    f[at as usize + 20 + 100] ^= 0x10;
    match read_all(&f) {
        Err(FormatError::ChecksumMismatch { offset, what, .. }) => {
            assert_eq!((offset, what.as_str()), (at + 16, "page record 2"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_pages_counts_and_records_checksum() {
    let h = raw::good_header(3);
    let at = h.len() as u64;
    let p = |i| raw::page(i, None);
    let f = raw::file(h.clone(), &[p(0), p(2)], 2);
    match read_all(&f) {
        Err(FormatError::MissingPages { missing: 1, first_missing: 1, offset }) => assert_eq!(offset, at + 40),
        other => panic!("{other:?}"),
    }
    // Counts in the trailer that disagree with the records (with a valid trailer crc).
    let recs = [p(0), p(1), p(2)];
    let crcs: Vec<u32> = recs.iter().map(|r| r.1).collect();
    let mut f = h.clone();
    recs.iter().for_each(|r| f.extend_from_slice(&r.0));
    let trailer_at = f.len() as u64;
    f.extend_from_slice(&raw::trailer(3, 2, raw::records_crc(&crcs), b""));
    match read_all(&f) {
        Err(FormatError::CountMismatch { field: "zero_pages", stored: 2, counted: 3, offset }) => {
            assert_eq!(offset, trailer_at + 16)
        }
        other => panic!("{other:?}"),
    }
    // Records reordered after the trailer was computed: each record is intact, the chain is not.
    let mut f = h.clone();
    [&recs[1], &recs[0], &recs[2]].iter().for_each(|r| f.extend_from_slice(&r.0));
    f.extend_from_slice(&raw::trailer(3, 3, raw::records_crc(&crcs), b""));
    match read_all(&f) {
        Err(FormatError::ChecksumMismatch { what, offset, .. }) => {
            assert_eq!((what.as_str(), offset), ("records", trailer_at + 24))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn completion_marker_and_trailing_bytes() {
    let mut f = small_file();
    let n = f.len();
    f[n - 1] = b'!';
    assert!(matches!(read_all(&f), Err(FormatError::BadCompletionMarker { offset, .. }) if offset == n as u64 - 8));
    let mut f = small_file();
    f.push(0);
    assert!(matches!(read_all(&f), Err(FormatError::TrailingBytes { offset }) if offset == n as u64));
}

#[test]
fn a_failed_reader_stays_failed_and_a_finished_one_stays_finished() {
    let f = small_file();
    let mut r = read_snapshot(&f[..f.len() - 1]).expect("header");
    let err = loop {
        match r.next_page() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("truncated file read as complete"),
            Err(e) => break e,
        }
    };
    assert!(err.is_incomplete());
    assert!(matches!(r.next_page(), Err(FormatError::Poisoned { what: "reader" })));
    let mut r = read_snapshot(&f[..]).expect("header");
    r.read_to_end().expect("complete");
    assert!(r.next_page().expect("finished").is_none());
}
