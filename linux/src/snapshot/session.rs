//! The session's states: [`Prepared`] (uffd ready, nothing protected), [`Running`] (armed,
//! threads running) and the final [`SnapshotReport`].

use super::config::{FAULT_SPIN_MAX, SnapshotConfig};
use super::engine_handle::EngineHandle;
use super::lanes;
use super::pause::PauseGuard;
use super::report::{Progress, SnapshotReport};
use super::shared::{FaultWaitReporter, Shared, SnapshotError};
use super::sink::PageSink;
use super::staging_memory::StagingMemory;
use super::thread_priority::{self, ThreadRole, ThreadScheduling};
use super::thread_time::{SCAN_THREAD_NAME, ThreadClock};
use crate::region::{ContractWatches, Region, Regions};
use crate::sync::shim::{AtomicBool, AtomicU8, AtomicU64, Mutex, Ordering, lock};
use crate::sync::{ChangeSignal, StagingQueue};
use crate::uffd::{UnpopulatedMethod, WpUffd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use wpsnap_core::{ConfigError, Engine, EngineConfig, Nanos, ServiceModel};

/// The sink is woken at once when 1/this of the budget is staged (but at least every
/// [`STAGING_WAKE_PAGES_MAX`] pages); otherwise it looks every [`lanes::SINK_POLL`].
const STAGING_WAKE_FRACTION: u64 = 8;
/// Staged pages at which the sink is always woken, whatever the budget.
const STAGING_WAKE_PAGES_MAX: u64 = 512;

/// Entry point of the session typestate.
#[derive(Debug)]
pub struct Snapshot;

impl Snapshot {
    /// Checks the region against the kernel's view and the snapshot contract
    /// ([`crate::region::contract`]), opens the userfaultfd, registers the region in
    /// write-protect mode and, if the kernel cannot protect never-touched pages itself or the
    /// region is a shared file (whose blocks the contract check watches), touches each page by
    /// reading it. Nothing is protected yet; writers may run.
    pub fn prepare(
        region: Region<'_>,
        config: SnapshotConfig,
        sink: Box<dyn PageSink>,
    ) -> Result<Prepared<'_>, SnapshotError> {
        Snapshot::prepare_regions(Regions::from(region), config, sink)
    }

    /// [`Snapshot::prepare`] for several regions snapshotted at one instant: one userfaultfd
    /// with one registration per region, all protected in the same pause, and one engine over
    /// their pages in order (global page `i` of the sink is page `i` of that order; the file's
    /// region table says which region it belongs to).
    pub fn prepare_regions(
        regions: Regions<'_>,
        config: SnapshotConfig,
        sink: Box<dyn PageSink>,
    ) -> Result<Prepared<'_>, SnapshotError> {
        let engine_config = config.engine_config_for(&regions);
        engine_config.validate()?;
        if config.fault_spin > FAULT_SPIN_MAX {
            return Err(ConfigError::field(
                "fault_spin",
                format!("{} us is over the bound of {} us", config.fault_spin.as_micros(), FAULT_SPIN_MAX.as_micros()),
            )
            .into());
        }
        let contracts = ContractWatches::at_prepare(&regions).map_err(|e| match e {
            crate::region::ContractError::Region(r) => SnapshotError::Region(r),
            other => SnapshotError::Contract(other),
        })?;
        let uffd = WpUffd::open()?;
        let touch: Vec<bool> = regions
            .iter()
            .zip(contracts.watched())
            .map(|(region, watched)| {
                config.force_touch
                    || watched
                    || uffd.unpopulated_method(region.backing().is_file_backed()) == UnpopulatedMethod::TouchByReading
            })
            .collect();
        // Dropping the uffd on an error unregisters what was registered.
        for region in regions.iter() {
            uffd.register_wp(region.start(), region.len())?;
        }
        let touch_started = Instant::now();
        for (region, _) in regions.iter().zip(&touch).filter(|(_, t)| **t) {
            region.touch_every_page();
        }
        let touch_ns = touch_started.elapsed().as_nanos() as u64;
        let method = if touch.contains(&true) {
            UnpopulatedMethod::TouchByReading
        } else {
            UnpopulatedMethod::KernelWpUnpopulated
        };
        Ok(Prepared { regions, config, engine_config, uffd, method, sink, touch_ns, contracts })
    }
}

