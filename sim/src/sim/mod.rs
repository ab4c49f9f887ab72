//! The discrete-event loop: virtual nanosecond clock, event heap, writers, memory, the
//! stream path, and the `wpsnap-core` engine driven by its protocol.

mod bits;
mod events;
mod memory;
mod timeline;
mod writer;

pub use memory::InvariantReport;
pub use timeline::{Bin, TIMELINE_BINS_MAX, Timeline};

use crate::config::{ConfigFieldError, STREAM_PAGE_HEADER_BYTES, SimConfig, VERSIONED_PAGES_MAX};
use crate::disk::StreamPath;
use crate::disk::transfer_ns;
use crate::report::{SimReport, SnapshotSummary, WriterSummary};
use events::{Event, EventQueue};
use memory::Memory;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use thiserror::Error;
use wpsnap_core::{Action, Capture, Engine, Lane, Nanos, PageIndex, PageRun, ServiceModel};
use wpsnap_workload::{PageSampler, WriteTiming};
use writer::Writer;

/// Events after which a run cancels its snapshot, as at its time limit (a guard against a
/// configuration that would take hours of wall time; a 64 GiB snapshot takes about 4 * 10^7).
pub const EVENTS_MAX: u64 = 1 << 33;
/// Events a cancelled run may still process to wake its writers before it stops for good.
const EVENTS_AFTER_CANCEL_MAX: u64 = 1 << 20;

/// Why a run could not be done.
#[derive(Debug, Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] ConfigFieldError),
    #[error("the engine rejected the configuration: {0}")]
    Engine(#[from] wpsnap_core::ConfigError),
    #[error("writer pattern: {0}")]
    Pattern(#[from] wpsnap_workload::PatternError),
}

/// Component numbers for sub-seeds: each component draws from its own stream, so adding
/// draws to one does not shift the others.
mod component {
    pub const DISK: u64 = 1;
    pub const ZERO_PAGES: u64 = 2;
    pub const WRITER_BASE: u64 = 1_000;
    pub const WAKE_BASE: u64 = 2_000_000;
}

/// SplitMix64: spreads (seed, component) into an independent-looking 64-bit sub-seed.
pub fn sub_seed(seed: u64, component: u64) -> u64 {
    let mut z = seed ^ component.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Warmup,
    Frozen,
    Running,
    Finished,
}

/// One run of the loop (with or without a snapshot).
struct Sim<'a> {
    config: &'a SimConfig,
    with_snapshot: bool,
    timing: WriteTiming,
    queue: EventQueue,
    now: Nanos,
    writers: Vec<Writer>,
    blocked: u32,
    memory: Memory,
    engine: Option<Engine>,
    phase: Phase,
    /// Fault events delivered but not yet read by the handler: the faulting pages.
    uffd_pending: VecDeque<u64>,
    /// Each lane's capture in flight, with the stream bytes it writes (qemu lane).
    lanes: [Option<(Capture, u64)>; 3],
    /// Lanes doing their work after a capture (until their `LaneReady` event).
    lanes_settling: [bool; 3],
    stream: StreamPath,
    staged: VecDeque<PageRun>,
    staged_pages: u64,
    /// Pages the sink is writing now.
    sink_pages: u64,
    /// Stream bytes of those pages.
    sink_bytes: u64,
    /// Most pages captured by decoupled lanes and not yet written by the sink (the engine's
    /// budget bounds this; counted here independently of the engine).
    staged_peak_pages: u64,
    sink_busy: bool,
    timer_generation: u64,
    timer_at: Option<Nanos>,
    zero_seed: u64,
    copy_bytes_per_sec: u64,
    /// A scan capture's CPU time per page (`capture_overhead_ns * 100 / scan_cpu_percent`),
    /// computed once: the loop would divide per capture.
    scan_page_ns: u64,
    /// Per lane, the last copy into staging: (bytes, its `transfer_ns`). A lane copies the
    /// same size again and again, so most captures need no division.
    copy_ns_last: [(u64, u64); 3],
    instant: Nanos,
    freeze_ns: u64,
    finished_at: Option<Nanos>,
    stop_at: Option<Nanos>,
    timeline: Timeline,
    events: u64,
    iterations: u64,
    time_limit_hit: bool,
    driver_errors: Vec<String>,
}

