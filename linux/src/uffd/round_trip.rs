//! The bare userfaultfd round trip, as a yardstick for the snapshot's fault waits: a writer
//! writes a write-protected page; a handler thread reads the event, copies the 4 KiB page and
//! unprotects it; the writer times its write. Nothing else (no engine, no staging, no sink).

use super::{UffdError, WpUffd};
use crate::region::{Backing, OwnedMapping};
use rustix::event::{PollFd, PollFlags, Timespec};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wpsnap_core::{LatencyRecorder, Nanos};

/// Most samples one measurement takes.
pub const ROUND_TRIP_SAMPLES_MAX: u32 = 1_000_000;
/// A sample whose fault is not served within this bound ends the measurement with an error.
const HANDLER_POLL_MS: i64 = 20;

/// Measures `samples` write-fault round trips (copy 4 KiB + unprotect) on one page.
pub fn measure_round_trip(samples: u32) -> Result<LatencyRecorder, UffdError> {
    let samples = samples.min(ROUND_TRIP_SAMPLES_MAX);
    let mapping = OwnedMapping::new(4096, Backing::Anonymous).map_err(|e| UffdError::Probe(e.to_string()))?;
    let region = mapping.region();
    let uffd = Arc::new(WpUffd::open()?);
    uffd.register_wp(region.start(), region.len())?;
    // Populate the page so the first sample is not also a page allocation.
    region.touch_every_page();
    let page_ptr = region.start() as *mut u64;
    // SAFETY: our own mapping; no other thread writes it.
    unsafe { std::ptr::write_volatile(page_ptr, 1) };
    let stop = Arc::new(AtomicBool::new(false));
    let handler = {
        let uffd = uffd.clone();
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<(), UffdError> {
            let mut buf = WpUffd::event_buffer();
            let mut events = Vec::new();
            let mut copy = vec![0u8; 4096];
            while !stop.load(Ordering::Acquire) {
                let spec = Timespec { tv_sec: 0, tv_nsec: HANDLER_POLL_MS * 1_000_000 };
                let mut fds = [PollFd::new(uffd.as_ref(), PollFlags::IN)];
                let _ = rustix::event::poll(&mut fds, Some(&spec));
                events.clear();
                uffd.read_events(&mut buf, &mut events)?;
                for _ in events.drain(..) {
                    region.copy_pages(0, 1, &mut copy);
                    uffd.unprotect(region.start(), 4096)?;
                }
            }
            Ok(())
        })
    };
    let mut recorder = LatencyRecorder::new();
    let mut result = Ok(());
    for i in 0..samples {
        if let Err(e) = uffd.protect(region.start(), region.len()) {
            result = Err(e);
            break;
        }
        let t0 = Instant::now();
        // SAFETY: our own mapping; the write blocks until the handler unprotects the page.
        unsafe { std::ptr::write_volatile(page_ptr, i as u64 + 2) };
        recorder.record(Nanos(t0.elapsed().as_nanos() as u64));
    }
    stop.store(true, Ordering::Release);
    let handled = handler.join().unwrap_or_else(|_| Err(UffdError::Probe("the handler thread panicked".into())));
    let _ = uffd.unprotect(region.start(), region.len());
    // Close the uffd before unmapping: with the unmap event subscribed, munmap of a registered
    // range waits until the monitor reads the event, and nobody would.
    let _ = uffd.unregister(region.start(), region.len());
    drop(uffd);
    drop(mapping);
    result.and(handled).map(|()| recorder)
}

/// Times one whole-region write-protect of `region_bytes` of populated anonymous memory.
pub fn measure_whole_region_protect(region_bytes: usize) -> Result<Duration, UffdError> {
    let mapping = OwnedMapping::new(region_bytes, Backing::Anonymous).map_err(|e| UffdError::Probe(e.to_string()))?;
    let region = mapping.region();
    for page in 0..region.page_count() {
        // SAFETY: our own fresh mapping.
        unsafe { std::ptr::write_volatile(region.page_addr(page) as *mut u8, 1) };
    }
    let uffd = WpUffd::open()?;
    uffd.register_wp(region.start(), region.len())?;
    let t0 = Instant::now();
    uffd.protect(region.start(), region.len())?;
    let took = t0.elapsed();
    uffd.unprotect(region.start(), region.len())?;
    uffd.unregister(region.start(), region.len())?;
    drop(uffd);
    drop(mapping);
    Ok(took)
}
