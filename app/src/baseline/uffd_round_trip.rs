//! Bare userfaultfd write-protect: the whole-region protect time and the fault round trip.

use super::mapping::{BASELINE_PAGE_SIZE, Mapping};
use super::{BaselineError, BaselineRegion, error_chain};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use userfaultfd::{Event, FeatureFlags, IoctlFlags, RegisterMode, Uffd, UffdBuilder};
use wpsnap_core::{LatencyRecorder, Nanos};

/// How long the handler waits for an event before checking whether it should stop.
const HANDLER_POLL_MS: u16 = 10;

/// Registering and write-protecting a populated region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteProtectTiming {
    pub pages: u64,
    pub bytes: u64,
    pub transparent_huge_pages: bool,
    /// UFFDIO_REGISTER in write-protect mode.
    pub register_ns: u64,
    /// One UFFDIO_WRITEPROTECT over the whole region.
    pub write_protect_ns: u64,
}

/// A bare userfaultfd round trip per page.
#[derive(Clone, Debug)]
pub struct UffdRoundTrip {
    pub write_protect: WriteProtectTiming,
    /// The writer's first write to each protected page: fault, handler copy of 4 KiB,
    /// unprotect, wake. One value per page.
    pub first_write_wait: LatencyRecorder,
    /// Faults the handler served (at most one per page).
    pub faults_handled: u64,
}

/// Registers and write-protects a populated region once, and times both.
pub fn measure_write_protect(region: &BaselineRegion) -> Result<WriteProtectTiming, BaselineError> {
    let mapping = Mapping::populated(region)?;
    let uffd = open_uffd()?;
    let timing = protect(&uffd, &mapping, region)?;
    unprotect_all(&uffd, &mapping);
    Ok(timing)
}

/// Registers and write-protects a populated region, then times one ioctl that removes the
/// protection from the whole region (no wake: nothing waits).
pub fn measure_unprotect(region: &BaselineRegion) -> Result<u64, BaselineError> {
    let mapping = Mapping::populated(region)?;
    let uffd = open_uffd()?;
    protect(&uffd, &mapping, region)?;
    let started = Instant::now();
    uffd.remove_write_protection(mapping.ptr().cast(), mapping.len(), false)
        .map_err(|e| BaselineError::Uffd { what: "unprotect", detail: error_chain(&e) })?;
    Ok(started.elapsed().as_nanos() as u64)
}

/// How the bare handler waits for the next fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandlerWait {
    /// Sleeps in poll(2) until the uffd is readable (wake-up latency included in the floor).
    Sleeping,
    /// Reads the non-blocking uffd in a loop without sleeping (burns its core; the steadier
    /// floor: no scheduler wake-up between the fault and the handler).
    BusyPolling,
}

/// Protects a populated region, then writes once to every page from this thread while a
/// handler thread that sleeps in poll(2) serves the faults, timing each write.
pub fn measure_uffd_round_trip(region: &BaselineRegion) -> Result<UffdRoundTrip, BaselineError> {
    measure_uffd_round_trip_with(region, HandlerWait::Sleeping)
}

/// [`measure_uffd_round_trip`] with the handler's way of waiting chosen.
pub fn measure_uffd_round_trip_with(
    region: &BaselineRegion,
    wait: HandlerWait,
) -> Result<UffdRoundTrip, BaselineError> {
    let mapping = Arc::new(Mapping::populated(region)?);
    let uffd = Arc::new(open_uffd()?);
    let write_protect = protect(&uffd, &mapping, region)?;
    let stop = Arc::new(AtomicBool::new(false));
    let handler = {
        let (uffd, mapping, stop) = (uffd.clone(), mapping.clone(), stop.clone());
        std::thread::Builder::new()
            .name("baseline-uffd".into())
            .spawn(move || {
                let served = serve_faults(&uffd, &mapping, &stop, wait);
                // Whatever happened, leave nothing protected: a writer must never wait forever.
                unprotect_all(&uffd, &mapping);
                served
            })
            .map_err(|source| BaselineError::Os { what: "spawning the handler thread", source })?
    };
    let mut first_write_wait = LatencyRecorder::new();
    for page in 0..mapping.pages() {
        let started = Instant::now();
        mapping.write_page(page, 2);
        first_write_wait.record(Nanos(started.elapsed().as_nanos() as u64));
    }
    stop.store(true, Ordering::SeqCst);
    let faults_handled =
        handler.join().map_err(|_| BaselineError::Handler("panicked".into()))?.map_err(BaselineError::Handler)?;
    Ok(UffdRoundTrip { write_protect, first_write_wait, faults_handled })
}

