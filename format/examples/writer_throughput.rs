//! Writer throughput against the raw speed of the same sink: writes `PAGES` 4 KiB pages
//! (one in `ZERO_EVERY` all zero) once raw (page bytes only, through the same BufWriter) and
//! once as a snapshot, and prints GB/s of region and the ratio; for a regular file it also
//! times `verify_file`. A measurement, not a test.
//! Run: `cargo run --release -p wpsnap-format --example writer_throughput [SINK_PATH]`
//! (default /dev/null, which isolates the CPU cost of the format).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;
use wpsnap_format::{Header, PageDigest, SnapshotWriter, verify_file};

const PAGE_BYTES: usize = 4096;
const PAGES: u64 = 1 << 18; // 1 GiB of region
const ZERO_EVERY: u64 = 8;
const BUFFER_BYTES: usize = 1 << 20;
const ROUNDS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sink = std::env::args().nth(1).unwrap_or_else(|| "/dev/null".into());
    // A pool of distinct non-zero pages, so the data is not one hot cache line.
    let pool: Vec<Vec<u8>> =
        (0..256u64).map(|p| (0..PAGE_BYTES as u64).map(|b| ((b * 31 + p * 7) % 255 + 1) as u8).collect()).collect();
    let zero = vec![0u8; PAGE_BYTES];
    let pick = |i: u64| -> &[u8] { if i.is_multiple_of(ZERO_EVERY) { &zero } else { &pool[(i % 256) as usize] } };
    let header = Header::single(PAGE_BYTES as u64, PAGES, "bench", 0, "{}".into());
    let gb = (PAGES * PAGE_BYTES as u64) as f64 / 1e9;
    // Digests as a capture thread would compute them while copying pages into staging.
    let digests: Vec<PageDigest> = (0..PAGES).map(|i| PageDigest::of(i, pick(i))).collect();
    let (mut raw_best, mut fmt_best, mut digested_best) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut out = BufWriter::with_capacity(BUFFER_BYTES, std::fs::File::create(&sink)?);
        for i in 0..PAGES {
            out.write_all(pick(i))?;
        }
        out.flush()?;
        raw_best = raw_best.min(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let out = BufWriter::with_capacity(BUFFER_BYTES, std::fs::File::create(&sink)?);
        let mut w = SnapshotWriter::new(out, &header)?;
        for i in 0..PAGES {
            w.write_page(i, pick(i))?;
        }
        w.finish("{}")?;
        fmt_best = fmt_best.min(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let out = BufWriter::with_capacity(BUFFER_BYTES, std::fs::File::create(&sink)?);
        let mut w = SnapshotWriter::new(out, &header)?;
        for (i, d) in digests.iter().enumerate() {
            w.write_page_digested(i as u64, pick(i as u64), d)?;
        }
        w.finish("{}")?;
        digested_best = digested_best.min(t.elapsed().as_secs_f64());
    }
    println!("sink {sink}: {PAGES} pages of {PAGE_BYTES} B, 1 in {ZERO_EVERY} zero, best of {ROUNDS}");
    println!("raw      {:6.2} GB/s of region", gb / raw_best);
    println!("snapshot {:6.2} GB/s of region", gb / fmt_best);
    println!("ratio    {:6.1} %", 100.0 * raw_best / fmt_best);
    println!("snapshot {:6.2} GB/s of region with digests computed beforehand", gb / digested_best);
    println!("ratio    {:6.1} %", 100.0 * raw_best / digested_best);
    if Path::new(&sink).metadata()?.is_file() {
        let t = Instant::now();
        verify_file(Path::new(&sink), None)?;
        println!("verify   {:6.2} GB/s of region (from the page cache)", gb / t.elapsed().as_secs_f64());
    }
    Ok(())
}
