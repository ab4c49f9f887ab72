//! The snapshot threads. Each loops until the stop flag is set and bounds every sleep by
//! [`IDLE_WAIT_MAX`], so a stop is seen quickly even if a wake-up were lost. Every exchange
//! with the engine is one [`Shared::turn`].

use super::shared::{
    IDLE_WAIT_MAX, SCAN_BUSY, SCAN_WAITS_FOR_CHANGE, SCAN_WAITS_FOR_DEADLINE, Shared, SnapshotError, StagedRun,
};
use super::sink::PageSink;
use super::thread_time::{SCAN_THREAD_NAME, ThreadClock};
use crate::sync::shim::Ordering;
use crate::uffd::{UffdEvent, WpUffd};
use rustix::event::{PollFd, PollFlags, Timespec};
use std::time::{Duration, Instant};
use wpsnap_core::{Capture, Lane, Nanos};
use wpsnap_format::{DigestedRun, PageDigest};

/// Reads every ready event: page faults into `faults` (at most `EVENTS_PER_READ_MAX` per
/// read, so bounded), region changes abort the snapshot. Returns how many events were read.
fn read_events(
    shared: &Shared,
    buf: &mut userfaultfd::EventBuffer,
    events: &mut Vec<UffdEvent>,
    faults: &mut Vec<u64>,
) -> Result<usize, SnapshotError> {
    events.clear();
    faults.clear();
    shared.uffd.read_events(buf, events)?;
    let region = &shared.regions;
    for event in events.iter() {
        match *event {
            UffdEvent::WriteProtectFault { addr } => match region.page_of(addr) {
                Some(page) => faults.push(page),
                None => return Err(SnapshotError::FaultOutsideRegion { addr }),
            },
            UffdEvent::OtherFault { addr } => {
                return Err(SnapshotError::UnexpectedMissingFault { addr });
            }
            UffdEvent::Remove { start, end } if region.overlaps(start, end) => {
                return Err(SnapshotError::RegionChanged(format!(
                    "pages {start:#x}..{end:#x} were discarded (MADV_DONTNEED or MADV_REMOVE)"
                )));
            }
            UffdEvent::Unmap { start, end } if region.overlaps(start, end) => {
                return Err(SnapshotError::RegionChanged(format!("{start:#x}..{end:#x} was unmapped")));
            }
            UffdEvent::Remap { from, len, .. } if region.overlaps(from, from + len) => {
                return Err(SnapshotError::RegionChanged(format!("{len} bytes at {from:#x} were moved by mremap")));
            }
            _ => {}
        }
    }
    Ok(events.len())
}

/// Waits until the uffd has events (unless `watch_uffd` is false), the wake eventfd fires, or
/// `timeout` passes.
fn poll_fds(shared: &Shared, timeout: Duration, watch_uffd: bool) -> Result<(), SnapshotError> {
    let timeout = timeout.min(IDLE_WAIT_MAX);
    let spec = Timespec { tv_sec: 0, tv_nsec: timeout.as_nanos() as i64 };
    let uffd_flags = if watch_uffd { PollFlags::IN } else { PollFlags::empty() };
    let mut fds = [PollFd::new(&shared.uffd, uffd_flags), PollFd::new(&shared.wake_fd, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&spec)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(SnapshotError::Poll(e.into())),
    }
    if fds[1].revents().contains(PollFlags::IN) {
        shared.drain_wake();
    }
    if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
        return Err(SnapshotError::UffdHangup);
    }
    Ok(())
}

/// Waits for uffd events: first spinning on a zero-timeout poll for up to the configured spin
/// time (a fault that comes meanwhile is read without a wake-up), then sleeping in `poll`.
fn wait_for_events(shared: &Shared, timeout: Duration) -> Result<(), SnapshotError> {
    if !shared.fault_spin.is_zero() {
        let spin_until = Instant::now() + shared.fault_spin.min(timeout);
        while Instant::now() < spin_until && !shared.stopped() {
            let mut fds = [PollFd::new(&shared.uffd, PollFlags::IN)];
            if rustix::event::poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })).is_ok_and(|n| n > 0) {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }
    poll_fds(shared, timeout, true)
}

