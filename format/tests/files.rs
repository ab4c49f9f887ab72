//! DurableFile (plain and O_DIRECT) and the file operations verify / inspect / restore / load.

mod common;

use common::{header, page_bytes};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use wpsnap_format::{
    DIFFERING_PAGES_LISTED_MAX, DurableFile, FormatError, Header, SnapshotWriter, inspect_file, load_into, restore_raw,
    verify_file,
};

/// A fresh directory under cargo's per-target temporary directory (ext4 here, not tmpfs).
fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "wpsnap-format-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A region of `page_count` pages where every fourth page is zero.
fn region(page_count: u64) -> Vec<u8> {
    let mut r = Vec::new();
    for i in 0..page_count {
        if i % 4 == 3 {
            r.extend_from_slice(&[0u8; 4096]);
        } else {
            r.extend_from_slice(&page_bytes(i, 4096));
        }
    }
    r
}

/// Writes `region` as a snapshot through a DurableFile, pages in a scrambled order.
fn save(path: &Path, h: &Header, region: &[u8], direct_io: bool) -> Result<PathBuf, FormatError> {
    let file = DurableFile::create(path, direct_io)?;
    assert!(file.partial_path().to_string_lossy().ends_with(".partial"));
    let mut w = SnapshotWriter::new(BufWriter::new(file), h)?;
    let n = h.page_count();
    for k in 0..n {
        let i = (k * 7 + 3) % n; // a permutation when 7 does not divide n
        w.write_page(i, &region[(i * 4096) as usize..((i + 1) * 4096) as usize])?;
    }
    let file = w
        .finish("{\"pages\":33}")?
        .into_inner()
        .map_err(|e| FormatError::Io { context: "flush".into(), source: std::io::Error::other(e.to_string()) })?;
    file.commit()
}

#[test]
fn durable_file_commit_publishes_and_drop_leaves_partial() {
    let dir = scratch_dir("durable");
    let path = dir.join("a.snap");
    let mut f = DurableFile::create(&path, false).expect("create");
    f.write_all(b"not yet").expect("write");
    assert!(!path.exists(), "the final name must not exist before commit");
    assert!(f.partial_path().exists());
    drop(f);
    assert!(!path.exists(), "drop without commit must not publish");
    assert!(dir.join("a.snap.partial").exists());

    let h = header(33);
    let r = region(33);
    assert_eq!(save(&path, &h, &r, false).expect("save"), path);
    assert!(path.exists() && !dir.join("a.snap.partial").exists());
    verify_file(&path, None).expect("verify");
}

#[test]
fn direct_io_round_trip_has_the_exact_length() {
    let dir = scratch_dir("direct");
    let (plain, direct) = (dir.join("plain.snap"), dir.join("direct.snap"));
    // 333 pages: more than one full O_DIRECT buffer, then an unaligned tail.
    let h = header(333);
    let r = region(333);
    save(&plain, &h, &r, false).expect("plain");
    match save(&direct, &h, &r, true) {
        Ok(_) => {}
        Err(FormatError::DirectIoUnsupported { .. }) => {
            eprintln!("O_DIRECT not supported on {}: skipped", dir.display());
            return;
        }
        Err(e) => panic!("direct save: {e}"),
    }
    let (a, b) = (std::fs::read(&plain).expect("read"), std::fs::read(&direct).expect("read"));
    assert_eq!(a.len(), b.len(), "padding of the O_DIRECT tail must be truncated away");
    assert_eq!(a, b);
}

#[test]
fn direct_io_on_tmpfs_is_a_clear_error_or_works() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return;
    }
    let path = shm.join(format!("wpsnap-format-test-{}.snap", std::process::id()));
    match DurableFile::create(&path, true) {
        // Kernels since 6.6 accept O_DIRECT on tmpfs.
        Ok(f) => drop(f),
        Err(FormatError::DirectIoUnsupported { .. }) => {}
        Err(e) => panic!("expected Ok or DirectIoUnsupported, got {e}"),
    }
    let _ = std::fs::remove_file(wpsnap_format::partial_path_for(&path));
}

#[test]
fn verify_inspect_restore_and_load_agree_with_the_region() {
    let dir = scratch_dir("commands");
    let (snap, raw, out) = (dir.join("s.snap"), dir.join("region.raw"), dir.join("restored.raw"));
    let h = header(33);
    let r = region(33);
    save(&snap, &h, &r, false).expect("save");
    std::fs::write(&raw, &r).expect("raw");

    let v = verify_file(&snap, Some(&raw)).expect("verify against raw");
    assert_eq!((v.summary.page_records, v.summary.zero_pages), (33, 8));
    assert!(v.to_string().contains("OK"));

    let i = inspect_file(&snap).expect("inspect");
    assert_eq!(i.report["pages"], 33);
    assert_eq!(i.config["model"], "test");
    assert_eq!(i.data_pages, 25);
    assert!(serde_json::to_string(&i).expect("json").contains("\"backing\":\"anonymous\""));

    let rr = restore_raw(&snap, &out).expect("restore");
    assert_eq!(rr.pages, 33);
    assert_eq!(std::fs::read(&out).expect("read"), r);
    assert!(!wpsnap_format::partial_path_for(&out).exists());

    let mut mem = vec![0xAAu8; r.len()];
    load_into(&snap, &mut mem).expect("load");
    assert_eq!(mem, r, "zero pages must be zero-filled over old contents");
    let mut short = vec![0u8; 4096];
    assert!(matches!(load_into(&snap, &mut short), Err(FormatError::RegionSizeMismatch { .. })));
}

