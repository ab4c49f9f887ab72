//! Live snapshots of a running VM through `wpsnap-linux`'s session, and restore.
//!
//! [`start_live_snapshot`] prepares a session over guest memory, and arms it with a pause
//! closure that parks every vCPU and captures its registers; the session write-protects guest
//! memory and the vCPUs resume. From then on a guest store to a page not yet saved faults into
//! the session (the vCPU thread blocks in KVM until the page is saved), exactly like a
//! `wpsnap run` writer thread. The engine, policies and service models are the ones `wpsnap
//! run` uses; only the writers differ.
//!
//! The registers go into the snapshot's trailer report as its `vm_state` member (a
//! [`VmState`], versioned; see docs/format.md), written when the snapshot finishes.
//! [`restore`] reads the pages back into a new VM's memory and starts its vCPUs from that
//! state.

use crate::error::{VmError, VmSnapshotError};
use crate::state::{VM_STATE_VERSION, VmState};
use crate::vm::{Paused, Vm, VmConfig};
use serde::Serialize;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, Mutex};
use wpsnap_format::{DigestedRun, PageDigest};
use wpsnap_linux::output::{Output, OutputSummary};
use wpsnap_linux::region::{Region, Regions};
use wpsnap_linux::snapshot::{
    FormatSink, PageSink, PauseGuard, Progress, Running, SinkError, Snapshot, SnapshotConfig, SnapshotReport,
};

/// The report member that holds the VM state.
pub const VM_STATE_KEY: &str = "vm_state";

type StateSlot = Arc<Mutex<Option<VmState>>>;

/// A [`FormatSink`] that adds the VM state to the report when it finishes.
struct VmStateSink {
    inner: Box<dyn PageSink>,
    state: StateSlot,
}

impl PageSink for VmStateSink {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        self.inner.write_page(index, data)
    }
    fn write_page_digested(&mut self, index: u64, data: &[u8], digest: &PageDigest) -> Result<(), SinkError> {
        self.inner.write_page_digested(index, data, digest)
    }
    fn write_runs(&mut self, runs: &[DigestedRun<'_>]) -> Result<(), SinkError> {
        self.inner.write_runs(runs)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        let state = self.state.lock().ok().and_then(|mut s| s.take());
        let Some(state) = state else {
            self.inner.abort();
            return Err(SinkError::custom("no vCPU state was captured at the snapshot instant"));
        };
        let report = with_vm_state(report_json, &state);
        match report {
            Ok(report) => self.inner.finish(&report),
            Err(e) => {
                self.inner.abort();
                Err(SinkError::custom(format!("adding the VM state to the report: {e}")))
            }
        }
    }
    fn abort(self: Box<Self>) {
        self.inner.abort();
    }
}

fn with_vm_state(report_json: &str, state: &VmState) -> Result<String, serde_json::Error> {
    let mut report: serde_json::Value = serde_json::from_str(report_json)?;
    let state = serde_json::to_value(state)?;
    match report.as_object_mut() {
        Some(object) => {
            object.insert(VM_STATE_KEY.to_string(), state);
        }
        None => report = serde_json::json!({ "report": report, VM_STATE_KEY: state }),
    }
    serde_json::to_string(&report)
}

/// Timings of the pause around the write-protect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PauseTiming {
    /// From the pause request until every vCPU was parked with its registers read.
    pub park_ns: u64,
    /// From the pause request until the vCPUs were told to resume (park, write-protect,
    /// resume): the guest's downtime.
    pub downtime_ns: u64,
}

/// Resumes the vCPUs when dropped and notes when.
struct TimedPause<'a, 'vm> {
    paused: Option<Paused<'vm>>,
    timing: &'a mut PauseTiming,
}

/// The vCPUs stay parked for as long as it lives.
impl PauseGuard for TimedPause<'_, '_> {}

