//! The snapshot threads. Each loops until the stop flag is set and bounds every sleep by
//! [`IDLE_WAIT_MAX`], so a stop is seen quickly even if a wake-up were lost.

use super::shared::{IDLE_WAIT_MAX, SCAN_BUSY, SCAN_WAITS_FOR_CHANGE, SCAN_WAITS_FOR_DEADLINE, Shared, SnapshotError};
use super::sink::PageSink;
use crate::sync::StagedRun;
use crate::sync::shim::Ordering;
use crate::uffd::{UffdEvent, WpUffd};
use rustix::event::{PollFd, PollFlags, Timespec};
use std::collections::VecDeque;
use std::time::Duration;
use wpsnap_core::{Action, Capture, FaultError, Lane, Nanos, PageIndex};
use wpsnap_format::PageDigest;

/// Faults read from the uffd but not yet accepted by the engine (its queue was full).
/// Each blocked writer thread contributes at most one, so this bounds writer threads.
const HELD_FAULTS_MAX: usize = 1 << 16;

/// Reads every ready event; page faults go to `held`, region changes abort the snapshot.
fn read_events(
    shared: &Shared,
    buf: &mut userfaultfd::EventBuffer,
    events: &mut Vec<UffdEvent>,
    held: &mut VecDeque<u64>,
) -> Result<(), SnapshotError> {
    // Without room for a full read, leave the events in the kernel (the writers wait there).
    if held.len() + crate::uffd::EVENTS_PER_READ_MAX > HELD_FAULTS_MAX {
        return Ok(());
    }
    events.clear();
    shared.uffd.read_events(buf, events)?;
    let region = &shared.region;
    for event in events.iter() {
        match *event {
            UffdEvent::WriteProtectFault { addr } => match region.page_of(addr) {
                Some(page) => held.push_back(page),
                None => return Err(SnapshotError::Internal(format!("fault at {addr:#x} outside the region"))),
            },
            UffdEvent::OtherFault { addr } => {
                return Err(SnapshotError::Internal(format!("unexpected missing-page fault at {addr:#x}")));
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
    Ok(())
}

/// Hands held faults to the engine (as many as its queue takes), collecting its actions.
fn feed_faults(
    engine: &mut wpsnap_core::Engine,
    now: Nanos,
    held: &mut VecDeque<u64>,
    actions: &mut Vec<Action>,
) -> Result<(), SnapshotError> {
    while let Some(&page) = held.front() {
        match engine.handle_fault(now, PageIndex(page)) {
            Ok(_) => {
                held.pop_front();
            }
            Err(FaultError::QueueFull { .. }) => break,
            Err(e) => return Err(SnapshotError::Internal(e.to_string())),
        }
        drain(engine, actions);
    }
    Ok(())
}

fn drain(engine: &mut wpsnap_core::Engine, actions: &mut Vec<Action>) {
    while let Some(action) = engine.poll_action() {
        actions.push(action);
    }
}

/// Waits until the uffd has events, the wake eventfd fires, or `timeout` passes.
fn poll_uffd(shared: &Shared, timeout: Duration) -> Result<(), SnapshotError> {
    let timeout = timeout.min(IDLE_WAIT_MAX);
    let spec = Timespec { tv_sec: 0, tv_nsec: timeout.as_nanos() as i64 };
    let mut fds = [PollFd::new(&shared.uffd, PollFlags::IN), PollFd::new(&shared.wake_fd, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&spec)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(SnapshotError::Internal(format!("poll on the userfaultfd: {e}"))),
    }
    if fds[1].revents().contains(PollFlags::IN) {
        shared.drain_wake();
    }
    if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
        return Err(SnapshotError::Internal("the userfaultfd reported an error".into()));
    }
    Ok(())
}

/// Copies a capture's pages into a staging buffer (decoupled model).
fn copy_capture(shared: &Shared, capture: &Capture) -> Vec<u8> {
    let run = capture.run();
    let mut buffer = shared.staging.take_buffer((run.count * shared.region.page_size()) as usize);
    shared.region.copy_pages(run.first.0, run.count, &mut buffer);
    buffer
}

/// Completes a capture in the engine and carries out its actions (the unprotect).
fn complete_capture(shared: &Shared, capture: Capture, actions: &mut Vec<Action>) -> Result<(), SnapshotError> {
    {
        let (mut state, now) = shared.lock_engine();
        state.engine.handle_captured(now, capture).map_err(|e| SnapshotError::Internal(e.to_string()))?;
        drain(&mut state.engine, actions);
    }
    shared.apply(actions)
}

/// Copies, unprotects, digests the copy (after the unprotect, so no writer waits for it) and
/// hands it to the sink thread.
fn stage(shared: &Shared, capture: Capture, actions: &mut Vec<Action>) -> Result<(), SnapshotError> {
    let run = capture.run();
    let data = copy_capture(shared, &capture);
    complete_capture(shared, capture, actions)?;
    let page_size = shared.region.page_size() as usize;
    let digests =
        data.chunks_exact(page_size).zip(run.first.0..).map(|(page, index)| PageDigest::of(index, page)).collect();
    match shared.staging.push(StagedRun { first: run.first.0, count: run.count, data, digests }) {
        Ok(()) => Ok(()),
        // Closed means the snapshot is stopping; the copy is not needed any more.
        Err(crate::sync::PushError::Closed) => Ok(()),
        Err(e) => Err(SnapshotError::Internal(format!("staging queue: {e:?}"))),
    }
}

/// How often the sink looks at the staging queue when it was not woken (pushes wake it only
/// once the queue is fuller, see `StagingQueue::with_wake_pages`).
pub(super) const SINK_POLL: Duration = Duration::from_millis(1);

/// Longest the event-reading lane keeps answering events after a failure, until the
/// protection is off and no event is pending.
const RELEASE_DRAIN_MAX: Duration = Duration::from_secs(5);

/// After a failure or cancel: keep reading events (so a thread blocked in munmap/madvise is let
/// go, and the kernel allows the unprotect again), wake faulting writers, and remove all
/// protection. Bounded by [`RELEASE_DRAIN_MAX`]; the session closes the uffd afterwards, which
/// releases anything left.
pub(super) fn drain_and_release(shared: &Shared) {
    if shared.lock_engine().0.engine.is_complete() {
        return;
    }
    let deadline = std::time::Instant::now() + RELEASE_DRAIN_MAX;
    let mut buf = WpUffd::event_buffer();
    let mut events = Vec::new();
    while std::time::Instant::now() < deadline {
        events.clear();
        let read = shared.uffd.read_events(&mut buf, &mut events).unwrap_or(0);
        for event in &events {
            if let UffdEvent::WriteProtectFault { addr } | UffdEvent::OtherFault { addr } = *event {
                let _ = shared
                    .uffd
                    .wake(addr & !(shared.region.page_size() as usize - 1), shared.region.page_size() as usize);
            }
        }
        if shared.release_writers() && read == 0 {
            return;
        }
        let _ = poll_uffd(shared, Duration::from_millis(1));
    }
}

/// Runs `body` and turns its error into a snapshot failure.
pub(super) fn guarded(shared: &Shared, body: impl FnOnce(&Shared) -> Result<(), SnapshotError>) {
    if let Err(e) = body(shared) {
        shared.fail(e);
    }
}

/// Decoupled model: reads faults, copies each faulted page to staging, unprotects at once.
pub(super) fn fault_lane(shared: &Shared) -> Result<(), SnapshotError> {
    let mut buf = WpUffd::event_buffer();
    let mut events = Vec::with_capacity(crate::uffd::EVENTS_PER_READ_MAX);
    let mut held = VecDeque::new();
    let mut actions = Vec::new();
    while !shared.stopped() {
        read_events(shared, &mut buf, &mut events, &mut held)?;
        let capture = {
            let (mut state, now) = shared.lock_engine();
            feed_faults(&mut state.engine, now, &mut held, &mut actions)?;
            let capture = state.engine.poll_capture(now, Lane::Fault);
            let waiting = capture.is_none() && (state.engine.faults_queued() > 0 || !held.is_empty());
            shared.fault_lane_waits_for_room.store(waiting, Ordering::Release);
            capture
        };
        shared.apply(&mut actions)?;
        match capture {
            Some(capture) => {
                stage(shared, capture, &mut actions)?;
                // The fault queue may be empty now: the scan may go on.
                shared.wake_scanner_if_waiting();
            }
            None if events.is_empty() || !held.is_empty() => poll_uffd(shared, IDLE_WAIT_MAX)?,
            None => {}
        }
    }
    Ok(())
}

/// Decoupled model: the background scan, paced by the policy.
pub(super) fn scan_lane(shared: &Shared) -> Result<(), SnapshotError> {
    let mut actions = Vec::new();
    while !shared.stopped() {
        // Announce the wait before looking, so a change made after the look always wakes us.
        shared.scan_wait.store(SCAN_WAITS_FOR_CHANGE, Ordering::SeqCst);
        let seen = shared.scan_signal.generation();
        let (capture, wait) = {
            let (mut state, now) = shared.lock_engine();
            if state.engine.poll_timeout().is_some_and(|at| at <= now) {
                state.engine.handle_timeout(now);
            }
            let capture = state.engine.poll_capture(now, Lane::Scan);
            let wait = match state.engine.poll_timeout() {
                Some(at) => {
                    shared.scan_wait.store(SCAN_WAITS_FOR_DEADLINE, Ordering::SeqCst);
                    Duration::from_nanos(at.saturating_since(now).as_ns())
                }
                None => IDLE_WAIT_MAX,
            };
            if capture.is_some() {
                shared.scan_wait.store(SCAN_BUSY, Ordering::SeqCst);
            }
            (capture, wait)
        };
        match capture {
            Some(capture) => stage(shared, capture, &mut actions)?,
            None => {
                shared.scan_signal.wait_for_change(seen, wait.min(IDLE_WAIT_MAX));
            }
        }
    }
    Ok(())
}

/// Decoupled model: writes staged pages to the sink, then frees their room in the engine.
pub(super) fn sink_lane(shared: &Shared, sink: &mut dyn PageSink) -> Result<(), SnapshotError> {
    let page_size = shared.region.page_size() as usize;
    let mut actions = Vec::new();
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
        debug_assert_eq!(run.digests.len() as u64, run.count, "one digest per staged page");
        for ((page, index), digest) in run.data.chunks_exact(page_size).zip(run.first..).zip(&run.digests) {
            sink.write_page_digested(index, page, digest).map_err(|e| SnapshotError::Sink(e.0))?;
        }
        let count = run.count;
        shared.staging.recycle(run.data);
        {
            let (mut state, now) = shared.lock_engine();
            state.engine.handle_sink_drained(now, count).map_err(|e| SnapshotError::Internal(e.to_string()))?;
            drain(&mut state.engine, &mut actions);
        }
        shared.apply(&mut actions)?;
        shared.wake_scanner_if_waiting();
        if shared.fault_lane_waits_for_room.load(Ordering::Acquire) {
            shared.wake_poller();
        }
    }
}

/// The qemu model: one thread reads a fault without blocking, saves the page to the stream,
/// then unprotects; it scans in between.
pub(super) fn qemu_lane(shared: &Shared, sink: &mut dyn PageSink) -> Result<(), SnapshotError> {
    let page_size = shared.region.page_size() as usize;
    let mut buf = WpUffd::event_buffer();
    let mut events = Vec::with_capacity(crate::uffd::EVENTS_PER_READ_MAX);
    let mut held = VecDeque::new();
    let mut actions = Vec::new();
    let mut data = Vec::new();
    while !shared.stopped() {
        read_events(shared, &mut buf, &mut events, &mut held)?;
        let (capture, wait) = {
            let (mut state, now) = shared.lock_engine();
            feed_faults(&mut state.engine, now, &mut held, &mut actions)?;
            if state.engine.poll_timeout().is_some_and(|at| at <= now) {
                state.engine.handle_timeout(now);
            }
            let capture = state.engine.poll_capture(now, Lane::Single);
            let wait = match state.engine.poll_timeout() {
                Some(at) => Duration::from_nanos(at.saturating_since(now).as_ns()),
                None => IDLE_WAIT_MAX,
            };
            (capture, wait)
        };
        shared.apply(&mut actions)?;
        match capture {
            Some(capture) => {
                let run = capture.run();
                data.resize((run.count * shared.region.page_size()) as usize, 0);
                shared.region.copy_pages(run.first.0, run.count, &mut data);
                // The page stays protected until the stream has it, written and flushed: QEMU's
                // behaviour (a fault waits for its page's stream write, not for a later flush).
                for (i, page) in data.chunks_exact(page_size).enumerate() {
                    sink.write_page(run.first.0 + i as u64, page).map_err(|e| SnapshotError::Sink(e.0))?;
                }
                sink.flush().map_err(|e| SnapshotError::Sink(e.0))?;
                complete_capture(shared, capture, &mut actions)?;
            }
            None => poll_uffd(shared, wait)?,
        }
    }
    Ok(())
}
