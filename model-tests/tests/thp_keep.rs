//! Huge pages kept (issue 15): on a THP region the snapshot captures and unprotects whole
//! 2 MiB units, so the kernel does not split the region's transparent huge pages.

mod real;

use real::uffd_available;
use std::time::Duration;
use wpsnap_core::PolicyConfig;
use wpsnap_linux::region::{Backing, OwnedMapping, Region};
use wpsnap_linux::snapshot::{MemorySink, NoWriters, Snapshot, SnapshotConfig};

const HUGE: u64 = 2 << 20;
const REGION_HUGE_PAGES: u64 = 32;

/// `AnonHugePages` of the mapping that starts at `start`, from /proc/self/smaps, in bytes.
fn anon_huge_bytes(start: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let header = format!("{start:x}-");
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&header));
    lines.next()?;
    for line in lines {
        if line.contains('-') && !line.contains(':') {
            return None; // the next mapping's header: the field was missing
        }
        if let Some(kb) = line.strip_prefix("AnonHugePages:") {
            return kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kb| kb * 1024);
        }
    }
    None
}

fn skip(reason: &str) {
    eprintln!("SKIPPED a_thp_region_keeps_its_huge_pages: {reason}");
}

fn touch(region: &Region) {
    for page in 0..region.page_count() {
        // SAFETY: our own mapping; nothing else runs on it.
        unsafe { std::ptr::write_bytes(region.page_addr(page) as *mut u8, (page % 199) as u8 + 1, 4096) };
    }
}

#[test]
fn a_thp_region_keeps_its_huge_pages() {
    if !uffd_available("a_thp_region_keeps_its_huge_pages") {
        return;
    }
    let enabled = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if enabled.contains("[never]") || enabled.is_empty() {
        return skip(&format!("transparent huge pages are not enabled ({})", enabled.trim()));
    }
    let mapping = OwnedMapping::new((REGION_HUGE_PAGES * HUGE) as usize, Backing::Thp).expect("mapping");
    let region = mapping.region();
    if !(region.start() as u64).is_multiple_of(HUGE) {
        return skip("the kernel did not place the THP mapping on a 2 MiB boundary");
    }
    touch(&region);
    let before = anon_huge_bytes(region.start()).unwrap_or(0);
    if before < region.len() as u64 / 2 {
        return skip(&format!("only {before} bytes of the region got huge pages (memory fragmented?)"));
    }
    let config = SnapshotConfig { policy: PolicyConfig::None, ..SnapshotConfig::default() };
    let (sink, image) = MemorySink::new(region.page_size(), region.page_count());
    let running = Snapshot::prepare(region, config, Box::new(sink)).expect("prepare").arm(|| NoWriters).expect("arm");
    // Writes into every other huge page, from the top: each is a fault on a protected unit
    // unless the scan got there first; either way it is saved and unprotected whole.
    for unit in (0..REGION_HUGE_PAGES).rev().step_by(2) {
        let page = unit * (HUGE / 4096) + 7;
        // SAFETY: inside the live mapping; a write to a protected page waits for its save.
        unsafe { std::ptr::write_volatile(region.page_addr(page) as *mut u64, 0x7ff0 + unit) };
    }
    let report = running.finish().expect("snapshot completes");
    std::thread::sleep(Duration::from_millis(10));
    let after = anon_huge_bytes(region.start()).unwrap_or(0);
    eprintln!(
        "AnonHugePages before {} MiB, after {} MiB; capture unit {} pages; {} unprotect calls for {} pages; {} pages by fault",
        before >> 20,
        after >> 20,
        report.engine.config.capture_unit_pages,
        report.unprotect_calls,
        report.unprotect_pages,
        report.engine.stats.pages_by_fault
    );
    assert_eq!(report.engine.config.capture_unit_pages, HUGE / 4096, "whole huge pages are the capture unit");
    assert_eq!(report.unprotect_pages, region.page_count(), "every page unprotected once");
    assert!(report.unprotect_calls <= REGION_HUGE_PAGES, "one unprotect per huge page at most");
    assert!(after * 100 >= before * 95, "huge pages split: {before} bytes before, {after} after");
    assert!(image.lock().expect("image").writes.iter().all(|&w| w == 1));
}
