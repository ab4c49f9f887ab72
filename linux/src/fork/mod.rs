//! The `fork()` backend: a point-in-time snapshot by copy-on-write, for comparison with the
//! userfaultfd backend and as a fallback where userfaultfd is unavailable.
//!
//! What it does: [`start_fork_snapshot`] writes the snapshot header into a buffer, forks the
//! process, and returns at once in the parent while the child writes every page of its
//! copy-on-write view of the region in the wpsnap format to the output's file descriptor and
//! reports on a pipe. [`ForkSnapshot::wait`] then samples the child's copy-on-write growth
//! until it is done, reaps it, commits the output (fsync + rename, or the TCP receiver's
//! acknowledgement) and returns a [`ForkReport`]: the pause at fork, the child's write time,
//! the whole duration, the bytes and the extra memory. [`fork_snapshot`] does both.
//!
//! The image is the memory as it was when `fork()` returned. Writers that keep running
//! during the fork land on one side or the other of it; to know *exactly* what the image
//! holds (as the tests do), pause the writers around the call to [`start_fork_snapshot`].
//! Writers in the parent pay for the snapshot in their first write to each page after the
//! fork (a copy-on-write fault); they time that themselves ([`crate::baseline`] measures it).
//!
//! ## Rules the child follows (fork in a multi-threaded process)
//! Only the calling thread exists in the child; every lock another thread held at the fork
//! stays locked forever there. So the child:
//! - allocates nothing on its success path: the write buffer, the format writer's page set and
//!   the encoded header are all prepared by the parent before the fork; the trailer's report
//!   text is formatted into a stack array;
//! - writes with raw `write(2)` calls (rustix) on a descriptor the output prepared
//!   ([`crate::output::Output::fork_fd`]), never through the output's buffered, possibly
//!   locking objects, and never touches stdio;
//! - computes crc32c with the `crc32c` crate (no allocation, no locks);
//! - touches no mutex, spawns no thread, and leaves with `_exit` (no destructors, no atexit).
//!
//! On *error* paths the format writer builds an error value (a `String`), which allocates;
//! glibc resets its allocator locks in the child, so this is safe with glibc, not by POSIX.
//! A panic in the child runs the panic hook, which locks stderr: if another thread held that
//! lock at the fork the child hangs, and the parent kills it at `child_timeout_ms`.
//!
//! The slow-device emulation ([`crate::output::SlowDevice`]) is applied by the child itself:
//! its raw writes are paced by a [`DevicePacer`] built before the fork, and the emulation's
//! counters come back in the result record, so the output summary still says "EMULATED".
//!
//! What it does not do: no O_DIRECT files (the child writes the output's raw descriptor, and
//! the format crate's aligned-buffer state would be split between two processes;
//! [`ForkError::OutputNotForkable`] says so); no progress reports while the child runs; no
//! throttling policy (the child writes as fast as the output, or the emulation, takes it).
//! The child inherits every descriptor of the parent, as any `fork()` does.

mod child;
mod memory;
mod record;

pub use memory::ExtraMemory;
pub use record::ChildStatus;

use crate::output::{DevicePacer, Output, OutputError, OutputSummary, SlowDeviceProfile, SlowDeviceReport};
use child::{ChildJob, RawSink};
use record::{ChildRecord, RECORD_BYTES};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};
use wpsnap_format::{FormatError, Header, SnapshotWriter};

/// How long a child that has reported and been released may take to exit before it is killed.
const RELEASED_EXIT_MS_MAX: u64 = 5_000;

/// Memory a fork snapshot reads: a pointer and a length, since other threads keep writing it
/// and no Rust reference to it may exist in the parent while they do.
#[derive(Clone, Copy, Debug)]
pub struct RegionRef {
    ptr: *const u8,
    len: usize,
}

// SAFETY: RegionRef is an address range; the parent never dereferences it (only the child
// does, after the fork, on its private copy).
unsafe impl Send for RegionRef {}

impl RegionRef {
    /// # Safety
    /// `ptr..ptr+len` must be mapped, readable memory for as long as the snapshot runs (until
    /// [`ForkSnapshot::wait`] returns or the handle is dropped).
    pub unsafe fn new(ptr: *const u8, len: usize) -> RegionRef {
        RegionRef { ptr, len }
    }

    /// Bytes in the region.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length region (refused by the snapshot).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Limits of a fork snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOptions {
    /// The child is killed (and the snapshot fails) if it has not finished by then.
    pub child_timeout_ms: u64,
    /// How often the child's smaps is read while it runs.
    pub memory_sample_ms: u64,
    /// The child's write buffer (allocated before the fork).
    pub write_buffer_bytes: usize,
}