impl Drop for TimedPause<'_, '_> {
    fn drop(&mut self) {
        if let Some(paused) = self.paused.take() {
            let started = paused.started();
            self.timing.park_ns = paused.park_ns();
            drop(paused);
            self.timing.downtime_ns = started.elapsed().as_nanos() as u64;
        }
    }
}

/// What a live snapshot of a VM measured.
#[derive(Clone, Debug, Serialize)]
pub struct VmSnapshotReport {
    /// The session's report (engine, latencies, pause, duration), as for `wpsnap run`.
    pub session: SnapshotReport,
    pub pause: PauseTiming,
    pub vcpus: u32,
    /// The output's summary (bytes, destination, whether durable).
    pub output: Option<OutputSummary>,
}

/// A live snapshot in progress. Finish it or cancel it; dropping it cancels.
#[must_use = "finish or cancel the snapshot"]
pub struct LiveSnapshot<'vm> {
    _vm: &'vm Vm,
    running: Running<'vm>,
    timing: PauseTiming,
    vcpus: u32,
    output: Arc<Mutex<Option<OutputSummary>>>,
}

impl std::fmt::Debug for LiveSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSnapshot").field("timing", &self.timing).finish_non_exhaustive()
    }
}

impl LiveSnapshot<'_> {
    /// Pages saved so far.
    pub fn progress(&self) -> Progress {
        self.running.progress()
    }
    /// True once every page is saved (or the snapshot failed).
    pub fn is_done(&self) -> bool {
        self.running.is_done()
    }
    /// The pause's timings.
    pub fn pause_timing(&self) -> PauseTiming {
        self.timing
    }
    /// Waits for every page to be written and finishes the output.
    pub fn finish(self) -> Result<VmSnapshotReport, VmSnapshotError> {
        let session = self.running.finish()?;
        let output = self.output.lock().ok().and_then(|mut s| s.take());
        Ok(VmSnapshotReport { session, pause: self.timing, vcpus: self.vcpus, output })
    }
    /// Stops the snapshot; the output is aborted (a file is left only as NAME.partial).
    pub fn cancel(self, reason: &str) -> VmSnapshotError {
        self.running.cancel(reason).into()
    }
}

/// Starts a live snapshot of `vm`'s memory to `output`. `at_instant` runs while the vCPUs
/// are paused and memory is protected (tests take their reference copy there; its time is
/// not counted in the pause).
pub fn start_live_snapshot<'vm>(
    vm: &'vm Vm,
    output: Box<dyn Output>,
    config: SnapshotConfig,
    at_instant: impl FnOnce(&Region),
) -> Result<LiveSnapshot<'vm>, VmSnapshotError> {
    vm.check()?;
    let region = vm.memory().region()?;
    let engine_config = config.engine_config(&region);
    let config_json = serde_json::to_string(&engine_config).map_err(SinkError::Config)?;
    let (sink, output_slot) = FormatSink::new(output, &region, config_json)?;
    let state_slot: StateSlot = Arc::new(Mutex::new(None));
    let sink = VmStateSink { inner: Box::new(sink), state: state_slot.clone() };
    let prepared = Snapshot::prepare(region, config, Box::new(sink))?;
    let mut timing = PauseTiming::default();
    let mut pause_error: Option<VmError> = None;
    let memory_bytes = vm.memory().len();
    let (timing_ref, error_ref) = (&mut timing, &mut pause_error);
    let running = prepared.arm_observed(
        move || match vm.pause() {
            Ok(paused) => {
                let state = VmState { version: VM_STATE_VERSION, memory_bytes, vcpus: paused.states().to_vec() };
                if let Ok(mut slot) = state_slot.lock() {
                    *slot = Some(state);
                }
                TimedPause { paused: Some(paused), timing: timing_ref }
            }
            Err(e) => {
                *error_ref = Some(e);
                TimedPause { paused: None, timing: timing_ref }
            }
        },
        // One guest memory region: the reference copy is of that one.
        move |regions: &Regions<'_>| {
            if let Some(region) = regions.iter().next() {
                at_instant(region);
            }
        },
    )?;
    if let Some(e) = pause_error {
        // Memory was protected without the vCPUs stopped: this image cannot be consistent.
        let _ = running.cancel("the vCPUs could not be paused");
        return Err(e.into());
    }
    let vcpus = vm.config().vcpus;
    Ok(LiveSnapshot { _vm: vm, running, timing, vcpus, output: output_slot })
}