fn lane_slot(lane: Lane) -> usize {
    match lane {
        Lane::Single => 0,
        Lane::Fault => 1,
        Lane::Scan => 2,
    }
}

/// Whether `page` is all zero at the snapshot instant (a fixed share of pages, spread by
/// a hash so no per-page memory is needed).
pub fn page_is_zero(zero_seed: u64, page: u64, zero_page_percent: u8) -> bool {
    sub_seed(zero_seed, page) % 100 < zero_page_percent as u64
}

/// Bytes a run of pages takes in the stream: a header per page, data for non-zero pages.
fn stream_bytes(run: PageRun, zero_seed: u64, config: &SimConfig) -> u64 {
    let page_size = config.engine.page_size;
    run.pages()
        .map(|p| {
            STREAM_PAGE_HEADER_BYTES
                + if page_is_zero(zero_seed, p.0, config.zero_page_percent) { 0 } else { page_size }
        })
        .sum()
}

impl<'a> Sim<'a> {
    fn new(seed: u64, config: &'a SimConfig, with_snapshot: bool) -> Result<Sim<'a>, SimError> {
        config.validate()?;
        let timing = config.timing()?;
        let page_count = config.engine.page_count;
        let mut writers = Vec::with_capacity(config.writers.count as usize);
        for w in 0..config.writers.count {
            let sampler = PageSampler::new(&config.writers.pattern, page_count, w)?;
            let rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, component::WRITER_BASE + w as u64));
            let wake_rng = ChaCha8Rng::seed_from_u64(sub_seed(seed, component::WAKE_BASE + w as u64));
            writers.push(Writer::new(sampler, rng, wake_rng));
        }
        let disk = config.disk_params();
        let keep_versions = with_snapshot && page_count <= VERSIONED_PAGES_MAX;
        Ok(Sim {
            config,
            with_snapshot,
            timing,
            queue: EventQueue::default(),
            now: Nanos::ZERO,
            writers,
            blocked: 0,
            memory: Memory::new(if with_snapshot { page_count } else { 0 }, keep_versions),
            engine: None,
            phase: Phase::Warmup,
            uffd_pending: VecDeque::new(),
            lanes: [None, None, None],
            lanes_settling: [false; 3],
            stream: StreamPath::new(&disk, ChaCha8Rng::seed_from_u64(sub_seed(seed, component::DISK))),
            staged: VecDeque::new(),
            staged_pages: 0,
            sink_pages: 0,
            sink_bytes: 0,
            staged_peak_pages: 0,
            sink_busy: false,
            timer_generation: 0,
            timer_at: None,
            zero_seed: sub_seed(seed, component::ZERO_PAGES),
            copy_bytes_per_sec: disk.copy_bytes_per_sec,
            scan_page_ns: config.handler.capture_overhead_ns * 100 / config.handler.scan_cpu_percent as u64,
            copy_ns_last: [(0, transfer_ns(0, disk.copy_bytes_per_sec)); 3],
            instant: Nanos(config.warmup_ns),
            freeze_ns: 0,
            finished_at: None,
            stop_at: None,
            timeline: Timeline::new(Nanos(config.warmup_ns)),
            events: 0,
            iterations: 0,
            time_limit_hit: false,
            driver_errors: Vec::new(),
        })
    }

    /// Runs until the snapshot is finished and no writer is blocked (or, without a
    /// snapshot, until `stop_at`).
    fn run(&mut self) {
        let (open_loop, store_ns) = (self.config.writers.open_loop, self.config.writers.store_ns);
        for w in 0..self.writers.len() as u32 {
            let first = self.writers[w as usize].next_write_at(&self.timing, Nanos::ZERO, open_loop, store_ns);
            let page = self.writers[w as usize].draw_ahead();
            self.warm(page);
            self.queue.push(first, Event::Write(w));
        }
        self.queue.push(self.instant, Event::SnapshotStart);
        while let Some((at, event)) = self.queue.pop() {
            if self.stop_at.is_some_and(|stop| at > stop) || self.events >= EVENTS_MAX + EVENTS_AFTER_CANCEL_MAX {
                break;
            }
            self.now = at;
            self.events += 1;
            match event {
                Event::Write(w) => self.on_write(w),
                Event::FaultDelivered(w) => self.on_fault_delivered(w),
                Event::Resume(w) => self.on_resume(w),
                Event::CaptureDone(lane) => self.on_capture_done(lane),
                Event::LaneReady(lane) => {
                    self.lanes_settling[lane_slot(lane)] = false;
                    self.serve();
                }
                Event::Timer(generation) => self.on_timer(generation),
                Event::SinkDone => self.on_sink_done(),
                Event::SnapshotStart => self.on_snapshot_start(),
                Event::FreezeEnd => self.on_freeze_end(),
            }
            if self.phase == Phase::Running && (at.as_ns() >= self.config.sim_time_ns_max || self.events >= EVENTS_MAX)
            {
                self.hit_time_limit();
            }
            if self.phase == Phase::Finished && self.blocked == 0 && self.with_snapshot {
                break;
            }
        }
    }

    fn hit_time_limit(&mut self) {
        self.time_limit_hit = true;
        if let Some(engine) = self.engine.as_mut() {
            engine.cancel(self.now, "simulated time or event limit reached");
        }
        self.drain_actions();
    }

    fn on_snapshot_start(&mut self) {
        if !self.with_snapshot {
            return;
        }
        self.memory.protect_all();
        let region_bytes = self.config.engine.page_count * self.config.engine.page_size;
        self.freeze_ns = (region_bytes as u128 * self.config.handler.protect_ns_per_gib as u128 / (1u128 << 30)) as u64;
        self.phase = Phase::Frozen;
        self.queue.push(self.now + Nanos(self.freeze_ns), Event::FreezeEnd);
    }

    fn on_freeze_end(&mut self) {
        match Engine::new(self.config.engine.clone(), self.now) {
            Ok(engine) => self.engine = Some(engine),
            Err(e) => {
                // Validated before the run, so this is a driver bug; end cleanly.
                self.driver_errors.push(format!("engine: {e}"));
                self.memory.unprotect_all();
                self.phase = Phase::Finished;
                return;
            }
        }
        self.phase = Phase::Running;
        self.poll_lanes();
    }

    fn on_write(&mut self, w: u32) {
        if self.phase == Phase::Frozen {
            // Writers are paused while the region is write-protected.
            self.queue.push(self.instant + Nanos(self.freeze_ns), Event::Write(w));
            return;
        }
        let writer = &mut self.writers[w as usize];
        let page = writer.choose_page();
        if self.with_snapshot && self.memory.is_protected(page) {
            writer.block(page, self.now);
            self.blocked += 1;
            self.queue.push(self.now + Nanos(self.config.handler.fault_delivery_ns), Event::FaultDelivered(w));
            return;
        }
        self.complete_write(w);
    }

    fn complete_write(&mut self, w: u32) {
        let in_window = self.now >= self.instant;
        let writer = &mut self.writers[w as usize];
        let page = writer.pending_page();
        if self.with_snapshot {
            self.memory.write(page);
        }
        writer.wrote(in_window);
        let (open_loop, store_ns) = (self.config.writers.open_loop, self.config.writers.store_ns);
        let next = writer.next_write_at(&self.timing, self.now, open_loop, store_ns);
        let page = writer.draw_ahead();
        self.warm(page);
        self.queue.push(next, Event::Write(w));
    }

    /// Starts loading `page`'s state into the cache; the loop runs other events until the
    /// write comes (random pages of a large region miss the cache otherwise).
    fn warm(&self, page: u64) {
        self.memory.prefetch(page);
        // If the write faults, the engine reads and sets the page's bits in its own sets.
        if let Some(engine) = &self.engine {
            engine.fault_words(PageIndex(page)).into_iter().flatten().for_each(bits::prefetch);
        }
    }

    fn on_fault_delivered(&mut self, w: u32) {
        let page = self.writers[w as usize].pending_page();
        self.uffd_pending.push_back(page);
        self.serve();
    }

    /// Reads fault events and offers work to idle lanes. A qemu thread that read an event
    /// needing no capture (the page was already saved) and has nothing else to do reads the
    /// next one at once, as QEMU's loop would; bounded by the events pending.
    fn serve(&mut self) {
        for _ in 0..=self.uffd_pending.len() {
            self.read_faults();
            self.poll_lanes();
            let idle_with_events = self.config.engine.service_model == ServiceModel::Qemu
                && !self.lane_busy(Lane::Single)
                && !self.uffd_pending.is_empty();
            if !idle_with_events {
                break;
            }
        }
    }

    /// The handler reads fault events while its lane is idle: QEMU's single thread one per
    /// page it saves (none while it sleeps out the bandwidth limit), the decoupled fault
    /// thread all that are there. The engine holds every fault it is given.
    fn read_faults(&mut self) {
        let model = self.config.engine.service_model;
        let reader = if model == ServiceModel::Qemu { Lane::Single } else { Lane::Fault };
        if self.lane_busy(reader)
            || self.engine.as_ref().is_some_and(|e| e.lane_asleep_until(reader, self.now).is_some())
        {
            return;
        }
        let reads_max = if model == ServiceModel::Qemu { 1 } else { self.uffd_pending.len() };
        for _ in 0..reads_max {
            let Some(page) = self.uffd_pending.pop_front() else { break };
            let Some(engine) = self.engine.as_mut() else {
                // No engine (yet or any more): every page is unprotected, the writer is awake.
                continue;
            };
            if let Err(e) = engine.handle_fault(self.now, PageIndex(page)) {
                self.driver_errors.push(format!("fault: {e}"));
            }
            self.drain_actions();
        }
    }

    fn drain_actions(&mut self) {
        // One action at a time, so the engine is not borrowed while the memory and the
        // writers are updated (and nothing is collected on the heap).
        while let Some(action) = self.engine.as_mut().and_then(Engine::poll_action) {
            match action {
                Action::Unprotect(run) => {
                    self.memory.unprotect(run.first.0, run.count);
                    self.wake_where(|page| run.contains(PageIndex(page)));
                }
                Action::Wake(page) => self.wake_where(|p| p == page.0),
                Action::IterationEnd(_) => self.iterations += 1,
                Action::UnprotectAll => {
                    self.memory.unprotect_all();
                    self.wake_where(|_| true);
                }
                Action::Complete => {
                    self.finished_at = Some(self.now);
                    self.phase = Phase::Finished;
                }
            }
        }
        if self.engine.as_ref().is_some_and(Engine::is_cancelled) {
            self.phase = Phase::Finished;
            self.finished_at.get_or_insert(self.now);
        }
    }

    fn wake_where(&mut self, matches: impl Fn(u64) -> bool) {
        if self.blocked == 0 {
            return;
        }
        let table = &self.config.writers.wake_latency;
        for (w, writer) in self.writers.iter_mut().enumerate() {
            if writer.is_blocked_unwoken() && matches(writer.pending_page()) {
                writer.mark_woken();
                // A measured wake-up latency (CPU contention) if given, else the fixed cost.
                let latency =
                    if table.is_empty() { Nanos(self.config.handler.wake_ns) } else { writer.wake_latency(table) };
                self.queue.push(self.now + latency, Event::Resume(w as u32));
            }
        }
    }

    fn on_resume(&mut self, w: u32) {
        let wait = self.writers[w as usize].unblock(self.now);
        self.blocked -= 1;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_fault_wait(self.now, wait);
        }
        self.timeline.fault_wait(self.now, wait);
        self.drain_actions();
        self.complete_write(w);
        self.serve();
    }

    fn on_timer(&mut self, generation: u64) {
        if generation != self.timer_generation {
            return;
        }
        self.timer_at = None;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_timeout(self.now);
        }
        self.drain_actions();
        self.serve();
    }

    fn on_capture_done(&mut self, lane: Lane) {
        let Some((capture, stream_bytes)) = self.lanes[lane_slot(lane)].take() else {
            self.driver_errors.push(format!("capture done on idle lane {lane:?}"));
            return;
        };
        if self.config.handler.capture_fixed_ns > 0 {
            self.lanes_settling[lane_slot(lane)] = true;
            self.queue.push(self.now + Nanos(self.config.handler.capture_fixed_ns), Event::LaneReady(lane));
        }
        let run = capture.run();
        let scan = capture.cause() == wpsnap_core::Cause::Scan;
        let Some(engine) = self.engine.as_mut() else { return };
        let running = engine.is_running();
        if running {
            self.memory.capture(run.first.0, run.count);
            self.timeline.pages(self.now, scan, run.count);
        }
        if lane == Lane::Single {
            // The qemu thread wrote the page to the stream before completing it.
            engine.handle_stream_bytes(self.now, stream_bytes);
        }
        if let Err(e) = engine.handle_captured(self.now, capture) {
            self.driver_errors.push(format!("captured: {e}"));
        }
        self.drain_actions();
        if running && self.config.engine.service_model == ServiceModel::Decoupled {
            self.staged.push_back(run);
            self.staged_pages += run.count;
        }
        self.kick_sink();
        self.serve();
    }

    /// Whether `lane` has a capture in flight or is still doing its work after one.
    fn lane_busy(&self, lane: Lane) -> bool {
        self.lanes[lane_slot(lane)].is_some() || self.lanes_settling[lane_slot(lane)]
    }

    /// Pages held by the decoupled path: captures in flight on its lanes, staged, being written.
    fn note_staged(&mut self) {
        if self.config.engine.service_model == ServiceModel::Decoupled {
            let in_flight: u64 = self.lanes.iter().flatten().map(|(c, _)| c.run().count).sum();
            let held = in_flight + self.staged_pages + self.sink_pages;
            self.staged_peak_pages = self.staged_peak_pages.max(held);
        }
    }

    fn kick_sink(&mut self) {
        if self.sink_busy || self.staged_pages == 0 {
            return;
        }
        let mut pages = 0;
        let mut bytes = 0;
        while pages < self.config.sink_batch_pages {
            let Some(run) = self.staged.pop_front() else { break };
            let take = run.count.min(self.config.sink_batch_pages - pages);
            let taken = PageRun { first: run.first, count: take };
            bytes += stream_bytes(taken, self.zero_seed, self.config);
            pages += take;
            if take < run.count {
                self.staged.push_front(PageRun { first: PageIndex(run.first.0 + take), count: run.count - take });
            }
        }
        self.staged_pages -= pages;
        self.sink_pages = pages;
        self.sink_bytes = bytes;
        self.sink_busy = true;
        let done = self.stream.submit(self.now, bytes);
        self.queue.push(done, Event::SinkDone);
    }

    fn on_sink_done(&mut self) {
        let (pages, bytes) = (self.sink_pages, self.sink_bytes);
        self.sink_busy = false;
        self.sink_pages = 0;
        self.sink_bytes = 0;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_stream_bytes(self.now, bytes);
            self.drain_actions();
            if let Some(engine) = self.engine.as_mut()
                && let Err(e) = engine.handle_sink_drained(self.now, pages)
            {
                self.driver_errors.push(format!("sink: {e}"));
            }
        }
        self.drain_actions();
        self.kick_sink();
        self.serve();
    }

    /// Offers work to every idle lane, then arms the policy timer.
    fn poll_lanes(&mut self) {
        let Some(engine) = self.engine.as_mut() else { return };
        let handler = self.config.handler;
        for &lane in self.config.engine.service_model.lanes() {
            if self.lanes[lane_slot(lane)].is_some() || self.lanes_settling[lane_slot(lane)] {
                continue;
            }
            let Some(capture) = engine.poll_capture(self.now, lane) else { continue };
            let run = capture.run();
            // The capture reads and writes this page's state when it is done.
            self.memory.prefetch(run.first.0);
            let page_ns = if capture.cause() == wpsnap_core::Cause::Scan {
                self.scan_page_ns
            } else {
                handler.capture_overhead_ns
            };
            let start = self.now + Nanos(page_ns * run.count);
            let bytes = if lane == Lane::Single { stream_bytes(run, self.zero_seed, self.config) } else { 0 };
            let copied = match lane {
                // QEMU writes the page to the stream and flushes it, then unprotects it.
                Lane::Single => self.stream.submit_flushed(start, bytes),
                // The decoupled lanes copy into staging.
                Lane::Fault | Lane::Scan => {
                    let bytes = run.count * self.config.engine.page_size;
                    let last = &mut self.copy_ns_last[lane_slot(lane)];
                    if last.0 != bytes {
                        *last = (bytes, transfer_ns(bytes, self.copy_bytes_per_sec));
                    }
                    start + Nanos(last.1)
                }
            };
            self.queue.push(copied + Nanos(handler.unprotect_ns), Event::CaptureDone(lane));
            self.lanes[lane_slot(lane)] = Some((capture, bytes));
        }
        let wanted = engine.poll_timeout();
        if wanted != self.timer_at {
            self.timer_generation += 1;
            self.timer_at = wanted;
            if let Some(at) = wanted {
                self.queue.push(at.max(self.now), Event::Timer(self.timer_generation));
            }
        }
        self.note_staged();
    }
}