/// Copies a capture's runs into staging memory, completes it in the engine (which unprotects
/// its span: the writers wake) and hands the copies to the sink thread, one staged run per
/// copy run. The sink thread digests them: the scan thread is the protection window's
/// critical path, the sink thread mostly idle (docs/results/2026-11-30-window.md).
fn stage(shared: &Shared, capture: Capture) -> Result<(), SnapshotError> {
    let page_size = shared.regions.page_size();
    // A run may end one chunk and start the next: one staged run per piece.
    let mut copies = Vec::with_capacity(capture.copy_runs().len() + 1);
    for run in capture.copy_runs() {
        shared.check_present(run.first.0, run.count)?;
        let (mut first, end) = (run.first.0, run.first.0 + run.count);
        while first < end {
            let mut data = shared.staging_memory.alloc_pages(end - first, page_size)?;
            let count = data.as_slice().len() as u64 / page_size;
            shared.regions.copy_pages(first, count, data.as_mut_slice());
            copies.push((first, count, data));
            first += count;
        }
    }
    shared.turn(|t| t.captured(capture))??;
    for (first, count, data) in copies {
        match shared.staging.push(StagedRun { first, count, data, digests: Vec::new() }) {
            Ok(()) => {}
            // Closed means the snapshot is stopping; the copy is not needed any more.
            Err(crate::sync::PushError::Closed) => return Ok(()),
            Err(crate::sync::PushError::Full { pages_used, pages_max }) => {
                return Err(SnapshotError::StagingOverrun { pages_used, pages_max });
            }
        }
    }
    Ok(())
}

/// How often the sink looks at the staging queue when it was not woken (pushes wake it only
/// once the queue is fuller, see `StagingQueue::with_wake_pages`).
pub(super) const SINK_POLL: Duration = Duration::from_millis(1);
/// Most staged runs, and about the most bytes, the sink thread writes in one batch: large
/// enough for few syscalls, small enough to hand memory back to the budget often.
const SINK_BATCH_RUNS_MAX: usize = 256;
const SINK_BATCH_BYTES_MAX: usize = 4 << 20;

/// Longest the event-reading lane keeps answering events after a failure, until the
/// protection is off and no event is pending.
const RELEASE_DRAIN_MAX: Duration = Duration::from_secs(5);

/// After a failure or cancel: keep reading events (so a thread blocked in munmap/madvise is let
/// go, and the kernel allows the unprotect again), wake faulting writers, and remove all
/// protection. Bounded by [`RELEASE_DRAIN_MAX`]; the session closes the uffd afterwards, which
/// releases anything left.
pub(super) fn drain_and_release(shared: &Shared) {
    if shared.engine.inspect(|engine, _| engine.is_complete()) {
        return;
    }
    let deadline = Instant::now() + RELEASE_DRAIN_MAX;
    let mut buf = WpUffd::event_buffer();
    let mut events = Vec::new();
    while Instant::now() < deadline {
        events.clear();
        let read = shared.uffd.read_events(&mut buf, &mut events).unwrap_or(0);
        for event in &events {
            if let UffdEvent::WriteProtectFault { addr } | UffdEvent::OtherFault { addr } = *event {
                let _ = shared
                    .uffd
                    .wake(addr & !(shared.regions.page_size() as usize - 1), shared.regions.page_size() as usize);
            }
        }
        if shared.release_writers() && read == 0 {
            return;
        }
        let _ = poll_fds(shared, Duration::from_millis(1), true);
    }
}

/// Runs `body` and turns its error into a snapshot failure.
pub(super) fn guarded(shared: &Shared, body: impl FnOnce(&Shared) -> Result<(), SnapshotError>) {
    if let Err(e) = body(shared) {
        shared.fail(e);
    }
}

