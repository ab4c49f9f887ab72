//! Writes the version-2 seed corpus of the `reader` fuzz target into fuzz/corpus/reader/:
//! valid snapshots (names start with `valid-v2-`), and truncated, bit-flipped and otherwise
//! damaged ones (`bad-v2-`). The `valid-v1-`/`bad-v1-` seeds were written by the version-1
//! writer and are kept as they are (version 1 is still read).
//! Run: `cargo run -p wpsnap-format --example make_fuzz_corpus`.

use std::path::Path;
use wpsnap_format::{FormatError, Header, RegionEntry, SnapshotWriter};

fn write(h: &Header, order: &[u64], zero: impl Fn(u64) -> bool, report: &str) -> Result<Vec<u8>, FormatError> {
    let layout = h.layout();
    let mut w = SnapshotWriter::new(Vec::new(), h)?;
    for &i in order {
        let size = layout.locate(i).map_or(4096, |l| l.page_size);
        let page: Vec<u8> =
            if zero(i) { vec![0; size as usize] } else { (0..size).map(|b| (b * 13 + i * 101) as u8 | 1).collect() };
        w.write_page(i, &page)?;
    }
    w.finish(report)
}

fn snapshot(page_count: u64, order: &[u64], zero: impl Fn(u64) -> bool, report: &str) -> Result<Vec<u8>, FormatError> {
    let h =
        Header::single(4096, page_count, "anonymous", 1_764_000_000_000_000_000, "{\"model\":\"decoupled\"}".into());
    write(&h, order, zero, report)
}

/// Two regions at known addresses, 4 KiB pages each (2 + 1 pages).
fn two_regions() -> Result<Vec<u8>, FormatError> {
    let region = |start: u64, pages: u64, backing: &str| RegionEntry {
        start,
        len: pages * 4096,
        page_size: 4096,
        backing: backing.into(),
    };
    let h = Header {
        regions: vec![region(0x7f00_0000_0000, 2, "anonymous"), region(0x7f00_1000_0000, 1, "memfd")],
        created_unix_ns: 1_764_000_000_000_000_000,
        config_json: "{}".into(),
    };
    write(&h, &[2, 0, 1], |i| i == 0, "{\"regions\":2}")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/reader");
    std::fs::create_dir_all(&dir)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let one = snapshot(1, &[0], |_| false, "{}")?;
    let zeros = snapshot(4, &[3, 1, 0, 2], |_| true, "{\"note\":\"all zero\"}")?;
    let mixed = snapshot(3, &[2, 0, 1], |i| i == 1, "{\"pages\":3}")?;
    let two = two_regions()?;
    seeds.push(("valid-v2-one-page".into(), one.clone()));
    seeds.push(("valid-v2-all-zero".into(), zeros.clone()));
    seeds.push(("valid-v2-mixed-any-order".into(), mixed.clone()));
    seeds.push(("valid-v2-two-regions".into(), two.clone()));
    for (name, base) in [("zeros", &zeros), ("mixed", &mixed), ("two-regions", &two)] {
        // Inside the fixed header, the first region entry, the second entry (two-regions), the
        // records and the trailer.
        for cut in [0, 7, 20, 40, 70, 100, base.len() / 2, base.len() - 9, base.len() - 1] {
            seeds.push((format!("bad-v2-{name}-truncated-{cut}"), base[..cut].to_vec()));
        }
    }
    for at in [0, 9, 17, 26, 30, 34, 42, 50, 58, 62, 70, one.len() - 30, one.len() - 3] {
        let mut b = one.clone();
        b[at] ^= 0x04;
        seeds.push((format!("bad-v2-one-flipped-{at}"), b));
    }
    let mut trailing = mixed.clone();
    trailing.extend_from_slice(b"extra");
    seeds.push(("bad-v2-mixed-trailing".into(), trailing));
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("wrote {} seeds to {}", seeds.len(), dir.display());
    Ok(())
}
