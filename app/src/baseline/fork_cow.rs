//! `fork()` with a populated region: the pause, and the parent's copy-on-write first writes.

use super::mapping::Mapping;
use super::{BaselineError, BaselineRegion};
use std::os::fd::AsRawFd;
use std::time::Instant;
use wpsnap_core::{LatencyRecorder, Nanos};

/// The fork backend's floors.
#[derive(Clone, Debug)]
pub struct ForkCow {
    pub pages: u64,
    pub bytes: u64,
    pub transparent_huge_pages: bool,
    /// The `fork()` call in the parent (page tables copied and write-protected).
    pub fork_pause_ns: u64,
    /// The parent's first write to each page while the child is alive: a copy-on-write fault
    /// per page.
    pub first_write_wait: LatencyRecorder,
}

/// Forks a child that only waits, times the fork and the parent's first write to each page,
/// then lets the child exit and reaps it.
pub fn measure_fork_cow(region: &BaselineRegion) -> Result<ForkCow, BaselineError> {
    let mapping = Mapping::populated(region)?;
    let (release_read, release_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| BaselineError::Os { what: "pipe", source: e.into() })?;
    let release_write_raw = release_write.as_raw_fd();
    let started = Instant::now();
    // SAFETY: the child only makes raw syscalls (close, read, _exit): safe after fork in a
    // multi-threaded process.
    let pid = unsafe { libc::fork() };
    let fork_pause_ns = started.elapsed().as_nanos() as u64;
    if pid == 0 {
        // SAFETY: closing the child's copy of the write end, so EOF arrives when the parent's
        // copy closes; then wait for it and leave without running destructors.
        unsafe {
            libc::close(release_write_raw);
            let mut byte = 0_u8;
            while libc::read(release_read.as_raw_fd(), (&raw mut byte).cast(), 1) < 0 {}
            libc::_exit(0);
        }
    }
    if pid < 0 {
        return Err(BaselineError::Os { what: "fork()", source: std::io::Error::last_os_error() });
    }
    drop(release_read);
    let mut first_write_wait = LatencyRecorder::new();
    for page in 0..mapping.pages() {
        let t = Instant::now();
        mapping.write_page(page, 3);
        first_write_wait.record(Nanos(t.elapsed().as_nanos() as u64));
    }
    drop(release_write);
    let mut status = 0;
    // SAFETY: reaping our own child; `status` is a valid out pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    Ok(ForkCow {
        pages: mapping.pages() as u64,
        bytes: mapping.len() as u64,
        transparent_huge_pages: region.transparent_huge_pages,
        fork_pause_ns,
        first_write_wait,
    })
}

/// Only the `fork()` call's duration with a populated region (the child exits at once): the
/// fork pause without the cost of copying every page afterwards, for large regions.
pub fn measure_fork_pause(region: &BaselineRegion) -> Result<u64, BaselineError> {
    let _mapping = Mapping::populated(region)?;
    let started = Instant::now();
    // SAFETY: the child only calls _exit.
    let pid = unsafe { libc::fork() };
    let fork_pause_ns = started.elapsed().as_nanos() as u64;
    if pid == 0 {
        // SAFETY: leave at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        return Err(BaselineError::Os { what: "fork()", source: std::io::Error::last_os_error() });
    }
    let mut status = 0;
    // SAFETY: reaping our own child; `status` is a valid out pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    Ok(fork_pause_ns)
}