/// Decoupled model: reads faults, copies each faulted unit to staging, unprotects at once.
/// The engine holds every fault it was given; this thread keeps no queue.
pub(super) fn fault_lane(shared: &Shared) -> Result<(), SnapshotError> {
    let mut buf = WpUffd::event_buffer();
    let mut events = Vec::with_capacity(crate::uffd::EVENTS_PER_READ_MAX);
    let mut faults = Vec::with_capacity(crate::uffd::EVENTS_PER_READ_MAX);
    while !shared.stopped() {
        let read = read_events(shared, &mut buf, &mut events, &mut faults)?;
        let capture = shared.turn(|t| -> Result<Option<Capture>, SnapshotError> {
            for &page in &faults {
                t.fault(page)?;
            }
            let capture = t.poll_capture(Lane::Fault);
            let waiting = capture.is_none() && t.engine().faults_queued() > 0;
            shared.fault_lane_waits_for_room.store(waiting, Ordering::Release);
            Ok(capture)
        })??;
        match capture {
            Some(capture) => {
                stage(shared, capture)?;
                // The fault queue may be empty now: the scan may go on.
                shared.wake_scanner_if_waiting();
            }
            None if read == 0 => wait_for_events(shared, IDLE_WAIT_MAX)?,
            None => {}
        }
    }
    Ok(())
}

/// Decoupled model: the background scan, paced by the policy and the budget.
pub(super) fn scan_lane(shared: &Shared) -> Result<(), SnapshotError> {
    let clock = ThreadClock::start();
    let mut scan_done = false;
    while !shared.stopped() {
        // Announce the wait before looking, so a change made after the look always wakes us.
        shared.scan_wait.store(SCAN_WAITS_FOR_CHANGE, Ordering::SeqCst);
        let seen = shared.scan_signal.generation();
        let (capture, wait, pending) = shared.turn(|t| {
            t.timeout_if_due();
            let capture = t.poll_capture(Lane::Scan);
            let wait = t.timeout_in();
            let pending = t.engine().pages_pending();
            if capture.is_some() {
                shared.scan_wait.store(SCAN_BUSY, Ordering::SeqCst);
            } else if wait.is_some() {
                shared.scan_wait.store(SCAN_WAITS_FOR_DEADLINE, Ordering::SeqCst);
            }
            (capture, wait.unwrap_or(IDLE_WAIT_MAX), pending)
        })?;
        match capture {
            Some(capture) => stage(shared, capture)?,
            None if pending == 0 && !scan_done => {
                // Nothing left to scan: the scan's own time ends here, not at the drain.
                scan_done = true;
                if let Some(time) = clock.stop(SCAN_THREAD_NAME) {
                    shared.record_thread_time(&time);
                }
            }
            None => {
                shared.scan_signal.wait_for_change(seen, wait.min(IDLE_WAIT_MAX));
            }
        }
    }
    Ok(())
}