/// Ready to arm: the uffd is open and the region registered, nothing is protected.
/// Dropping it closes the userfaultfd, which unregisters the region. Borrows the region's
/// memory for `'a`.
#[must_use = "arm the snapshot, or drop it to give up"]
pub struct Prepared<'a> {
    regions: Regions<'a>,
    config: SnapshotConfig,
    engine_config: EngineConfig,
    uffd: WpUffd,
    method: UnpopulatedMethod,
    sink: Box<dyn PageSink>,
    touch_ns: u64,
    contracts: ContractWatches,
}

impl std::fmt::Debug for Prepared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("regions", &self.regions).field("method", &self.method).finish_non_exhaustive()
    }
}

impl<'a> Prepared<'a> {
    /// Features the kernel granted.
    pub fn uffd_features(&self) -> Vec<&'static str> {
        self.uffd.features().names()
    }

    /// How never-touched pages are protected (`TouchByReading` if any region needed it).
    pub fn unpopulated_method(&self) -> UnpopulatedMethod {
        self.method
    }

    /// Enforces the snapshot contract on a shared region's memfd instead of only detecting
    /// breaks: seals it **permanently** against `write`, `fallocate`, `ftruncate` and new
    /// writable mappings (see [`ContractWatch::seal`]). Stores through existing mappings go
    /// on as before.
    pub fn seal_backing_file(&self) -> Result<(), SnapshotError> {
        Ok(self.contracts.seal()?)
    }

    /// Arms the snapshot: calls `pause_writers`, which must stop every thread that writes the
    /// region and return a [`PauseGuard`] that lets them go on when dropped; write-protects the
    /// whole region; drops the guard; starts the snapshot threads. The image is the region's
    /// content at that instant. A closure that drops its guard before returning does not
    /// compile (see [`super::pause`]).
    ///
    /// Writers blocked on a protected page are released on every exit path.
    pub fn arm<G: PauseGuard>(self, pause_writers: impl FnOnce() -> G) -> Result<Running<'a>, SnapshotError> {
        self.arm_observed(pause_writers, |_| {})
    }

    /// [`arm`](Prepared::arm), and run `at_instant` after the regions are protected, while
    /// the writers are still paused: it sees exactly the memory the image will hold (the demo
    /// and tests take their reference copy there). Its time is reported as `observe_ns` and not
    /// counted in `pause_ns`.
    pub fn arm_observed<G: PauseGuard>(
        self,
        pause_writers: impl FnOnce() -> G,
        at_instant: impl FnOnce(&Regions<'a>),
    ) -> Result<Running<'a>, SnapshotError> {
        let Prepared { regions, config, engine_config, uffd, method, sink, touch_ns, mut contracts } = self;
        let wake_fd =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)
                .map_err(SnapshotError::EventFd)?;
        let release = |uffd: &WpUffd| {
            for region in regions.iter() {
                let _ = uffd.unprotect(region.start(), region.len());
                let _ = uffd.unregister(region.start(), region.len());
            }
        };
        let pause_started = Instant::now();
        let guard = pause_writers();
        let protect_started = Instant::now();
        // Every region in the same pause: the image is all of them at one instant.
        let protected = regions.iter().try_for_each(|r| uffd.protect(r.start(), r.len()));
        let epoch = Instant::now();
        // The backing files' state at the instant (one fstat each), compared at finish.
        let stamped = protected.map_err(SnapshotError::from).and_then(|()| Ok(contracts.at_instant()?));
        if let Err(e) = stamped {
            release(&uffd);
            drop(guard);
            sink.abort();
            return Err(e);
        }
        let observe_started = Instant::now();
        at_instant(&regions);
        let observe_ns = observe_started.elapsed().as_nanos() as u64;
        drop(guard);
        let pause_ns = (pause_started.elapsed().as_nanos() as u64).saturating_sub(observe_ns);
        let protect_ns = epoch.duration_since(protect_started).as_nanos() as u64;
        let engine = match Engine::new(engine_config.clone(), Nanos::ZERO) {
            Ok(engine) => engine,
            Err(e) => {
                release(&uffd);
                sink.abort();
                return Err(e.into());
            }
        };
        let budget = engine_config.budget_pages;
        let shared = Arc::new(Shared {
            engine: EngineHandle::new(engine, epoch),
            // SAFETY: `Running<'a>` carries the borrow and joins every thread that uses this
            // copy before it is dropped (its `Drop` concludes the session).
            regions: unsafe { regions.erase() },
            uffd,
            staging: StagingQueue::new(budget)
                .with_wake_pages((budget / STAGING_WAKE_FRACTION).min(STAGING_WAKE_PAGES_MAX)),
            staging_memory: StagingMemory::new(),
            scan_signal: ChangeSignal::new(),
            wake_fd,
            fault_lane_waits_for_room: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            scan_wait: AtomicU8::new(0),
            failure: Mutex::new(None),
            fault_spin: config.fault_spin,
            thread_priority: config.thread_priority,
            thread_scheduling: Mutex::new(Vec::new()),
            check_present: contracts.watched(),
            unprotect_calls: AtomicU64::new(0),
            unprotect_pages: AtomicU64::new(0),
            thread_times: Mutex::new(Vec::new()),
        });
        let mut running = Running {
            shared: shared.clone(),
            threads: Vec::new(),
            sink_thread: None,
            method,
            pause_ns,
            protect_ns,
            touch_ns,
            observe_ns,
            features: shared.uffd.features().names().iter().map(|s| s.to_string()).collect(),
            contracts,
            _region: std::marker::PhantomData,
        };
        let spawned = match config.service_model {
            ServiceModel::Decoupled => running
                .spawn("wpsnap-fault", ThreadRole::Fault, |s| {
                    let result = lanes::fault_lane(s);
                    if let Err(e) = result {
                        s.fail(e);
                    }
                    lanes::drain_and_release(s);
                    Ok(())
                })
                .and_then(|()| running.spawn(SCAN_THREAD_NAME, ThreadRole::Background, lanes::scan_lane))
                .and_then(|()| running.spawn_sink("wpsnap-sink", ThreadRole::Background, sink, lanes::sink_lane)),
            ServiceModel::Qemu => running.spawn_sink("wpsnap-qemu", ThreadRole::Qemu, sink, lanes::qemu_lane),
        };
        // On error, dropping `running` fails the session: protection removed, threads joined.
        spawned?;
        Ok(running)
    }
}