/// Reads the header of a snapshot file: its region length (the guest memory size).
pub fn snapshot_memory_bytes(path: &Path) -> Result<u64, VmSnapshotError> {
    let file = std::fs::File::open(path)
        .map_err(|source| VmSnapshotError::Open { path: path.display().to_string(), source })?;
    let reader = wpsnap_format::read_snapshot(BufReader::new(file))?;
    Ok(reader.header().region_len())
}

/// Boots a new VM from the snapshot at `path`: guest memory from the pages, vCPUs from the
/// saved registers. `config.memory_bytes` must equal the snapshot's region length and
/// `config.vcpus` the saved vCPU count.
pub fn restore(path: &Path, config: VmConfig) -> Result<Vm, VmSnapshotError> {
    let file = std::fs::File::open(path)
        .map_err(|source| VmSnapshotError::Open { path: path.display().to_string(), source })?;
    let mut reader = wpsnap_format::read_snapshot(BufReader::new(file))?;
    let header = reader.header().clone();
    let expected = format!("{} bytes of 4096-byte pages", config.memory_bytes);
    let page_size = header.uniform_page_size().unwrap_or(0);
    if page_size != 4096 || header.region_len() != config.memory_bytes {
        let found = format!("{} bytes of {page_size}-byte pages", header.region_len());
        return Err(VmSnapshotError::RegionMismatch { found, expected });
    }
    let (kvm, vm_fd, ram) = Vm::prepare_restore(&config)?;
    while let Some(page) = reader.next_page()? {
        // Fresh guest memory is zero, so zero pages need no writing.
        if let Some(data) = page.data {
            ram.write(page.index * page_size, data)?;
        }
    }
    let trailer = reader.trailer().ok_or_else(|| VmSnapshotError::NoVmState("the snapshot has no trailer".into()))?;
    let state = vm_state_of(&trailer.report_json)?;
    if state.memory_bytes != header.region_len() {
        return Err(VmSnapshotError::RegionMismatch {
            found: format!("VM state for {} bytes", state.memory_bytes),
            expected: format!("{} bytes (the snapshot's region)", header.region_len()),
        });
    }
    if state.vcpus.len() != config.vcpus as usize {
        return Err(VmSnapshotError::NoVmState(format!(
            "it has {} vCPUs, the VM was configured with {}",
            state.vcpus.len(),
            config.vcpus
        )));
    }
    Ok(Vm::start_restored(kvm, vm_fd, ram, &state.vcpus, config)?)
}

/// The VM state stored in a snapshot's report.
pub fn vm_state_of(report_json: &str) -> Result<VmState, VmSnapshotError> {
    let bad = |what: String| VmSnapshotError::NoVmState(what);
    let report: serde_json::Value =
        serde_json::from_str(report_json).map_err(|e| bad(format!("the report is not JSON: {e}")))?;
    let member = report.get(VM_STATE_KEY).ok_or_else(|| bad(format!("the report has no {VM_STATE_KEY} member")))?;
    let version = member.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(VM_STATE_VERSION)) {
        let found = version.map_or_else(|| "none".to_string(), |v| v.to_string());
        return Err(bad(format!("{VM_STATE_KEY} version {found}; this build reads version {VM_STATE_VERSION}")));
    }
    serde_json::from_value(member.clone()).map_err(|e| bad(format!("{VM_STATE_KEY}: {e}")))
}
