//! `wpsnap-kvstore`: the key-value store of `lib.rs`, serving writes from several threads
//! while it saves itself in the background, with wpsnap or with fork, and a restore that maps
//! the image back at its address in a fresh process and checks it.
//!
//! ```text
//! wpsnap-kvstore save --backend wpsnap|fork --out SNAP --expected EXPECTED.json
//! wpsnap-kvstore restore SNAP EXPECTED.json
//! ```
//!
//! `save` prints one JSON line: the backend, its pause, duration, the writes served during the
//! snapshot and the request latency (p50/p99/max) before and during it. `restore` exits 0 only
//! if the image is a consistent store equal to the state at the snapshot instant.

use anyhow::{Context, Result, bail};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wpsnap_kvstore::{Store, check_image};
use wpsnap_linux::fork::{ForkOptions, RegionRef, start_fork_snapshot};
use wpsnap_linux::output::{OutputSpec, open_output};
use wpsnap_linux::region::Region;
use wpsnap_linux::snapshot::{FormatSink, Snapshot, SnapshotConfig};

/// The store's region: small, so a save takes a fraction of a second.
const REGION_BYTES: usize = 4 << 20;
/// Keys created at start.
const KEYS: u64 = 20_000;
/// Writer threads.
const WRITERS: usize = 3;
/// Addresses tried for the region (the restore maps it at the same one).
const ADDRESS_CANDIDATES: [usize; 4] = [0x5e00_0000_0000, 0x5f00_0000_0000, 0x6000_0000_0000, 0x6100_0000_0000];
/// Writes that must have been served after the instant before the save may finish.
const WRITES_AFTER_INSTANT_MIN: u64 = 2_000;
/// Longest the save waits for them.
const WAIT_FOR_WRITES_MAX: Duration = Duration::from_secs(20);
/// Latency samples kept per thread and phase.
const SAMPLES_PER_PHASE_MAX: usize = 1 << 20;

const PHASE_BEFORE: u8 = 0;
const PHASE_DURING: u8 = 1;
const PHASE_AFTER: u8 = 2;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["save", "--backend", backend, "--out", out, "--expected", expected] => {
            save(backend, Path::new(out), Path::new(expected))
        }
        ["restore", snap, expected] => restore(Path::new(snap), Path::new(expected)),
        _ => bail!(
            "usage: wpsnap-kvstore save --backend wpsnap|fork --out SNAP --expected EXPECTED.json\n       wpsnap-kvstore restore SNAP EXPECTED.json"
        ),
    }
}

/// Maps `len` bytes of anonymous memory exactly at `addr`, failing if anything is there.
fn map_at(addr: usize, len: usize) -> Result<*mut u8> {
    let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    let flags = rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED_NOREPLACE;
    // SAFETY: a new anonymous mapping; FIXED_NOREPLACE never replaces an existing one.
    let ptr = unsafe { rustix::mm::mmap_anonymous(addr as *mut _, len, prot, flags) }
        .with_context(|| format!("mapping {len} bytes at {addr:#x}"))?;
    if ptr as usize != addr {
        bail!("the kernel mapped {:#x} instead of {addr:#x}", ptr as usize);
    }
    // 4 KiB pages: a THP-backed region would be declared differently.
    // SAFETY: advice on the mapping just made.
    unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxNoHugepage) }.context("madvise")?;
    Ok(ptr.cast())
}

/// What each writer thread measured.
#[derive(Default)]
struct Samples {
    by_phase: [Vec<u32>; 3],
}

fn writer(store: &Store, seed: u64, phase: &AtomicU8, stop: &AtomicBool, during: &AtomicU64) -> Samples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples = Samples::default();
    let mut next_key = KEYS + seed * (1 << 32);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if rng.random_range(0..10u32) == 0 {
            store.insert(next_key);
            next_key += 1;
        } else {
            let (from, to) = (rng.random_range(0..KEYS), rng.random_range(0..KEYS));
            store.transfer(from, to, rng.random_range(1..100i64));
        }
        let ns = started.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        let p = phase.load(Ordering::Acquire);
        if p == PHASE_DURING {
            during.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = &mut samples.by_phase[p as usize];
        if bucket.len() < SAMPLES_PER_PHASE_MAX {
            bucket.push(ns);
        }
    }
    samples
}