type SinkThread = JoinHandle<Box<dyn PageSink>>;

/// Runs a snapshot thread's `body` at the scheduling its `role` asks for, and records what the
/// thread ran at and its scheduler statistics when it ends.
fn scheduled(shared: &Shared, thread: String, role: ThreadRole, body: impl FnOnce()) {
    let (policy, note) = thread_priority::apply_to_current(shared.thread_priority, role);
    let clock = ThreadClock::start();
    body();
    let time = clock.stop(&thread);
    if let Some(time) = &time {
        shared.record_thread_time(time);
    }
    let schedstat = time.map(|t| t.schedstat());
    lock(&shared.thread_scheduling).push(ThreadScheduling { thread, policy, note, schedstat });
}

/// An armed snapshot: threads are saving pages while writers run. Borrows the region's
/// memory for `'a`; its threads are joined by [`finish`](Running::finish),
/// [`cancel`](Running::cancel) or drop (which cancels). Leaking it with `std::mem::forget`
/// leaves them running over memory the borrow no longer protects: do not.
#[must_use = "finish or cancel the snapshot; dropping it cancels"]
pub struct Running<'a> {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    sink_thread: Option<SinkThread>,
    method: UnpopulatedMethod,
    pause_ns: u64,
    protect_ns: u64,
    touch_ns: u64,
    observe_ns: u64,
    features: Vec<String>,
    contracts: ContractWatches,
    _region: std::marker::PhantomData<Region<'a>>,
}

impl std::fmt::Debug for Running<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("progress", &self.progress()).finish_non_exhaustive()
    }
}