#[test]
fn verify_against_a_different_raw_image_names_the_first_differing_pages() {
    let dir = scratch_dir("mismatch");
    let (snap, raw) = (dir.join("s.snap"), dir.join("region.raw"));
    let h = header(33);
    let r = region(33);
    save(&snap, &h, &r, false).expect("save");
    let mut other = r.clone();
    // Change pages 31, 5 and 3 (a zero page).
    for p in [31usize, 5, 3] {
        other[p * 4096 + 10] ^= 1;
    }
    std::fs::write(&raw, &other).expect("raw");
    match verify_file(&snap, Some(&raw)) {
        Err(FormatError::RawMismatch { differing_pages: 3, first_differing }) => {
            assert_eq!(first_differing, [3, 5, 31])
        }
        other => panic!("{other:?}"),
    }
    let mut all = r.clone();
    all.iter_mut().for_each(|b| *b ^= 0x55);
    std::fs::write(&raw, &all).expect("raw");
    match verify_file(&snap, Some(&raw)) {
        Err(FormatError::RawMismatch { differing_pages: 33, first_differing }) => {
            assert_eq!(first_differing, (0..DIFFERING_PAGES_LISTED_MAX as u64).collect::<Vec<_>>())
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&raw, &r[..4096]).expect("raw");
    assert!(matches!(verify_file(&snap, Some(&raw)), Err(FormatError::RawSizeMismatch { .. })));
}

#[test]
fn a_damaged_snapshot_does_not_replace_an_existing_restore_target() {
    let dir = scratch_dir("damaged");
    let (snap, out) = (dir.join("s.snap"), dir.join("out.raw"));
    save(&snap, &header(33), &region(33), false).expect("save");
    let mut bytes = std::fs::read(&snap).expect("read");
    let n = bytes.len();
    bytes.truncate(n - 100);
    std::fs::write(&snap, &bytes).expect("write");
    std::fs::write(&out, b"previous").expect("write");
    let err = restore_raw(&snap, &out).expect_err("damaged");
    assert!(err.is_incomplete(), "{err}");
    assert_eq!(std::fs::read(&out).expect("read"), b"previous");
    assert!(!wpsnap_format::partial_path_for(&out).exists());
    assert!(verify_file(&snap, None).expect_err("damaged").is_incomplete());
}

#[test]
fn a_snapshot_streams_over_a_socket_without_seeking() {
    let (tx, rx) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let h = header(33);
    let r = region(33);
    let sender = std::thread::spawn(move || -> Result<(), FormatError> {
        let mut w = SnapshotWriter::new(BufWriter::new(tx), &h)?;
        for i in (0..33).rev() {
            w.write_page(i, &r[(i * 4096) as usize..((i + 1) * 4096) as usize])?;
        }
        // Dropping the stream after finish closes it: the reader then sees the end.
        w.finish("{}").map(drop)
    });
    let summary = wpsnap_format::verify_stream(std::io::BufReader::new(rx)).expect("stream verifies");
    assert_eq!((summary.page_records, summary.zero_pages), (33, 8));
    sender.join().expect("sender thread").expect("sender");
}

#[test]
fn two_regions_restore_verify_inspect_and_load_as_their_concatenation() {
    let dir = scratch_dir("two-regions");
    let h = Header {
        regions: vec![
            wpsnap_format::RegionEntry {
                start: 0x7f00_0000_0000,
                len: 3 * 4096,
                page_size: 4096,
                backing: "anonymous".into(),
            },
            wpsnap_format::RegionEntry {
                start: 0x7f00_4000_0000,
                len: 2 * 4096,
                page_size: 4096,
                backing: "memfd".into(),
            },
        ],
        created_unix_ns: 3,
        config_json: "{}".into(),
    };
    let image = region(5);
    let path = dir.join("two.wps");
    let mut w =
        SnapshotWriter::new(BufWriter::new(DurableFile::create(&path, false).expect("create")), &h).expect("header");
    for i in [4u64, 1, 3, 0, 2] {
        w.write_page(i, &image[i as usize * 4096..(i as usize + 1) * 4096]).expect("page");
    }
    let file = w.finish("{}").expect("finish").into_inner().map_err(|e| e.into_error()).expect("flush");
    file.commit().expect("commit");
    let raw = dir.join("two.raw");
    let restored = restore_raw(&path, &raw).expect("restore");
    assert_eq!(restored.region_len, 5 * 4096);
    assert_eq!(std::fs::read(&raw).expect("raw"), image);
    let verified = verify_file(&path, Some(&raw)).expect("verify");
    assert_eq!(verified.summary.regions.len(), 2);
    assert_eq!(verified.summary.format_version, 2);
    let inspected = inspect_file(&path).expect("inspect");
    assert!(inspected.to_string().contains("region 1"), "{inspected}");
    let mut loaded = vec![0xEEu8; 5 * 4096];
    load_into(&path, &mut loaded).expect("load");
    assert_eq!(loaded, image);
    let _ = std::fs::remove_dir_all(&dir);
}