impl Default for ForkOptions {
    fn default() -> Self {
        ForkOptions { child_timeout_ms: 600_000, memory_sample_ms: 20, write_buffer_bytes: 1 << 20 }
    }
}

/// How the child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Exited(code) => write!(f, "exited with status {code}"),
            ChildExit::Signaled(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// What a fork snapshot did and cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForkReport {
    /// Always "fork".
    pub backend: String,
    pub child_pid: i32,
    /// The `fork()` call in the parent: page tables are copied and write-protected while the
    /// calling thread waits (other threads fault on the region meanwhile and wait too).
    pub pause_ns: u64,
    /// The child's own time from the fork to the last byte written.
    pub child_write_ns: u64,
    /// From just before `fork()` to the output committed.
    pub duration_ns: u64,
    pub pages: u64,
    pub bytes: u64,
    /// Bytes per second over `child_write_ns`.
    pub write_bytes_per_sec: u64,
    pub child_exit: ChildExit,
    pub extra_memory: ExtraMemory,
    pub output: OutputSummary,
}

/// Why a fork snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("invalid region: {0}")]
    InvalidRegion(String),
    #[error(
        "this output cannot be written by a forked child (O_DIRECT files and test outputs cannot; use a plain file, stdout or tcp, optionally with the slow-device emulation)"
    )]
    OutputNotForkable,
    #[error("preparing the snapshot header: {0}")]
    Header(#[source] FormatError),
    #[error("{what}: {source}")]
    Os { what: &'static str, source: std::io::Error },
    #[error("the snapshot child (pid {pid}) failed: {status} at page {page}, errno {errno} ({}); it {exit}", std::io::Error::from_raw_os_error(*errno))]
    Child { pid: i32, status: ChildStatus, page: u64, errno: i32, exit: ChildExit },
    #[error("the snapshot child (pid {pid}) {exit} without reporting")]
    ChildVanished { pid: i32, exit: ChildExit },
    #[error("the snapshot child (pid {pid}) did not finish within {timeout_ms} ms and was killed")]
    Timeout { pid: i32, timeout_ms: u64 },
    #[error("committing the output: {0}")]
    Output(#[source] OutputError),
    #[error("cancelled; the snapshot child (pid {pid}) was killed and the output aborted")]
    Cancelled { pid: i32 },
}

/// A running fork snapshot (the child is writing). [`ForkSnapshot::wait`] finishes it;
/// dropping it kills the child and aborts the output.
#[must_use = "a fork snapshot must be waited for, or dropping it kills the child"]
pub struct ForkSnapshot {
    pid: i32,
    started: Instant,
    pause_ns: u64,
    result_read: OwnedFd,
    release_write: Option<OwnedFd>,
    output: Option<Box<dyn Output>>,
    region: RegionRef,
    options: ForkOptions,
    /// The slow-device emulation the child applies, if any.
    emulation: Option<SlowDeviceProfile>,
    /// Set once the child has been reaped (by [`ForkSnapshot::wait`], a poll or a kill).
    exit: Option<ChildExit>,
}

/// Forks and starts writing the snapshot in the child; returns in the parent right after
/// `fork()`. Pause writers around this call if the image must match a known state.
pub fn start_fork_snapshot(
    region: RegionRef,
    header: &Header,
    mut output: Box<dyn Output>,
    options: &ForkOptions,
) -> Result<ForkSnapshot, ForkError> {
    check_region(region, header)?;
    let Some(fd) = output.fork_fd().map(|fd| fd.as_raw_fd()) else {
        output.abort();
        return Err(ForkError::OutputNotForkable);
    };
    let os = |what| move |e: rustix::io::Errno| ForkError::Os { what, source: e.into() };
    let (result_read, result_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(os("creating the result pipe"))?;
    let (release_read, release_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(os("creating the release pipe"))?;
    let last_errno = Arc::new(AtomicI32::new(0));
    let emulation = output.fork_slow_device();
    let pacer = emulation.clone().map(DevicePacer::new);
    let sink = RawSink::new(fd, options.write_buffer_bytes, last_errno.clone(), pacer);
    // The header goes into the sink's buffer now (this allocates); the child flushes it.
    let writer = SnapshotWriter::new(sink, header).map_err(ForkError::Header)?;
    let job = ChildJob {
        region_ptr: region.ptr,
        region_len: region.len,
        // check_region: one region, so one page size.
        page_size: header.uniform_page_size().unwrap_or(0) as usize,
        writer,
        last_errno,
        result_fd: result_write.as_raw_fd(),
        release_fd: release_read.as_raw_fd(),
        parent_fds: [result_read.as_raw_fd(), release_write.as_raw_fd()],
    };
    let started = Instant::now();
    // SAFETY: the child runs only `child::run`, which follows the rules in the module doc
    // and ends in `_exit`; the parent continues normally.
    let pid = unsafe { libc::fork() };
    let pause_ns = started.elapsed().as_nanos() as u64;
    if pid == 0 {
        child::run(job);
    }
    // Parent: its copy of the job is dropped unflushed (RawSink never flushes on drop).
    drop(job);
    drop(result_write);
    drop(release_read);
    if pid < 0 {
        let source = std::io::Error::last_os_error();
        output.abort();
        return Err(ForkError::Os { what: "fork()", source });
    }
    Ok(ForkSnapshot {
        pid,
        started,
        pause_ns,
        result_read,
        release_write: Some(release_write),
        output: Some(output),
        region,
        options: options.clone(),
        emulation,
        exit: None,
    })
}

/// [`start_fork_snapshot`] then [`ForkSnapshot::wait`].
pub fn fork_snapshot(
    region: RegionRef,
    header: &Header,
    output: Box<dyn Output>,
    options: &ForkOptions,
) -> Result<ForkReport, ForkError> {
    start_fork_snapshot(region, header, output, options)?.wait()
}

impl ForkSnapshot {
    /// The child writing the snapshot.
    pub fn child_pid(&self) -> i32 {
        self.pid
    }

    /// The `fork()` call's duration, known as soon as the snapshot started.
    pub fn pause_ns(&self) -> u64 {
        self.pause_ns
    }

    /// Waits (bounded by `child_timeout_ms`) for the child, sampling its copy-on-write growth,
    /// then reaps it and commits the output. On failure the output is aborted (a file is left
    /// only as `NAME.partial`).
    pub fn wait(self) -> Result<ForkReport, ForkError> {
        self.wait_until(&AtomicBool::new(false))
    }

    /// [`ForkSnapshot::wait`], but ends early with [`ForkError::Cancelled`] (child killed,
    /// output aborted) once `cancel` is set; it is looked at every `memory_sample_ms`. The
    /// library installs no signal handlers: a program sets the flag from its own.
    pub fn wait_until(mut self, cancel: &AtomicBool) -> Result<ForkReport, ForkError> {
        let mut memory = ExtraMemory::default();
        let record = self.wait_for_record(&mut memory, cancel);
        // The child is alive and waiting for the release (if it reported): its smaps now
        // holds the final copy-on-write growth.
        self.sample_memory(&mut memory);
        // A release byte, not only EOF: a child of another concurrent fork snapshot may hold a
        // copy of our pipe's write end, and EOF would then wait for that other child.
        if let Some(release) = self.release_write.take() {
            let _ = rustix::io::write(&release, &[1]);
        }
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                self.kill_and_reap();
                self.abort_output();
                return Err(error);
            }
        };
        let exit = self.reap();
        let Some(record) = record else {
            self.abort_output();
            return Err(ForkError::ChildVanished { pid: self.pid, exit });
        };
        if record.status != ChildStatus::Ok {
            self.abort_output();
            return Err(ForkError::Child {
                pid: self.pid,
                status: record.status,
                page: record.failed_page,
                errno: record.errno,
                exit,
            });
        }
        let mut output = self.output.take().ok_or(ForkError::OutputNotForkable)?;
        let emulation = self.emulation.clone().map(|profile| child_emulation_report(profile, &record));
        output.add_forked_bytes(record.bytes, emulation);
        let summary = output.commit().map_err(ForkError::Output)?;
        let write_s = record.write_ns as f64 / 1e9;
        Ok(ForkReport {
            backend: "fork".into(),
            child_pid: self.pid,
            pause_ns: self.pause_ns,
            child_write_ns: record.write_ns,
            duration_ns: self.started.elapsed().as_nanos() as u64,
            pages: record.pages,
            bytes: record.bytes,
            write_bytes_per_sec: if write_s > 0.0 { (record.bytes as f64 / write_s) as u64 } else { 0 },
            child_exit: exit,
            extra_memory: memory,
            output: summary,
        })
    }

    /// The child's record, `None` if it closed the pipe without one, or a timeout error.
    fn wait_for_record(
        &mut self,
        memory: &mut ExtraMemory,
        cancel: &AtomicBool,
    ) -> Result<Option<ChildRecord>, ForkError> {
        let deadline = self.started + Duration::from_millis(self.options.child_timeout_ms);
        let mut buf = [0_u8; RECORD_BYTES];
        let mut got = 0;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(ForkError::Cancelled { pid: self.pid });
            }
            self.sample_memory(memory);
            let now = Instant::now();
            if now >= deadline {
                return Err(ForkError::Timeout { pid: self.pid, timeout_ms: self.options.child_timeout_ms });
            }
            let slice = Duration::from_millis(self.options.memory_sample_ms.max(1)).min(deadline - now);
            let timeout = rustix::event::Timespec::try_from(slice).ok();
            let mut fds = [rustix::event::PollFd::new(&self.result_read, rustix::event::PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {
                    // EOF on the result pipe may never come if another concurrent fork child
                    // holds its write end: notice a dead child directly.
                    if self.try_reap().is_some() {
                        return Ok(None);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
            match rustix::io::read(&self.result_read, &mut buf[got..]) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    got += n;
                    if got == RECORD_BYTES {
                        return Ok(ChildRecord::decode(&buf));
                    }
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => return Ok(None),
            }
        }
    }

    fn sample_memory(&self, memory: &mut ExtraMemory) {
        if self.exit.is_some() {
            return;
        }
        let start = self.region.ptr as usize;
        if let Some((region, total)) = memory::private_bytes(self.pid, start, start + self.region.len) {
            memory.region_cow_bytes_peak = memory.region_cow_bytes_peak.max(region);
            memory.child_private_bytes_peak = memory.child_private_bytes_peak.max(total);
            memory.samples += 1;
        }
    }

    /// Reaps the child if it has exited, without blocking.
    fn try_reap(&mut self) -> Option<ChildExit> {
        if self.exit.is_none() {
            self.waitpid(libc::WNOHANG);
        }
        self.exit
    }

    /// Waits for a released child to exit, at most [`RELEASED_EXIT_MS_MAX`]; then kills it.
    fn reap(&mut self) -> ChildExit {
        let deadline = Instant::now() + Duration::from_millis(RELEASED_EXIT_MS_MAX);
        while self.try_reap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.exit.is_none() {
            self.kill_and_reap();
        }
        self.exit.unwrap_or(ChildExit::Exited(-1))
    }

    /// One `waitpid`; records the exit when the child is gone.
    fn waitpid(&mut self, flags: i32) {
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
        if r == self.pid {
            self.exit = Some(if libc::WIFSIGNALED(status) {
                ChildExit::Signaled(libc::WTERMSIG(status))
            } else {
                ChildExit::Exited(libc::WEXITSTATUS(status))
            });
        } else if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // ECHILD: someone else reaped it (SIGCHLD set to be ignored); the status is lost.
            self.exit = Some(ChildExit::Exited(-1));
        }
    }

    fn kill_and_reap(&mut self) {
        if self.exit.is_some() {
            return;
        }
        // SAFETY: signalling our own, not yet reaped child (its pid cannot have been reused).
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        // SIGKILL cannot be caught: a blocking wait ends.
        while self.exit.is_none() {
            self.waitpid(0);
        }
    }

    fn abort_output(&mut self) {
        if let Some(output) = self.output.take() {
            output.abort();
        }
    }
}

impl Drop for ForkSnapshot {
    fn drop(&mut self) {
        self.kill_and_reap();
        self.abort_output();
    }
}

/// The emulation report of the child's writes: the profile's texts from the parent, the
/// counters from the child's record.
fn child_emulation_report(profile: SlowDeviceProfile, record: &ChildRecord) -> SlowDeviceReport {
    let mut report = DevicePacer::new(profile).into_report();
    report.bytes = record.bytes;
    report.stalls = record.stalls;
    report.stall_ns_total = record.stall_ns_total;
    report.stall_ns_max = record.stall_ns_max;
    report.sleep_ns_total = record.sleep_ns_total;
    // The child reports totals only.
    report.sleeps = None;
    report
}

fn check_region(region: RegionRef, header: &Header) -> Result<(), ForkError> {
    if region.ptr.is_null() || region.len == 0 {
        return Err(ForkError::InvalidRegion("empty or null region".into()));
    }
    let [entry] = header.regions.as_slice() else {
        return Err(ForkError::InvalidRegion(format!(
            "the fork backend saves one region; the header has {}",
            header.regions.len()
        )));
    };
    if entry.len != region.len as u64 || entry.page_size == 0 || !entry.len.is_multiple_of(entry.page_size) {
        return Err(ForkError::InvalidRegion(format!(
            "region is {} bytes but the header says {} pages of {} bytes (region_len {})",
            region.len,
            entry.page_count(),
            entry.page_size,
            entry.len
        )));
    }
    Ok(())
}