/// Runs one simulation: the snapshot run and, if configured, the baseline without a
/// snapshot over the same window with the same seed.
pub fn run(seed: u64, config: &SimConfig) -> Result<SimReport, SimError> {
    let mut sim = Sim::new(seed, config, true)?;
    sim.run();
    let end = sim.now;
    let instant = sim.instant;
    let engine_report = sim.engine.as_ref().map(Engine::report);
    let complete = sim.engine.as_ref().is_some_and(Engine::is_complete);
    let invariants = sim.memory.finish(complete);
    let stream_done = sim.stream.finish(sim.finished_at.unwrap_or(end));
    let writes_during = sim.writers.iter().map(|w| w.writes_in_window()).sum::<u64>();
    let baseline_writes = if config.baseline {
        let mut base = Sim::new(seed, config, false)?;
        base.stop_at = Some(end);
        base.run();
        Some(base.writers.iter().map(|w| w.writes_in_window()).sum::<u64>())
    } else {
        None
    };
    let window_ns = end.saturating_since(instant).as_ns();
    let stats = engine_report.as_ref().map(|r| r.stats.clone()).unwrap_or_default();
    let mut effective = config.clone();
    effective.disk = Some(config.disk_params());
    let (fault_wait_histogram, seed_latency_histogram) = match sim.engine.as_ref() {
        Some(e) => (e.fault_wait().recorded(), e.seed_latency().recorded()),
        None => (Vec::new(), Vec::new()),
    };
    Ok(SimReport {
        seed,
        config: effective,
        snapshot: SnapshotSummary {
            instant_ns: instant.as_ns(),
            freeze_ns: sim.freeze_ns,
            duration_ns: sim.finished_at.map(|f| f.saturating_since(instant).as_ns()),
            protection_window_ns: stats.protection_ended_at.map(|end| end.saturating_since(instant).as_ns()),
            stream_written_ns: sim.finished_at.map(|_| stream_done.saturating_since(instant).as_ns()),
            stream_bytes: sim.stream.bytes_submitted(),
            pages_by_scan: stats.pages_by_scan,
            pages_by_fault: stats.pages_by_fault,
            staging_peak_pages: stats.staging_peak_pages,
            driver_staged_peak_pages: sim.staged_peak_pages,
            fault_blocked_on_budget: stats.fault_blocked_on_budget,
            fault_blocked_on_budget_ns: stats.fault_blocked_on_budget_ns,
            throttled_ns: stats.throttled_ns,
            iterations: sim.iterations,
            iteration_sleeps: stats.iteration_sleeps,
            iteration_sleep_ns: stats.iteration_sleep_ns,
            time_limit_hit: sim.time_limit_hit,
        },
        writers: WriterSummary {
            count: config.writers.count,
            window_ns,
            writes_during_snapshot: writes_during,
            baseline_writes,
            throughput_ratio: baseline_writes.map(|b| if b == 0 { 1.0 } else { writes_during as f64 / b as f64 }),
            blocked_at_end: sim.blocked,
            blocked_ns_total: sim.writers.iter().map(|w| w.blocked_ns_total()).sum(),
        },
        engine: engine_report,
        fault_wait_histogram,
        seed_latency_histogram,
        disk: sim.stream.cache_stats().clone(),
        invariants,
        driver_errors: sim.driver_errors.clone(),
        memory_bytes: sim.memory.bytes(),
        events: sim.events,
        timeline: sim.timeline.clone(),
    })
}
