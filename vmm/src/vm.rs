//! A running VM: guest memory, vCPU threads, pause/resume, stop.

use crate::error::VmError;
use crate::guest::GuestConfig;
use crate::layout::{CPUS_MAX, MAILBOX_ADDR, MAILBOX_MAGIC, MEMORY_BYTES_MIN};
use crate::loader::load_multiboot;
use crate::memory::GuestRam;
use crate::serial::SerialLog;
use crate::state::VcpuState;
use crate::vcpu::{Inner, SerialHook, Shared, apply, kick_signal, set_boot_state, vcpu_thread};
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::Killable;

/// Default bound on parking every vCPU.
pub const PAUSE_WAIT_MS_DEFAULT: u64 = 200;
/// Bound on vCPU threads ending after a stop request.
pub const STOP_WAIT_MS_MAX: u64 = 2000;

/// How to build the VM.
#[derive(Clone)]
pub struct VmConfig {
    pub memory_bytes: u64,
    pub vcpus: u32,
    /// `MADV_HUGEPAGE` on guest memory.
    pub huge_pages: bool,
    /// Allocate all guest memory before the guest runs (like QEMU's `-mem-prealloc`).
    pub prefault: bool,
    /// Bound on [`Vm::pause`]: a vCPU not parked by then is an error.
    pub pause_wait_ms_max: u64,
    pub serial_hook: Option<SerialHook>,
}

impl std::fmt::Debug for VmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmConfig")
            .field("memory_bytes", &self.memory_bytes)
            .field("vcpus", &self.vcpus)
            .field("huge_pages", &self.huge_pages)
            .field("prefault", &self.prefault)
            .field("pause_wait_ms_max", &self.pause_wait_ms_max)
            .finish_non_exhaustive()
    }
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            memory_bytes: 64 << 20,
            vcpus: 1,
            huge_pages: true,
            prefault: true,
            pause_wait_ms_max: PAUSE_WAIT_MS_DEFAULT,
            serial_hook: None,
        }
    }
}

/// How each vCPU starts.
pub(crate) enum StartState<'a> {
    /// Multiboot entry at this address.
    Boot(u32),
    /// Registers saved by a snapshot, one per vCPU.
    Restore(&'a [VcpuState]),
}

/// A running guest. Dropping it stops the vCPUs (bounded) and unmaps guest memory.
pub struct Vm {
    // Field order is drop order: threads stopped (in Drop) before the VM fd and memory go.
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    config: VmConfig,
    tsc_khz: u32,
    _vm_fd: VmFd,
    _kvm: Kvm,
    ram: GuestRam,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").field("config", &self.config).finish_non_exhaustive()
    }
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// The host's TSC frequency as KVM reports it (the guest converts cycles with it).
pub fn host_tsc_khz() -> Result<u32, VmError> {
    let kvm = Kvm::new().map_err(kvm_err("opening /dev/kvm"))?;
    let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    let vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
    vcpu.get_tsc_khz().map_err(kvm_err("KVM_GET_TSC_KHZ"))
}

impl Vm {
    /// Boots `elf` (a multiboot v1 ELF32) with `guest`'s settings. `guest.tsc_khz == 0` means
    /// the host's TSC frequency.
    pub fn boot(elf: &[u8], guest: &GuestConfig, config: VmConfig) -> Result<Vm, VmError> {
        let (kvm, vm_fd, ram) = create(&config)?;
        let vcpus = create_vcpus(&kvm, &vm_fd, config.vcpus)?;
        let tsc_khz = vcpus[0].get_tsc_khz().map_err(kvm_err("KVM_GET_TSC_KHZ"))?;
        let mut guest = guest.clone();
        if guest.tsc_khz == 0 {
            guest.tsc_khz = u64::from(tsc_khz);
        }
        let entry = load_multiboot(&ram, elf, &guest.cmdline(config.vcpus))?;
        let mut mailbox = [0u8; 16];
        mailbox[..8].copy_from_slice(&MAILBOX_MAGIC.to_le_bytes());
        ram.write(MAILBOX_ADDR, &mailbox)?;
        Vm::start(kvm, vm_fd, ram, vcpus, StartState::Boot(entry), config, tsc_khz)
    }

