//! Code that runs in the forked child. Everything here must be safe to run after `fork()` in
//! a multi-threaded process: no allocation on the success path, no locks, no stdio, raw
//! `send(2)`/`write(2)` only. See the module doc of [`super`] for the rules.

use super::record::{ChildRecord, ChildStatus};
use crate::output::DevicePacer;
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;
use wpsnap_format::SnapshotWriter;

/// A [`Write`] over a raw file descriptor with a buffer allocated before the fork. `write`
/// only copies into the buffer; full buffers and `flush` go out with raw `write(2)` calls.
/// It never flushes on drop: the parent's copy is dropped unflushed on purpose, so bytes the
/// header left in the buffer go out once, from the child.
pub(super) struct RawSink {
    fd: RawFd,
    buf: Vec<u8>,
    len: usize,
    /// Bytes handed to the kernel.
    written: u64,
    /// errno of the last failed write, readable in the child without inspecting the
    /// (allocating) error the format writer wraps it in.
    last_errno: Arc<AtomicI32>,
    /// The slow-device emulation, applied after each raw write (allocation-free once built).
    pacer: Option<DevicePacer>,
    /// Write with `send(MSG_NOSIGNAL)` until the descriptor turns out not to be a socket: a
    /// vanished TCP peer then gives EPIPE instead of killing the child with SIGPIPE in a host
    /// process that did not ignore it.
    try_send: bool,
}

impl RawSink {
    /// Allocates the buffer; call before the fork.
    pub(super) fn new(
        fd: RawFd,
        buffer_bytes: usize,
        last_errno: Arc<AtomicI32>,
        pacer: Option<DevicePacer>,
    ) -> RawSink {
        RawSink { fd, buf: vec![0_u8; buffer_bytes.max(4096)], len: 0, written: 0, last_errno, pacer, try_send: true }
    }

    fn drain(&mut self) -> std::io::Result<()> {
        let mut at = 0;
        while at < self.len {
            match self.write_once(at) {
                Ok(0) => return Err(self.fail(libc::EIO)),
                Ok(n) => {
                    at += n;
                    if let Some(pacer) = &mut self.pacer {
                        pacer.pace(n as u64);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(self.fail(e.raw_os_error())),
            }
        }
        self.written += self.len as u64;
        self.len = 0;
        Ok(())
    }

    /// One raw `send(2)` or `write(2)` of the buffer from `at`.
    fn write_once(&mut self, at: usize) -> Result<usize, rustix::io::Errno> {
        let data = &self.buf[at..self.len];
        if self.try_send {
            // SAFETY: `fd` stays open for the child's lifetime (the parent keeps the output
            // alive until the child has exited); `data` is initialised memory of that length.
            let sent = unsafe { libc::send(self.fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
            if sent >= 0 {
                return Ok(sent as usize);
            }
            let errno =
                rustix::io::Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
            if errno != rustix::io::Errno::NOTSOCK {
                return Err(errno);
            }
            self.try_send = false;
        }
        // SAFETY: as above.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        rustix::io::write(fd, data)
    }

    fn fail(&self, errno: i32) -> std::io::Error {
        self.last_errno.store(errno, Ordering::SeqCst);
        // An OS error is stored inline: no allocation.
        std::io::Error::from_raw_os_error(errno)
    }
}

impl Write for RawSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.len == self.buf.len() {
            self.drain()?;
        }
        let n = data.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()
    }
}

/// Formats into a fixed array: `core::fmt` without allocation.
struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> std::fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).filter(|&e| e <= N).ok_or(std::fmt::Error)?;
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// What the child needs, prepared by the parent before the fork.
pub(super) struct ChildJob {
    pub region_ptr: *const u8,
    pub region_len: usize,
    pub page_size: usize,
    pub writer: SnapshotWriter<RawSink>,
    pub last_errno: Arc<AtomicI32>,
    pub result_fd: RawFd,
    pub release_fd: RawFd,
    /// The parent's ends of the two pipes, which the child must close (else it would keep
    /// its own release pipe open and never see the parent go away).
    pub parent_fds: [RawFd; 2],
}

/// Runs in the child and never returns: writes every page, the trailer, reports on the
/// result pipe, waits for the parent's release, `_exit`s.
pub(super) fn run(job: ChildJob) -> ! {
    for fd in job.parent_fds {
        // SAFETY: closing the child's copies of descriptors it does not use.
        unsafe { libc::close(fd) };
    }
    let result_fd = job.result_fd;
    let release_fd = job.release_fd;
    // A panic here must not unwind into the parent's stack frames (they belong to the
    // parent's logic); turn it into a status instead.
    let record = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || write_all_pages(job)))
        .unwrap_or(ChildRecord::failed(ChildStatus::Panicked, 0, 0));
    let bytes = record.encode();
    // SAFETY: raw fds inherited from the parent, open in the child.
    let result = unsafe { std::os::fd::BorrowedFd::borrow_raw(result_fd) };
    let _ = rustix::io::write(result, &bytes);
    let mut byte = [0_u8; 1];
    // SAFETY: as above.
    let release = unsafe { std::os::fd::BorrowedFd::borrow_raw(release_fd) };
    // Returns on the release byte or on EOF (parent gone); either way we are done.
    while let Err(rustix::io::Errno::INTR) = rustix::io::read(release, &mut byte) {}
    let code = if record.status == ChildStatus::Ok { 0 } else { 1 };
    // SAFETY: _exit skips atexit handlers and destructors, which belong to the parent.
    unsafe { libc::_exit(code) }
}

fn write_all_pages(job: ChildJob) -> ChildRecord {
    let started = Instant::now();
    let ChildJob { region_ptr, region_len, page_size, mut writer, last_errno, .. } = job;
    // SAFETY: the parent checked the region was valid memory of `region_len` bytes; in the
    // child it is a private copy no other thread touches (the child has one thread).
    let region = unsafe { std::slice::from_raw_parts(region_ptr, region_len) };
    for (index, page) in region.chunks_exact(page_size).enumerate() {
        if writer.write_page(index as u64, page).is_err() {
            return ChildRecord::failed(ChildStatus::PageWriteFailed, index as u64, last_errno.load(Ordering::SeqCst));
        }
    }
    let pages = writer.pages_written();
    let mut report = StackText::<256> { buf: [0; 256], len: 0 };
    let write_ns = started.elapsed().as_nanos() as u64;
    let _ = std::fmt::Write::write_fmt(
        &mut report,
        format_args!("{{\"backend\":\"fork\",\"pages\":{pages},\"child_pages_write_ns\":{write_ns}}}"),
    );
    // The report is ASCII built above; a failed conversion would only drop it.
    let report = std::str::from_utf8(&report.buf[..report.len]).unwrap_or("{}");
    match writer.finish(report) {
        Ok(sink) => {
            let emulation = sink.pacer.as_ref().map(DevicePacer::report);
            ChildRecord {
                status: ChildStatus::Ok,
                errno: 0,
                pages,
                bytes: sink.written,
                write_ns: started.elapsed().as_nanos() as u64,
                failed_page: 0,
                stalls: emulation.map_or(0, |r| r.stalls),
                stall_ns_total: emulation.map_or(0, |r| r.stall_ns_total),
                stall_ns_max: emulation.map_or(0, |r| r.stall_ns_max),
                sleep_ns_total: emulation.map_or(0, |r| r.sleep_ns_total),
            }
        }
        Err(_) => ChildRecord::failed(ChildStatus::TrailerFailed, pages, last_errno.load(Ordering::SeqCst)),
    }
}
