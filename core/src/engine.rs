//! The snapshot state machine.

use crate::bitmap::PageBitmap;
use crate::config::{ConfigError, EngineConfig, FAULT_QUEUE_PAGES_MAX, ServiceModel};
use crate::fault_queue::{FaultQueue, QueuedFault};
use crate::iteration::{IterationClock, IterationSummary};
use crate::latency::LatencyRecorder;
use crate::page::{PageIndex, PageRun};
use crate::policy::{Cause, Gate, Observation, ThrottlePolicy};
use crate::scan_cursor::ScanCursor;
use crate::stats::{EngineReport, Outcome, Stats};
use crate::time::Nanos;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use thiserror::Error;

/// Most actions one input can produce (unprotect + iteration end + complete).
const ACTIONS_PER_INPUT_MAX: usize = 4;

/// A capture lane: one thread of the driver that copies pages out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lane {
    /// The qemu model's one thread: faults first, then the scan.
    Single,
    /// The decoupled model's fault-service thread.
    Fault,
    /// The decoupled model's scanner thread.
    Scan,
}

impl Lane {
    fn index(self) -> usize {
        self as usize
    }
    fn serves_faults(self) -> bool {
        matches!(self, Lane::Single | Lane::Fault)
    }
    fn serves_scan(self) -> bool {
        matches!(self, Lane::Single | Lane::Scan)
    }
}

/// Work the engine hands a lane: copy these pages out of the region while they are still
/// write-protected, then give this value back to [`Engine::handle_captured`].
///
/// In the qemu model "copy out" means written to the stream; in the decoupled model, copied
/// into staging memory (the engine has reserved room for it in the budget). A capture covers
/// whole capture units. It cannot be cloned or built outside the engine, so a capture is
/// completed at most once.
#[must_use = "a capture must be completed with Engine::handle_captured"]
#[derive(Debug, PartialEq, Eq)]
pub struct Capture {
    run: PageRun,
    /// The runs to copy when they are not the whole span; empty when the span is one run
    /// (every fault capture, and every scan capture without saved pages inside), so the
    /// fault path allocates nothing.
    gapped_copies: Vec<PageRun>,
    cause: Cause,
    lane: Lane,
    serial: u64,
}

impl Capture {
    /// The span this capture covers and unprotects when completed. It equals the one run of
    /// [`copy_runs`](Capture::copy_runs) unless the config's `scan_spans_saved_pages` is set.
    pub fn run(&self) -> PageRun {
        self.run
    }
    /// The runs to copy out, in order, inside [`run`](Capture::run): the span's unsaved
    /// pages. The pages between them were saved before and must not be copied again.
    pub fn copy_runs(&self) -> &[PageRun] {
        if self.gapped_copies.is_empty() { std::slice::from_ref(&self.run) } else { &self.gapped_copies }
    }
    /// Pages to copy out (the pages of [`copy_runs`](Capture::copy_runs)).
    pub fn pages_copied(&self) -> u64 {
        self.copy_runs().iter().map(|r| r.count).sum()
    }
    pub fn cause(&self) -> Cause {
        self.cause
    }
    pub fn lane(&self) -> Lane {
        self.lane
    }
}

/// What the driver must do, in the order returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove write protection from these pages and wake writers blocked on them (one call
    /// for the whole run).
    Unprotect(PageRun),
    /// Wake a writer that faulted on a page already unprotected (it raced the unprotect).
    Wake(PageIndex),
    /// An iteration ended (QEMU's `ram_save_iterate` returned). In the qemu model, if the
    /// bandwidth limit is used up, the one thread now sleeps until the next slice and reads
    /// no fault: [`Engine::lane_asleep_until`] says until when. Otherwise the driver may do
    /// housekeeping (progress, cancel checks) and go on.
    IterationEnd(IterationSummary),
    /// The snapshot was cancelled: remove all protection and wake every waiter.
    UnprotectAll,
    /// Every page is saved and, in the decoupled model, drained to the sink.
    Complete,
}

/// What became of a fault event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The page joined the fault queue; a lane will be offered it before any scan page.
    Queued,
    /// The page was already queued or being captured; its unprotect will wake this writer too.
    AlreadyInProgress,
    /// The page was already saved; a [`Action::Wake`] follows.
    AlreadySaved,
}