    /// A VM whose memory the caller fills (restore), with vCPUs not yet created.
    pub(crate) fn prepare_restore(config: &VmConfig) -> Result<(Kvm, VmFd, GuestRam), VmError> {
        create(config)
    }

    /// Creates the vCPUs, sets their start state and starts their threads.
    pub(crate) fn start_restored(
        kvm: Kvm,
        vm_fd: VmFd,
        ram: GuestRam,
        states: &[VcpuState],
        config: VmConfig,
    ) -> Result<Vm, VmError> {
        let vcpus = create_vcpus(&kvm, &vm_fd, config.vcpus)?;
        let tsc_khz = vcpus[0].get_tsc_khz().map_err(kvm_err("KVM_GET_TSC_KHZ"))?;
        Vm::start(kvm, vm_fd, ram, vcpus, StartState::Restore(states), config, tsc_khz)
    }

    fn start(
        kvm: Kvm,
        vm_fd: VmFd,
        ram: GuestRam,
        vcpus: Vec<VcpuFd>,
        start: StartState<'_>,
        config: VmConfig,
        tsc_khz: u32,
    ) -> Result<Vm, VmError> {
        for (i, vcpu) in vcpus.iter().enumerate() {
            match &start {
                StartState::Boot(entry) => set_boot_state(vcpu, *entry)
                    .map_err(|(what, source)| VmError::VcpuSetup { vcpu: i as u32, what, source })?,
                StartState::Restore(states) => {
                    let state = states.get(i).ok_or_else(|| VmError::BadVcpuState(format!("no state for vCPU {i}")))?;
                    apply(vcpu, state).map_err(|(what, source)| match source {
                        Some(source) => VmError::VcpuSetup { vcpu: i as u32, what, source },
                        None => VmError::BadVcpuState(format!("vCPU {i}: {what}")),
                    })?;
                }
            }
        }
        kick_signal().map_err(VmError::KickSignal)?;
        let n = vcpus.len();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                pause_requested: false,
                pause_epoch: 0,
                stop_requested: false,
                parked_epoch: vec![0; n],
                states: vec![None; n],
                stopped: vec![None; n],
                exited: vec![false; n],
                serial: SerialLog::new(Instant::now(), n),
            }),
            changed: Condvar::new(),
            serial_hook: config.serial_hook.clone(),
        });
        let mut vm = Vm { shared, threads: Vec::new(), config, tsc_khz, _vm_fd: vm_fd, _kvm: kvm, ram };
        for (i, vcpu) in vcpus.into_iter().enumerate() {
            let shared = vm.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("wpsnap-vcpu{i}"))
                .spawn(move || vcpu_thread(i, vcpu, shared))
                .map_err(|source| VmError::Spawn { vcpu: i as u32, source })?;
            vm.threads.push(handle);
        }
        Ok(vm)
    }

    /// The guest's memory.
    pub fn memory(&self) -> &GuestRam {
        &self.ram
    }

    /// The VM's settings.
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Host time since the VM started, in the clock of [`StatLine::host_ns`](crate::serial::StatLine).
    pub fn now_ns(&self) -> u64 {
        self.shared.lock().serial.elapsed_ns()
    }

    /// TSC frequency KVM reports for the vCPUs.
    pub fn tsc_khz(&self) -> u32 {
        self.tsc_khz
    }

    /// Runs `f` on the guest's serial output so far (parsed). It holds the lock vCPU exits
    /// take: keep it short.
    pub fn with_serial<T>(&self, f: impl FnOnce(&SerialLog) -> T) -> T {
        f(&self.shared.lock().serial)
    }

    /// Fails if a vCPU stopped on its own or the guest reported an error.
    pub fn check(&self) -> Result<(), VmError> {
        check_inner(&self.shared.lock())
    }

    /// Waits (bounded) until `found` returns something from the serial log; fails early if a
    /// vCPU stops or the guest reports an error.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&SerialLog) -> Option<T>,
    ) -> Result<T, VmError> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.lock();
        loop {
            if let Some(t) = found(&inner.serial) {
                return Ok(t);
            }
            check_inner(&inner)?;
            let now = Instant::now();
            if now >= deadline {
                return Err(VmError::Timeout { what: what.to_string(), waited_ms: timeout.as_millis() as u64 });
            }
            inner = self.shared.changed.wait_timeout(inner, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Asks the guest to verify its self-check records at its next report; returns the request
    /// number (each vCPU answers with one `WPCHECK` line).
    pub fn request_verify(&self) -> Result<u64, VmError> {
        let mut seq = [0u8; 8];
        self.ram.read(MAILBOX_ADDR + 8, &mut seq)?;
        let next = u64::from_le_bytes(seq).wrapping_add(1);
        // The guest reads this word once per period; an 8-byte aligned store is atomic.
        self.ram.write(MAILBOX_ADDR, &MAILBOX_MAGIC.to_le_bytes())?;
        self.ram.write(MAILBOX_ADDR + 8, &next.to_le_bytes())?;
        Ok(next)
    }

    /// Parks every vCPU (bounded by `pause_wait_ms_max`) and captures their registers. The
    /// vCPUs resume when the returned guard is dropped.
    pub fn pause(&self) -> Result<Paused<'_>, VmError> {
        let started = Instant::now();
        let signal = kick_signal().map_err(VmError::KickSignal)?;
        let epoch = {
            let mut inner = self.shared.lock();
            check_inner(&inner)?;
            inner.pause_requested = true;
            inner.pause_epoch += 1;
            inner.states.iter_mut().for_each(|s| *s = None);
            inner.pause_epoch
        };
        for handle in &self.threads {
            // A thread that already ended shows up as stopped below.
            let _ = handle.kill(signal);
        }
        // Resumes the vCPUs on every early return below.
        let mut paused = Paused { shared: &self.shared, states: Vec::new(), pause_ns: 0, started };
        let wait = Duration::from_millis(self.config.pause_wait_ms_max);
        let mut inner = self.shared.lock();
        loop {
            check_inner(&inner)?;
            let missing: Vec<String> = (0..inner.parked_epoch.len())
                .filter(|&i| inner.parked_epoch[i] != epoch)
                .map(|i| i.to_string())
                .collect();
            if missing.is_empty() {
                break;
            }
            let waited = started.elapsed();
            if waited >= wait {
                // `paused` resumes the others when dropped.
                drop(inner);
                return Err(VmError::VcpuDidNotStop {
                    vcpus: missing.join(", "),
                    waited_ms: waited.as_millis() as u64,
                });
            }
            inner = self.shared.changed.wait_timeout(inner, wait - waited).unwrap_or_else(|e| e.into_inner()).0;
        }
        let mut states = Vec::with_capacity(inner.states.len());
        for (i, state) in inner.states.iter().enumerate() {
            match state {
                Some(Ok(s)) => states.push(s.clone()),
                Some(Err(e)) => return Err(VmError::BadVcpuState(format!("capturing vCPU {i}: {e}"))),
                None => return Err(VmError::BadVcpuState(format!("vCPU {i} parked without its state"))),
            }
        }
        drop(inner);
        // Fill in this guard (a copy made with `..paused` would leave this one to be dropped,
        // resuming the vCPUs at once).
        paused.states = states;
        paused.pause_ns = started.elapsed().as_nanos() as u64;
        Ok(paused)
    }

    /// Stops the vCPUs (bounded) and reports how the guest was doing: an error if a vCPU had
    /// stopped on its own or does not stop.
    pub fn stop(mut self) -> Result<(), VmError> {
        let result = self.stop_threads();
        let check = check_inner(&self.shared.lock());
        result.and(check)
    }

    fn stop_threads(&mut self) -> Result<(), VmError> {
        if self.threads.is_empty() {
            return Ok(());
        }
        {
            let mut inner = self.shared.lock();
            inner.stop_requested = true;
            self.shared.changed.notify_all();
        }
        if let Ok(signal) = kick_signal() {
            for handle in &self.threads {
                let _ = handle.kill(signal);
            }
        }
        let started = Instant::now();
        let wait = Duration::from_millis(STOP_WAIT_MS_MAX);
        let mut inner = self.shared.lock();
        while !inner.exited.iter().all(|&e| e) && started.elapsed() < wait {
            inner =
                self.shared.changed.wait_timeout(inner, wait - started.elapsed()).unwrap_or_else(|e| e.into_inner()).0;
        }
        let stuck: Vec<String> = (0..inner.exited.len()).filter(|&i| !inner.exited[i]).map(|i| i.to_string()).collect();
        drop(inner);
        for handle in std::mem::take(&mut self.threads) {
            if handle.is_finished() {
                let _ = handle.join();
            }
            // A stuck thread is left detached: it checks `stop_requested` before any further
            // KVM_RUN, so it never runs the guest again.
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(VmError::VcpuDidNotStop { vcpus: stuck.join(", "), waited_ms: wait.as_millis() as u64 })
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.stop_threads();
    }
}

fn check_inner(inner: &Inner) -> Result<(), VmError> {
    // The guest's own words first: it prints why before it exits.
    if let Some(e) = inner.serial.errors.first() {
        return Err(VmError::GuestError(e.clone()));
    }
    if let Some((i, stop)) = inner.stopped.iter().enumerate().find_map(|(i, s)| s.clone().map(|s| (i, s))) {
        return Err(VmError::GuestStopped { vcpu: i as u32, stop });
    }
    Ok(())
}

/// Every vCPU parked, with its registers. Dropping it resumes them.
#[must_use = "the vCPUs stay paused until this is dropped"]
pub struct Paused<'a> {
    shared: &'a Shared,
    states: Vec<VcpuState>,
    pause_ns: u64,
    started: Instant,
}