/// Decoupled model: writes staged pages to the sink, then frees their memory and their room in
/// the budget, and tells the engine how many stream bytes they took.
pub(super) fn sink_lane(shared: &Shared, sink: &mut dyn PageSink) -> Result<(), SnapshotError> {
    let page_size = shared.regions.page_size() as usize;
    loop {
        let Some(run) = shared.staging.pop(SINK_POLL) else {
            if shared.stopped() {
                return Ok(());
            }
            continue;
        };
        if shared.stopped() {
            // Complete leaves nothing staged; after a cancel the copies are not wanted.
            return Ok(());
        }
        // Whatever else is already staged goes out in the same vectored writes.
        let mut batch = vec![run];
        let mut batch_bytes = batch[0].count as usize * page_size;
        while batch.len() < SINK_BATCH_RUNS_MAX && batch_bytes < SINK_BATCH_BYTES_MAX {
            let Some(more) = shared.staging.try_pop() else { break };
            batch_bytes += more.count as usize * page_size;
            batch.push(more);
        }
        for run in &mut batch {
            run.digests = run
                .data
                .as_slice()
                .chunks_exact(page_size)
                .zip(run.first..)
                .map(|(page, index)| PageDigest::of(index, page))
                .collect();
        }
        let runs: Vec<DigestedRun<'_>> = batch
            .iter()
            .map(|r| {
                debug_assert_eq!(r.digests.len() as u64, r.count, "one digest per staged page");
                DigestedRun { first: r.first, data: r.data.as_slice(), digests: &r.digests }
            })
            .collect();
        let bytes_before = sink.bytes_written();
        sink.write_runs(&runs).map_err(SnapshotError::Sink)?;
        drop(runs);
        let bytes = sink.bytes_written().saturating_sub(bytes_before);
        let count = batch.iter().map(|r| r.count).sum();
        // Frees the staging memory (a chunk is unmapped with its last run).
        drop(batch);
        shared.turn(|t| {
            t.stream_bytes(bytes);
            t.sink_drained(count)
        })??;
        shared.wake_scanner_if_waiting();
        if shared.fault_lane_waits_for_room.load(Ordering::Acquire) {
            shared.wake_poller();
        }
    }
}

/// The qemu model: one thread reads a fault without blocking, saves the page to the stream,
/// then unprotects; it scans in between. After an iteration end with the bandwidth limit used
/// up it sleeps, reading no fault, as QEMU's migration thread does.
pub(super) fn qemu_lane(shared: &Shared, sink: &mut dyn PageSink) -> Result<(), SnapshotError> {
    let page_size = shared.regions.page_size() as usize;
    let mut buf = WpUffd::event_buffer();
    let mut events = Vec::with_capacity(crate::uffd::EVENTS_PER_READ_MAX);
    let mut faults = Vec::with_capacity(crate::uffd::EVENTS_PER_READ_MAX);
    let mut data = Vec::new();
    let mut asleep_until: Option<Nanos> = None;
    while !shared.stopped() {
        if let Some(until) = asleep_until {
            let now = shared.elapsed();
            if now < until {
                // Not watching the uffd: faults wait in the kernel, as they do for QEMU.
                poll_fds(shared, Duration::from_nanos(until.saturating_since(now).as_ns()), false)?;
                continue;
            }
            asleep_until = None;
        }
        read_events(shared, &mut buf, &mut events, &mut faults)?;
        let (capture, wait) = shared.turn(|t| -> Result<_, SnapshotError> {
            for &page in &faults {
                t.fault(page)?;
            }
            t.timeout_if_due();
            let capture = t.poll_capture(Lane::Single);
            Ok((capture, t.timeout_in().unwrap_or(IDLE_WAIT_MAX)))
        })??;
        match capture {
            Some(capture) => {
                // The page stays protected until the stream has it, written and flushed: QEMU's
                // behaviour (a fault waits for its page's stream write, not for a later flush).
                let bytes_before = sink.bytes_written();
                for run in capture.copy_runs() {
                    data.resize((run.count * shared.regions.page_size()) as usize, 0);
                    shared.check_present(run.first.0, run.count)?;
                    shared.regions.copy_pages(run.first.0, run.count, &mut data);
                    for (i, page) in data.chunks_exact(page_size).enumerate() {
                        sink.write_page(run.first.0 + i as u64, page)?;
                    }
                }
                sink.flush()?;
                let bytes = sink.bytes_written().saturating_sub(bytes_before);
                asleep_until = shared.turn(|t| -> Result<_, SnapshotError> {
                    t.stream_bytes(bytes);
                    t.captured(capture)?;
                    Ok(t.engine().lane_asleep_until(Lane::Single, t.now()))
                })??;
            }
            None => wait_for_events(shared, wait)?,
        }
    }
    Ok(())
}