/// Merges each [`Action::Unprotect`] with the one before it when their runs touch, so the
/// driver issues one call per contiguous run. Order is kept otherwise.
pub fn coalesce_unprotects(actions: &mut Vec<Action>) {
    let mut merged: Vec<Action> = Vec::with_capacity(actions.len());
    for action in actions.drain(..) {
        match (merged.last_mut(), action) {
            (Some(Action::Unprotect(prev)), Action::Unprotect(run)) if prev.end() == run.first.0 => {
                prev.count += run.count;
            }
            (_, action) => merged.push(action),
        }
    }
    *actions = merged;
}

/// A fault event the engine cannot take.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FaultError {
    #[error("fault on page {page} outside the region of {page_count} pages")]
    OutOfRegion { page: u64, page_count: u64 },
    /// More faults queued than threads can exist ([`FAULT_QUEUE_PAGES_MAX`]): a driver bug
    /// or a runaway process; the snapshot must be cancelled.
    #[error("more than {bound} faults queued at once (more than Linux allows threads): the snapshot cannot go on")]
    QueueOverflow { bound: usize },
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EngineError {
    #[error("capture of {run:?} on lane {lane:?} is not the one in flight")]
    UnknownCapture { run: PageRun, lane: Lane },
    #[error("sink drained {drained} pages but only {used} were staged")]
    DrainedMoreThanStaged { drained: u64, used: u64 },
}

/// The qemu model's thread asleep on the bandwidth limit after an iteration end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LaneSleep {
    since: Nanos,
    until: Nanos,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    /// The span unprotected when the capture completes.
    run: PageRun,
    /// Pages copied (and staged) out of the span.
    copied: u64,
    cause: Cause,
    serial: u64,
    /// For a fault capture, when its event was read.
    fault_read_at: Option<Nanos>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Complete,
    Cancelled(String),
}