impl std::fmt::Debug for Paused<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paused").field("vcpus", &self.states.len()).field("pause_ns", &self.pause_ns).finish()
    }
}

impl Paused<'_> {
    /// The registers of every vCPU, captured as it parked.
    pub fn states(&self) -> &[VcpuState] {
        &self.states
    }
    /// From the pause request until every vCPU was parked.
    pub fn park_ns(&self) -> u64 {
        self.pause_ns
    }
    /// When the pause was requested.
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.pause_requested = false;
        self.shared.changed.notify_all();
    }
}

fn create(config: &VmConfig) -> Result<(Kvm, VmFd, GuestRam), VmError> {
    if config.vcpus == 0 || config.vcpus > CPUS_MAX {
        return Err(VmError::BadVcpuCount { vcpus: config.vcpus, max: CPUS_MAX });
    }
    if config.memory_bytes < MEMORY_BYTES_MIN || !config.memory_bytes.is_multiple_of(2 << 20) {
        return Err(VmError::Memory {
            bytes: config.memory_bytes,
            reason: format!("must be a multiple of 2 MiB and at least {} MiB", MEMORY_BYTES_MIN.div_ceil(1 << 20)),
        });
    }
    let kvm = Kvm::new().map_err(kvm_err("opening /dev/kvm"))?;
    let vm_fd = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
    let ram = GuestRam::new(config.memory_bytes, config.huge_pages, config.prefault)?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: ram.len(),
        userspace_addr: ram.host_ptr() as u64,
    };
    // SAFETY: the region is our own mapping of exactly `memory_size` bytes, and `ram` lives
    // in the same Vm as `vm_fd`, dropped after the vCPU threads have stopped.
    unsafe { vm_fd.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
    Ok((kvm, vm_fd, ram))
}

fn create_vcpus(kvm: &Kvm, vm_fd: &VmFd, count: u32) -> Result<Vec<VcpuFd>, VmError> {
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    (0..count)
        .map(|i| {
            let vcpu = vm_fd.create_vcpu(u64::from(i)).map_err(kvm_err("KVM_CREATE_VCPU"))?;
            vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
            Ok(vcpu)
        })
        .collect()
}