/// p50, p99 and max in microseconds.
fn percentiles(mut ns: Vec<u32>) -> serde_json::Value {
    ns.sort_unstable();
    let at = |q: f64| ns.get(((ns.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |&v| f64::from(v) / 1e3);
    serde_json::json!({ "requests": ns.len(), "p50_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0) })
}

/// What the snapshot itself reported.
struct Saved {
    pause_ns: u64,
    duration_ns: u64,
    pages_by_fault: Option<u64>,
}

fn save(backend: &str, out: &Path, expected: &Path) -> Result<()> {
    let base = ADDRESS_CANDIDATES
        .iter()
        .find_map(|&addr| map_at(addr, REGION_BYTES).ok())
        .context("no candidate address was free for the store")?;
    // SAFETY: the mapping is fresh (zeroed), ours, and stays mapped until the process exits.
    let store = Arc::new(unsafe { Store::create(base, REGION_BYTES as u64, KEYS) });
    let phase = Arc::new(AtomicU8::new(PHASE_BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..WRITERS as u64)
        .map(|i| {
            let (store, phase, stop, during) = (store.clone(), phase.clone(), stop.clone(), during.clone());
            std::thread::spawn(move || writer(&store, i + 1, &phase, &stop, &during))
        })
        .collect();
    // Some requests before the snapshot, for the latency baseline (not a verdict).
    std::thread::sleep(Duration::from_millis(100));
    let mut instant = vec![0u8; REGION_BYTES];
    let copy_instant = |instant: &mut Vec<u8>| {
        // SAFETY: the writers are paused (every stripe locked); the region is mapped.
        instant.copy_from_slice(unsafe { std::slice::from_raw_parts(base.cast_const(), REGION_BYTES) });
    };
    let wait_for_writes = || {
        let deadline = Instant::now() + WAIT_FOR_WRITES_MAX;
        while during.load(Ordering::Relaxed) < WRITES_AFTER_INSTANT_MIN && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let output = open_output(&OutputSpec::File { path: PathBuf::from(out), direct_io: false })?;
    let saved = match backend {
        "wpsnap" => {
            // SAFETY: the mapping stays mapped until the process exits.
            let region = unsafe { Region::detect(base, REGION_BYTES) }?;
            let config = SnapshotConfig::default();
            let (sink, _) = FormatSink::new(output, &region, serde_json::to_string(&config)?)?;
            let prepared = Snapshot::prepare(region, config, Box::new(sink))?;
            let running = prepared.arm_observed(|| store.pause(), |_| copy_instant(&mut instant))?;
            phase.store(PHASE_DURING, Ordering::Release);
            wait_for_writes();
            let report = running.finish()?;
            Saved {
                pause_ns: report.pause_ns,
                duration_ns: report.duration_ns,
                pages_by_fault: Some(report.engine.stats.pages_by_fault),
            }
        }
        "fork" => {
            // SAFETY: the mapping stays mapped until the process exits.
            let region = unsafe { Region::detect(base, REGION_BYTES) }?;
            let header = region.snapshot_header("{\"backend\":\"fork\"}".into());
            // SAFETY: as above.
            let region_ref = unsafe { RegionRef::new(base, REGION_BYTES) };
            let snapshot = {
                let _paused = store.pause();
                copy_instant(&mut instant);
                start_fork_snapshot(region_ref, &header, output, &ForkOptions::default())?
            };
            phase.store(PHASE_DURING, Ordering::Release);
            wait_for_writes();
            let report = snapshot.wait()?;
            Saved { pause_ns: report.pause_ns, duration_ns: report.duration_ns, pages_by_fault: None }
        }
        other => bail!("unknown backend {other:?}: wpsnap or fork"),
    };
    phase.store(PHASE_AFTER, Ordering::Release);
    stop.store(true, Ordering::Relaxed);
    let mut samples = Samples::default();
    for t in threads {
        let s = t.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))?;
        for (all, mine) in samples.by_phase.iter_mut().zip(s.by_phase) {
            all.extend(mine);
        }
    }
    let contents = check_image(&instant, base as u64).context("the store at the instant is inconsistent")?;
    let pairs: Vec<(u64, i64)> = contents.into_iter().collect();
    std::fs::write(expected, serde_json::to_vec(&pairs)?)?;
    let [before, during_samples, _] = samples.by_phase;
    let report = serde_json::json!({
        "backend": backend,
        "region_bytes": REGION_BYTES,
        "records_at_instant": pairs.len(),
        "pause_us": saved.pause_ns as f64 / 1e3,
        "duration_ms": saved.duration_ns as f64 / 1e6,
        "pages_by_fault": saved.pages_by_fault,
        "writes_during_snapshot": during.load(Ordering::Relaxed),
        "latency_before": percentiles(before),
        "latency_during": percentiles(during_samples),
    });
    println!("{report}");
    Ok(())
}

fn restore(snap: &Path, expected: &Path) -> Result<()> {
    let file = std::fs::File::open(snap).with_context(|| format!("opening {}", snap.display()))?;
    let mut reader = wpsnap_format::read_snapshot(std::io::BufReader::new(file))?;
    let [region] = reader.header().regions.as_slice() else { bail!("the store image has one region") };
    let (start, len) = (region.start, region.len);
    if start == 0 {
        bail!("the snapshot does not say where the region was mapped");
    }
    let base = map_at(start as usize, len as usize)?;
    while let Some(page) = reader.next_page()? {
        // A fresh mapping is zero: zero pages need no copy.
        if let Some(data) = page.data {
            let at = (page.location.address - start) as usize;
            // SAFETY: the reader checked the page lies inside the region, which is mapped.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(at), data.len()) };
        }
    }
    // SAFETY: the region is mapped and fully written.
    let image = unsafe { std::slice::from_raw_parts(base.cast_const(), len as usize) };
    let contents = check_image(image, start).context("the restored store is inconsistent")?;
    let wanted: Vec<(u64, i64)> = serde_json::from_slice(&std::fs::read(expected)?)?;
    let got: Vec<(u64, i64)> = contents.into_iter().collect();
    if got != wanted {
        let first = got.iter().zip(&wanted).position(|(a, b)| a != b).unwrap_or(got.len().min(wanted.len()));
        bail!(
            "the restored store differs from the state at the snapshot instant (first difference at entry {first}; {} vs {} records)",
            got.len(),
            wanted.len()
        );
    }
    // The store works at this address: pointers are absolute, so a write proves it.
    // SAFETY: the image was checked above; the mapping stays until exit.
    let store = unsafe { Store::open(base, len) };
    if !store.transfer(0, 1, 1) {
        bail!("keys 0 and 1 are missing from the restored store");
    }
    println!("restore check: ok, {} records at {start:#x}, total {}", got.len(), store.total());
    Ok(())
}