impl Running<'_> {
    fn spawn(
        &mut self,
        name: &str,
        role: ThreadRole,
        lane: fn(&Shared) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let shared = self.shared.clone();
        let thread = name.to_string();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || scheduled(&shared, thread, role, || lanes::guarded(&shared, lane)))
            .map_err(SnapshotError::Spawn)?;
        self.threads.push(handle);
        Ok(())
    }

    fn spawn_sink(
        &mut self,
        name: &str,
        role: ThreadRole,
        mut sink: Box<dyn PageSink>,
        lane: fn(&Shared, &mut dyn PageSink) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let qemu = self.shared.engine.inspect(|engine, _| engine.config().service_model == ServiceModel::Qemu);
        let shared = self.shared.clone();
        let thread = name.to_string();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                scheduled(&shared, thread, role, || {
                    lanes::guarded(&shared, |s| lane(s, sink.as_mut()));
                    if qemu {
                        // The qemu thread is also the one reading events.
                        lanes::drain_and_release(&shared);
                    }
                });
                sink
            })
            .map_err(SnapshotError::Spawn)?;
        self.sink_thread = Some(handle);
        Ok(())
    }

    /// Pages saved so far.
    pub fn progress(&self) -> Progress {
        self.shared.engine.inspect(|engine, _| Progress {
            pages_saved: engine.stats().pages_saved(),
            page_count: engine.config().page_count,
            pages_by_fault: engine.stats().pages_by_fault,
            faults_queued: engine.faults_queued() as u64,
            policy_slowdowns: engine.policy_slowdowns(),
        })
    }

    /// True once the snapshot completed or failed (then `finish` returns at once).
    pub fn is_done(&self) -> bool {
        self.shared.stopped()
    }

    /// A handle writer threads use to report their real fault waits.
    pub fn fault_wait_reporter(&self) -> FaultWaitReporter {
        FaultWaitReporter { shared: self.shared.clone() }
    }

    /// Waits for every page to be saved and written, then finishes the sink with the report.
    pub fn finish(mut self) -> Result<SnapshotReport, SnapshotError> {
        self.conclude(None)
    }

    /// Stops the snapshot: protection removed, writers woken, the sink aborted.
    pub fn cancel(mut self, reason: &str) -> SnapshotError {
        match self.conclude(Some(reason)) {
            Ok(_) => SnapshotError::CancelCompleted,
            Err(e) => e,
        }
    }

    fn conclude(&mut self, cancel: Option<&str>) -> Result<SnapshotReport, SnapshotError> {
        if let Some(reason) = cancel {
            self.shared.fail(SnapshotError::Cancelled(reason.to_string()));
        }
        let mut panicked = false;
        for handle in self.threads.drain(..) {
            panicked |= handle.join().is_err();
        }
        let sink = match self.sink_thread.take().map(JoinHandle::join) {
            Some(Ok(sink)) => Some(sink),
            Some(Err(_)) => {
                panicked = true;
                None
            }
            None => None,
        };
        if panicked {
            self.shared.fail(SnapshotError::ThreadPanicked);
        }
        // Whatever happened, no writer stays blocked and the region leaves the uffd.
        let _ = self.shared.release_writers();
        for region in self.shared.regions.iter() {
            let _ = self.shared.uffd.unregister(region.start(), region.len());
        }
        let failure = lock(&self.shared.failure).take();
        let complete = self.shared.engine.inspect(|engine, _| engine.is_complete());
        match (failure, sink) {
            (None, Some(sink)) if complete => {
                // Writes that bypassed the protection: nothing may be published then.
                if let Err(e) = self.contracts.at_finish() {
                    sink.abort();
                    return Err(e.into());
                }
                let mut report = self.report(sink.bytes_written(), String::new());
                let json = serde_json::to_string(&report).map_err(SnapshotError::Report)?;
                report.destination = sink.finish(&json)?;
                Ok(report)
            }
            (failure, sink) => {
                if let Some(sink) = sink {
                    sink.abort();
                }
                Err(failure.unwrap_or(SnapshotError::StoppedEarly))
            }
        }
    }

    fn report(&self, sink_bytes: u64, destination: String) -> SnapshotReport {
        let (engine, last_now) = self.shared.engine.inspect(|engine, last_now| (engine.report(), last_now));
        let duration_ns = engine.stats.finished_at.map_or(last_now.as_ns(), |t| t.as_ns());
        let regions = &self.shared.regions;
        SnapshotReport {
            backing: regions.iter().next().map_or(crate::region::Backing::Anonymous, Region::backing),
            regions: regions.table(),
            region_bytes: regions.len() as u64,
            page_size: regions.page_size(),
            uffd_features: self.features.clone(),
            unpopulated_method: self.method,
            pause_ns: self.pause_ns,
            protect_ns: self.protect_ns,
            touch_ns: self.touch_ns,
            observe_ns: self.observe_ns,
            protection_window_ns: engine.protection_window_ns.unwrap_or(duration_ns),
            duration_ns,
            sink_bytes,
            throughput_bytes_per_sec: regions.len() as f64 / (duration_ns.max(1) as f64 / 1e9),
            unprotect_calls: self.shared.unprotect_calls.load(Ordering::Relaxed),
            unprotect_pages: self.shared.unprotect_pages.load(Ordering::Relaxed),
            budget_bytes: engine.config.budget_pages * regions.page_size(),
            staging_mapped_peak_bytes: self.shared.staging_memory.mapped_peak_bytes(),
            staging_chunks_mapped: self.shared.staging_memory.chunks_mapped(),
            staging_chunk_reuses: self.shared.staging_memory.chunk_reuses(),
            fault_spin_ns: self.shared.fault_spin.as_nanos() as u64,
            threads: lock(&self.shared.thread_times).clone(),
            thread_priorities: lock(&self.shared.thread_scheduling).clone(),
            destination,
            engine,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.sink_thread.is_some() {
            let _ = self.conclude(Some("the snapshot session was dropped"));
        }
    }
}