fn open_uffd() -> Result<Uffd, BaselineError> {
    let uffd = UffdBuilder::new()
        .close_on_exec(true)
        .non_blocking(true)
        // Only user-mode writes happen here, which also lets unprivileged users in where the
        // sysctl allows user-mode-only descriptors.
        .user_mode_only(true)
        .require_features(FeatureFlags::PAGEFAULT_FLAG_WP)
        .create()
        .map_err(|e| BaselineError::UffdUnavailable { detail: error_chain(&e) })?;
    Ok(uffd)
}

fn protect(uffd: &Uffd, mapping: &Mapping, region: &BaselineRegion) -> Result<WriteProtectTiming, BaselineError> {
    let started = Instant::now();
    let ioctls = uffd
        .register_with_mode(mapping.ptr().cast(), mapping.len(), RegisterMode::WRITE_PROTECT)
        .map_err(|e| BaselineError::Uffd { what: "register (write-protect mode)", detail: error_chain(&e) })?;
    let register_ns = started.elapsed().as_nanos() as u64;
    if !ioctls.contains(IoctlFlags::WRITE_PROTECT) {
        return Err(BaselineError::Uffd {
            what: "register",
            detail: format!(
                "the kernel offers no write-protect ioctl on this range (ioctls offered: {:#x})",
                ioctls.bits()
            ),
        });
    }
    let started = Instant::now();
    uffd.write_protect(mapping.ptr().cast(), mapping.len())
        .map_err(|e| BaselineError::Uffd { what: "write-protect", detail: error_chain(&e) })?;
    let write_protect_ns = started.elapsed().as_nanos() as u64;
    Ok(WriteProtectTiming {
        pages: mapping.pages() as u64,
        bytes: mapping.len() as u64,
        transparent_huge_pages: region.transparent_huge_pages,
        register_ns,
        write_protect_ns,
    })
}

fn unprotect_all(uffd: &Uffd, mapping: &Mapping) {
    let _ = uffd.remove_write_protection(mapping.ptr().cast(), mapping.len(), true);
}

/// The minimal handler: read a fault, copy its page, unprotect it with a wake.
fn serve_faults(uffd: &Uffd, mapping: &Mapping, stop: &AtomicBool, wait: HandlerWait) -> Result<u64, String> {
    let mut staging = vec![0_u8; BASELINE_PAGE_SIZE];
    let mut served: u64 = 0;
    // SAFETY: the uffd outlives this function (the caller holds it).
    let fd = unsafe { BorrowedFd::borrow_raw(uffd.as_raw_fd()) };
    // Bounded by `stop`: the writer sets it after its last page.
    while !stop.load(Ordering::SeqCst) {
        if wait == HandlerWait::BusyPolling {
            match uffd.read_event() {
                Ok(Some(Event::Pagefault { addr, .. })) => {
                    serve_one(uffd, mapping, addr, &mut staging)?;
                    served += 1;
                }
                Ok(_) => std::hint::spin_loop(),
                Err(e) => return Err(format!("read_event: {}", error_chain(&e))),
            }
            continue;
        }
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec::try_from(Duration::from_millis(u64::from(HANDLER_POLL_MS))).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let event = match uffd.read_event() {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(e) => return Err(format!("read_event: {}", error_chain(&e))),
        };
        let Event::Pagefault { addr, .. } = event else { continue };
        serve_one(uffd, mapping, addr, &mut staging)?;
        served += 1;
    }
    Ok(served)
}

/// Copies the faulting page and unprotects it with a wake.
fn serve_one(uffd: &Uffd, mapping: &Mapping, addr: *mut std::ffi::c_void, staging: &mut [u8]) -> Result<(), String> {
    let base = mapping.ptr() as usize;
    let page_start = (addr as usize) & !(BASELINE_PAGE_SIZE - 1);
    if page_start < base || page_start >= base + mapping.len() {
        return Err(format!("fault at {addr:p} outside the region"));
    }
    // SAFETY: the page lies inside our mapping (checked above); reading a write-protected
    // page is allowed; the staging buffer is a separate allocation of one page.
    unsafe { std::ptr::copy_nonoverlapping(page_start as *const u8, staging.as_mut_ptr(), BASELINE_PAGE_SIZE) };
    std::hint::black_box(&staging);
    uffd.remove_write_protection(page_start as *mut _, BASELINE_PAGE_SIZE, true)
        .map_err(|e| format!("unprotect: {}", error_chain(&e)))?;
    Ok(())
}
