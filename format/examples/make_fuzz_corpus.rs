//! Writes the seed corpus of the `reader` fuzz target into fuzz/corpus/reader/: valid
//! snapshots (names start with `valid-`), and truncated, bit-flipped and otherwise damaged ones
//! (`bad-`). Run: `cargo run -p wpsnap-format --example make_fuzz_corpus`.

use std::path::Path;
use wpsnap_format::{FormatError, Header, SnapshotWriter};

fn snapshot(page_count: u64, order: &[u64], zero: impl Fn(u64) -> bool, report: &str) -> Result<Vec<u8>, FormatError> {
    let h = Header {
        page_size: 4096,
        page_count,
        region_len: 4096 * page_count,
        backing: "anonymous".into(),
        created_unix_ns: 1_764_000_000_000_000_000,
        config_json: "{\"model\":\"decoupled\"}".into(),
    };
    let mut w = SnapshotWriter::new(Vec::new(), &h)?;
    for &i in order {
        let page: Vec<u8> =
            if zero(i) { vec![0; 4096] } else { (0..4096u64).map(|b| (b * 13 + i * 101) as u8 | 1).collect() };
        w.write_page(i, &page)?;
    }
    w.finish(report)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/reader");
    std::fs::create_dir_all(&dir)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let one = snapshot(1, &[0], |_| false, "{}")?;
    let zeros = snapshot(4, &[3, 1, 0, 2], |_| true, "{\"note\":\"all zero\"}")?;
    let mixed = snapshot(3, &[2, 0, 1], |i| i == 1, "{\"pages\":3}")?;
    seeds.push(("valid-one-page".into(), one.clone()));
    seeds.push(("valid-all-zero".into(), zeros.clone()));
    seeds.push(("valid-mixed-any-order".into(), mixed.clone()));
    for (name, base) in [("zeros", &zeros), ("mixed", &mixed)] {
        for cut in [0, 7, 56, 60, base.len() / 2, base.len() - 9, base.len() - 1] {
            seeds.push((format!("bad-{name}-truncated-{cut}"), base[..cut].to_vec()));
        }
    }
    for at in [0, 9, 17, 30, 50, 70, 90, one.len() - 30, one.len() - 3] {
        let mut b = one.clone();
        b[at] ^= 0x04;
        seeds.push((format!("bad-one-flipped-{at}"), b));
    }
    let mut trailing = mixed.clone();
    trailing.extend_from_slice(b"extra");
    seeds.push(("bad-mixed-trailing".into(), trailing));
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("wrote {} seeds to {}", seeds.len(), dir.display());
    Ok(())
}