/// The sans-IO snapshot engine.
///
/// # Protocol
/// 1. Write-protect the whole region with writers paused, then build the engine.
/// 2. Feed inputs as they happen: [`handle_fault`](Engine::handle_fault),
///    [`handle_captured`](Engine::handle_captured), [`handle_sink_drained`](Engine::handle_sink_drained),
///    [`handle_stream_bytes`](Engine::handle_stream_bytes),
///    [`handle_fault_wait`](Engine::handle_fault_wait), [`handle_timeout`](Engine::handle_timeout).
///    In the qemu model, read no fault event while [`lane_asleep_until`](Engine::lane_asleep_until)
///    says the thread sleeps.
/// 3. **After every input, drain [`poll_action`](Engine::poll_action) until it returns `None`**
///    (debug builds assert this at the next input), then ask each idle lane for work with
///    [`poll_capture`](Engine::poll_capture), then arm a timer for
///    [`poll_timeout`](Engine::poll_timeout).
/// 4. Stop at [`Action::Complete`], or after [`Action::UnprotectAll`] when cancelled.
pub struct Engine {
    config: EngineConfig,
    pending: PageBitmap,
    cursor: ScanCursor,
    faults: FaultQueue,
    in_flight: [Option<InFlight>; 3],
    next_serial: u64,
    staging_used: u64,
    policy: Box<dyn ThrottlePolicy>,
    iteration: IterationClock,
    actions: VecDeque<Action>,
    phase: Phase,
    /// The seed's `last_fault_ns`.
    last_fault_read: Option<Nanos>,
    /// The scan's gate is closed until then.
    scan_wait_until: Option<Nanos>,
    throttled_since: Option<Nanos>,
    staging_blocked_since: Option<Nanos>,
    /// The head of the fault queue found no budget room at this time (and was counted).
    fault_blocked_since: Option<Nanos>,
    sleep: Option<LaneSleep>,
    last_input: Nanos,
    stats: Stats,
    fault_wait: LatencyRecorder,
    seed_latency: LatencyRecorder,
    service_latency: LatencyRecorder,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pending", &self.pending.count_ones())
            .field("faults_queued", &self.faults.len())
            .field("staging_used", &self.staging_used)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for a region whose every page was write-protected at `now`.
    pub fn new(config: EngineConfig, now: Nanos) -> Result<Engine, ConfigError> {
        config.validate()?;
        let policy = config.policy.build(config.page_size);
        let iteration = IterationClock::new(config.effective_iteration_mode().wait_max(), now);
        Ok(Engine {
            pending: PageBitmap::all_set(config.page_count),
            cursor: ScanCursor::default(),
            faults: FaultQueue::new(config.page_count, FAULT_QUEUE_PAGES_MAX),
            in_flight: [None; 3],
            next_serial: 0,
            staging_used: 0,
            policy,
            iteration,
            actions: VecDeque::with_capacity(ACTIONS_PER_INPUT_MAX),
            phase: Phase::Running,
            last_fault_read: None,
            scan_wait_until: None,
            throttled_since: None,
            staging_blocked_since: None,
            fault_blocked_since: None,
            sleep: None,
            last_input: now,
            stats: Stats { started_at: now, ..Stats::default() },
            fault_wait: LatencyRecorder::new(),
            seed_latency: LatencyRecorder::new(),
            service_latency: LatencyRecorder::new(),
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Pages neither saved, nor being captured, nor queued.
    pub fn pages_pending(&self) -> u64 {
        self.pending.count_ones()
    }
    pub fn is_pending(&self, page: PageIndex) -> bool {
        page.0 < self.pending.len() && self.pending.get(page.0)
    }
    /// The per-page memory [`handle_fault`](Engine::handle_fault) touches for `page` (its
    /// words of the pending set and of the fault queue's set), for a driver that prefetches
    /// them ahead of a likely fault: a random page of a large region misses the cache
    /// otherwise. Nothing is read or changed through them.
    pub fn fault_words(&self, page: PageIndex) -> [Option<&u64>; 2] {
        if page.0 >= self.config.page_count {
            return [None, None];
        }
        let first = self.unit_of(page).first;
        [self.pending.word_holding(first.0), self.faults.queued_word(first)]
    }
    pub fn faults_queued(&self) -> usize {
        self.faults.len()
    }
    /// Staging pages in use or reserved for captures in flight (decoupled model); never more
    /// than the budget.
    pub fn staging_used(&self) -> u64 {
        self.staging_used
    }
    /// In the qemu model, after an iteration end with the bandwidth limit used up: the thread
    /// sleeps until then and must read no fault event before (QEMU's `migration_rate_limit`).
    pub fn lane_asleep_until(&self, lane: Lane, now: Nanos) -> Option<Nanos> {
        self.sleep.filter(|s| lane == Lane::Single && now < s.until && self.phase == Phase::Running).map(|s| s.until)
    }
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Complete
    }
    pub fn is_cancelled(&self) -> bool {
        matches!(self.phase, Phase::Cancelled(_))
    }
    /// Running: neither complete nor cancelled.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }
    /// Iteration time limit in force.
    pub fn iteration_wait_max(&self) -> Nanos {
        self.iteration.wait_max()
    }
    pub fn fault_wait(&self) -> &LatencyRecorder {
        &self.fault_wait
    }
    pub fn seed_latency(&self) -> &LatencyRecorder {
        &self.seed_latency
    }
    pub fn service_latency(&self) -> &LatencyRecorder {
        &self.service_latency
    }
    /// The active policy, for drivers that report its state.
    pub fn policy(&self) -> &dyn ThrottlePolicy {
        self.policy.as_ref()
    }

    fn begin_input(&mut self, now: Nanos) {
        debug_assert!(
            self.actions.is_empty(),
            "the driver must drain poll_action after every input (left: {:?})",
            self.actions
        );
        debug_assert!(now >= self.last_input, "time went back: {now:?} < {:?}", self.last_input);
        self.last_input = self.last_input.max(now);
    }

    fn push_action(&mut self, action: Action) {
        self.actions.push_back(action);
        debug_assert!(self.actions.len() <= ACTIONS_PER_INPUT_MAX, "{:?}", self.actions);
    }

    /// A writer faulted on `page`; the driver read the event at `now`. The engine holds every
    /// fault it accepts until a lane captures it: the driver keeps no queue of its own.
    pub fn handle_fault(&mut self, now: Nanos, page: PageIndex) -> Result<FaultOutcome, FaultError> {
        self.begin_input(now);
        let page_count = self.config.page_count;
        if page.0 >= page_count {
            return Err(FaultError::OutOfRegion { page: page.0, page_count });
        }
        if self.phase != Phase::Running {
            // Everything is (being) unprotected; the writer only needs waking.
            self.stats.faults += 1;
            self.push_action(Action::Wake(page));
            return Ok(FaultOutcome::AlreadySaved);
        }
        let unit = self.unit_of(page);
        // Capture units are taken whole, so a unit's pages are all pending or none.
        let pending = self.pending.get(unit.first.0);
        if pending && self.faults.is_full() {
            return Err(FaultError::QueueOverflow { bound: FAULT_QUEUE_PAGES_MAX });
        }
        self.stats.faults += 1;
        self.last_fault_read = Some(now);
        self.policy.observe(now, Observation::FaultRead);
        if pending {
            self.pending.clear_run(unit.first.0, unit.count);
            self.faults.push(QueuedFault { run: unit, read_at: now });
            self.stats.fault_queue_peak = self.stats.fault_queue_peak.max(self.faults.len() as u64);
            if self.config.scan_follows_faults {
                self.cursor.move_to(PageIndex(unit.end()));
            }
            return Ok(FaultOutcome::Queued);
        }
        self.stats.duplicate_faults += 1;
        let in_flight = self.in_flight.iter().flatten().any(|f| f.run.contains(page));
        if in_flight || self.faults.contains(page) {
            return Ok(FaultOutcome::AlreadyInProgress);
        }
        self.stats.wakes_only += 1;
        self.push_action(Action::Wake(page));
        Ok(FaultOutcome::AlreadySaved)
    }

    /// The capture unit holding `page` (shorter at the end of the region).
    fn unit_of(&self, page: PageIndex) -> PageRun {
        let unit = self.config.capture_unit_pages;
        // A power of two (validated): a mask, not a division, on every fault and capture.
        debug_assert!(unit.is_power_of_two());
        let first = page.0 & !(unit - 1);
        PageRun { first: PageIndex(first), count: unit.min(self.config.page_count - first) }
    }

    /// Work for `lane`, if it is idle and there is any it may do now.
    pub fn poll_capture(&mut self, now: Nanos, lane: Lane) -> Option<Capture> {
        if self.phase != Phase::Running
            || !self.config.service_model.lanes().contains(&lane)
            || self.in_flight[lane.index()].is_some()
        {
            return None;
        }
        if let Some(sleep) = self.sleep.filter(|_| lane == Lane::Single) {
            if now < sleep.until {
                return None;
            }
            self.sleep = None;
            self.stats.iteration_sleep_ns += now.saturating_since(sleep.since).as_ns();
        }
        // A writer blocked behind a queued fault: its wait so far, the driver's own measure.
        if let Some(oldest) = self.faults.front() {
            self.policy.observe(now, Observation::FaultQueueAge(now.saturating_since(oldest.read_at)));
        }
        if lane.serves_faults() && !self.faults.is_empty() {
            return self.start_fault_capture(now, lane);
        }
        // A queued fault is never overtaken by a scan page started after it.
        if lane.serves_scan() && self.faults.is_empty() {
            return self.start_scan_capture(now, lane);
        }
        None
    }

    fn staging_free(&self) -> u64 {
        match self.config.service_model {
            ServiceModel::Qemu => u64::MAX,
            ServiceModel::Decoupled => self.config.budget_pages - self.staging_used,
        }
    }

    /// Room the scan may take now (decoupled model). Up to its high-water mark, so faults find
    /// the rest of the budget free; beyond it once everything still to capture (pending and
    /// queued) fits in the budget beside what is staged, since then no fault can ever lack room.
    fn scan_room(&self) -> u64 {
        match self.config.service_model {
            ServiceModel::Qemu => u64::MAX,
            ServiceModel::Decoupled => {
                let budget = self.config.budget_pages;
                let outstanding = self.pending.count_ones() + self.faults.pages();
                if self.staging_used + outstanding <= budget {
                    budget - self.staging_used
                } else {
                    self.config.scan_high_water_pages().saturating_sub(self.staging_used)
                }
            }
        }
    }

    fn reserve_staging(&mut self, pages: u64) {
        if self.config.service_model == ServiceModel::Decoupled {
            self.staging_used += pages;
            debug_assert!(self.staging_used <= self.config.budget_pages, "budget exceeded");
            self.stats.staging_peak_pages = self.stats.staging_peak_pages.max(self.staging_used);
        }
    }

    /// Starts a capture of the span `run` on `lane`; `copies` are the runs to copy inside it,
    /// empty for the whole span.
    fn start(
        &mut self,
        lane: Lane,
        run: PageRun,
        mut copies: Vec<PageRun>,
        cause: Cause,
        fault_read_at: Option<Nanos>,
    ) -> Capture {
        let serial = self.next_serial;
        self.next_serial += 1;
        if copies.as_slice() == [run] {
            copies.clear();
        }
        let capture = Capture { run, gapped_copies: copies, cause, lane, serial };
        let copied = capture.pages_copied();
        self.reserve_staging(copied);
        self.in_flight[lane.index()] = Some(InFlight { run, copied, cause, serial, fault_read_at });
        capture
    }

    /// A page saved and done: not pending, not queued, not in any lane's capture. Only such
    /// pages may lie between the copy runs of a scan span (unprotecting them again is a no-op).
    fn is_saved_and_done(&self, page: u64) -> bool {
        !self.pending.get(page)
            && !self.faults.contains(PageIndex(page))
            && !self.in_flight.iter().flatten().any(|f| f.run.contains(PageIndex(page)))
    }

    /// The scan's span from `first` (a pending unit start): pending runs up to `copy_max`
    /// pages, stepping over saved-and-done pages within `window` pages when the config allows
    /// it, and ending at its last pending page. The runs are listed only when there are
    /// several; none means the span is one run (the common case allocates nothing).
    fn scan_span(&self, first: u64, window: u64, copy_max: u64) -> (PageRun, Vec<PageRun>) {
        let end = first.saturating_add(window).min(self.config.page_count);
        let mut copies = Vec::new();
        let (mut page, mut copied, mut span_end) = (first, 0, first);
        while page < end && copied < copy_max {
            if self.pending.get(page) {
                let count = self.pending.run_length(page, (end - page).min(copy_max - copied));
                if page > first {
                    // A run after a gap: list the first run (from `first` to `span_end`) too.
                    if copies.is_empty() {
                        copies.push(PageRun { first: PageIndex(first), count: span_end - first });
                    }
                    copies.push(PageRun { first: PageIndex(page), count });
                }
                (copied, page, span_end) = (copied + count, page + count, page + count);
            } else if self.config.scan_spans_saved_pages && self.is_saved_and_done(page) {
                page += 1;
            } else {
                break;
            }
        }
        (PageRun { first: PageIndex(first), count: span_end - first }, copies)
    }

    fn start_fault_capture(&mut self, now: Nanos, lane: Lane) -> Option<Capture> {
        let run = self.faults.front()?.run;
        if self.staging_free() < run.count {
            // The budget is exhausted: the fault waits for the sink; nothing is dropped.
            if self.fault_blocked_since.is_none() {
                self.fault_blocked_since = Some(now);
                self.stats.fault_blocked_on_budget += 1;
            }
            return None;
        }
        if let Some(since) = self.fault_blocked_since.take() {
            self.stats.fault_blocked_on_budget_ns += now.saturating_since(since).as_ns();
        }
        let fault = self.faults.pop()?;
        Some(self.start(lane, fault.run, Vec::new(), Cause::Fault, Some(fault.read_at)))
    }

    fn start_scan_capture(&mut self, now: Nanos, lane: Lane) -> Option<Capture> {
        self.scan_wait_until = None;
        let first = self.unit_of(self.cursor.next_pending(&self.pending)?).first;
        let unit = self.config.capture_unit_pages;
        let room = self.scan_room();
        if room < self.unit_of(first).count {
            self.staging_blocked_since.get_or_insert(now);
            return None;
        }
        if let Some(since) = self.staging_blocked_since.take() {
            self.stats.staging_blocked_ns += now.saturating_since(since).as_ns();
        }
        let pages_max = match self.policy.scan_gate(now) {
            Gate::Closed { until } => {
                self.scan_wait_until = until;
                self.throttled_since.get_or_insert(now);
                return None;
            }
            Gate::Open { pages_max } => pages_max,
        };
        if let Some(since) = self.throttled_since.take() {
            self.stats.throttled_ns += now.saturating_since(since).as_ns();
        }
        // Whole units only: a policy or room smaller than a unit still gets one unit.
        let run_max = self.config.scan_run_pages_max();
        let limit = run_max.min(pages_max).min(room);
        let limit = (limit & !(unit - 1)).max(unit);
        let window = run_max.max(limit);
        let (span, copies) = self.scan_span(first.0, window, limit);
        debug_assert!(span.count > 0);
        let runs = if copies.is_empty() { std::slice::from_ref(&span) } else { copies.as_slice() };
        for copy in runs {
            self.pending.clear_run(copy.first.0, copy.count);
        }
        let pages: u64 = runs.iter().map(|r| r.count).sum();
        self.cursor.move_to(PageIndex(span.end()));
        self.stats.scan_captures += 1;
        self.policy.observe(now, Observation::ScanStarted { pages });
        Some(self.start(lane, span, copies, Cause::Scan, None))
    }

    /// A lane finished copying a capture's pages out.
    pub fn handle_captured(&mut self, now: Nanos, capture: Capture) -> Result<(), EngineError> {
        self.begin_input(now);
        let slot = &mut self.in_flight[capture.lane.index()];
        let Some(flight) = slot.filter(|f| f.serial == capture.serial) else {
            return Err(EngineError::UnknownCapture { run: capture.run, lane: capture.lane });
        };
        *slot = None;
        if self.phase != Phase::Running {
            // Cancelled: UnprotectAll covers these pages; the driver discards the copy.
            self.staging_used -= self.staged_by(flight);
            return Ok(());
        }
        let pages = flight.copied;
        match flight.cause {
            Cause::Scan => self.stats.pages_by_scan += pages,
            Cause::Fault => self.stats.pages_by_fault += pages,
        }
        self.push_action(Action::Unprotect(flight.run));
        if let Some(read_at) = flight.fault_read_at {
            let latency = now.saturating_since(read_at);
            self.service_latency.record(latency);
            self.policy.observe(now, Observation::ServiceLatency(latency));
        }
        let seed_latency = self.last_fault_read.take().map(|read| now.saturating_since(read));
        if let Some(latency) = seed_latency {
            self.seed_latency.record(latency);
        }
        self.policy.observe(now, Observation::Captured { cause: flight.cause, pages, seed_latency });
        let nothing_protected =
            self.pending.count_ones() == 0 && self.faults.is_empty() && self.in_flight.iter().all(Option::is_none);
        if nothing_protected {
            self.stats.protection_ended_at.get_or_insert(now);
        }
        self.end_iteration_if_due(now, capture.lane, pages, nothing_protected);
        self.check_complete(now);
        Ok(())
    }

    /// QEMU's loop: an iteration ends after its time limit (checked every 64 pages) or, in the
    /// qemu model, as soon as the bandwidth limit is used up; then the thread sleeps out the
    /// limit before it reads the next fault.
    fn end_iteration_if_due(&mut self, now: Nanos, lane: Lane, pages: u64, nothing_protected: bool) {
        let by_clock = self.iteration.on_pages_saved(now, pages);
        let rate_limit =
            if lane == Lane::Single && !nothing_protected { self.policy.rate_limited_until(now) } else { None };
        let summary = by_clock.or_else(|| rate_limit.map(|_| self.iteration.end(now)));
        if let Some(summary) = summary {
            self.stats.iterations = self.iteration.ended();
            self.push_action(Action::IterationEnd(summary));
        }
        if let Some(until) = rate_limit {
            self.sleep = Some(LaneSleep { since: now, until });
            self.stats.iteration_sleeps += 1;
        }
    }

    fn staged_by(&self, flight: InFlight) -> u64 {
        match self.config.service_model {
            ServiceModel::Qemu => 0,
            ServiceModel::Decoupled => flight.copied,
        }
    }

    /// The sink wrote `pages` staged pages out (decoupled model), freeing their room.
    pub fn handle_sink_drained(&mut self, now: Nanos, pages: u64) -> Result<(), EngineError> {
        self.begin_input(now);
        let staged = self.staging_used - self.in_flight.iter().flatten().map(|f| self.staged_by(*f)).sum::<u64>();
        if pages > staged {
            return Err(EngineError::DrainedMoreThanStaged { drained: pages, used: staged });
        }
        self.staging_used -= pages;
        self.check_complete(now);
        Ok(())
    }

    /// `bytes` went into the snapshot stream: the qemu model's thread wrote a capture, or the
    /// decoupled sink wrote staged pages. The bandwidth limit counts these (a zero page costs
    /// its record header, not a page).
    pub fn handle_stream_bytes(&mut self, now: Nanos, bytes: u64) {
        self.begin_input(now);
        self.stats.stream_bytes += bytes;
        if self.phase == Phase::Running {
            self.policy.observe(now, Observation::StreamBytes { bytes });
        }
    }

    /// A writer reports its real wait, from its faulting write to its wake-up.
    pub fn handle_fault_wait(&mut self, now: Nanos, wait: Nanos) {
        self.begin_input(now);
        self.fault_wait.record(wait);
        if self.phase == Phase::Running {
            self.policy.observe(now, Observation::FaultWait(wait));
        }
    }

    /// The time [`poll_timeout`](Engine::poll_timeout) asked for has come.
    pub fn handle_timeout(&mut self, now: Nanos) {
        self.begin_input(now);
        self.scan_wait_until = None;
    }

    /// When the driver should call [`handle_timeout`](Engine::handle_timeout) (and poll its
    /// lanes again), if the scan is waiting for its policy or the qemu thread sleeps.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        if self.phase != Phase::Running {
            return None;
        }
        match (self.scan_wait_until, self.sleep.map(|s| s.until)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next action, in order. Drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Stops the snapshot: an [`Action::UnprotectAll`] follows and no capture is offered again.
    pub fn cancel(&mut self, now: Nanos, reason: impl Into<String>) {
        self.begin_input(now);
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Cancelled(reason.into());
        self.faults.drain().for_each(drop);
        self.sleep = None;
        self.stats.protection_ended_at.get_or_insert(now);
        self.stats.finished_at = Some(now);
        self.push_action(Action::UnprotectAll);
    }

    fn check_complete(&mut self, now: Nanos) {
        let done = self.phase == Phase::Running
            && self.pending.count_ones() == 0
            && self.faults.is_empty()
            && self.in_flight.iter().all(Option::is_none)
            && self.staging_used == 0;
        if done {
            debug_assert_eq!(self.stats.pages_saved(), self.config.page_count);
            self.phase = Phase::Complete;
            self.stats.finished_at = Some(now);
            if let Some(since) = self.throttled_since.take() {
                self.stats.throttled_ns += now.saturating_since(since).as_ns();
            }
            self.push_action(Action::Complete);
        }
    }

    /// The report as things stand.
    pub fn report(&self) -> EngineReport {
        EngineReport {
            config: self.config.clone(),
            outcome: match &self.phase {
                Phase::Running => Outcome::Running,
                Phase::Complete => Outcome::Complete,
                Phase::Cancelled(reason) => Outcome::Cancelled(reason.clone()),
            },
            stats: self.stats.clone(),
            protection_window_ns: self.stats.protection_window().map(Nanos::as_ns),
            fault_wait: self.fault_wait.summary(),
            seed_latency: self.seed_latency.summary(),
            service_latency: self.service_latency.summary(),
            latency_measure: self.policy.latency_measure(),
            policy_slowdowns: self.policy.slowdowns(),
        }
    }

    /// How often the policy has slowed the scan for latency so far.
    pub fn policy_slowdowns(&self) -> u64 {
        self.policy.slowdowns()
    }
}
