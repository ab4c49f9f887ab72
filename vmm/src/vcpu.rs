//! vCPU threads: the run loop, the exits the guest makes, parking on request, and the boot
//! and restore register states.
//!
//! Pause protocol (no lost wake-ups, by construction): the pauser sets `pause_requested`
//! under the lock, then sends [`kick_signal`] to every vCPU thread. The handler sets this
//! thread's `kvm_run.immediate_exit`, so KVM_RUN returns EINTR whether the signal lands inside
//! KVM_RUN or just before it. The loop looks at the flag before every KVM_RUN; it parks only
//! when no port I/O is half-done (after an I/O exit it first re-enters KVM_RUN with
//! `immediate_exit` set, which completes the instruction and returns EINTR), so the saved
//! registers are always between two guest instructions.

use crate::error::GuestStop;
use crate::layout::{EXIT_PORT, MBI_ADDR, SERIAL_LSR_PORT, SERIAL_PORT};
use crate::loader::MULTIBOOT_BOOT_MAGIC;
use crate::serial::{GuestLine, SerialLog};
use crate::state::VcpuState;
use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs, kvm_segment};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Called with every complete line the guest prints, on the vCPU thread, outside any lock.
pub type SerialHook = Arc<dyn Fn(&GuestLine) + Send + Sync>;

/// What the VM's threads share, behind one lock (vCPU exits are rare: a line per 0.5 s).
#[derive(Debug)]
pub(crate) struct Inner {
    pub pause_requested: bool,
    /// Counts pause requests; a vCPU parked for request N has `parked_epoch == N`.
    pub pause_epoch: u64,
    pub stop_requested: bool,
    pub parked_epoch: Vec<u64>,
    /// Filled by each vCPU as it parks.
    pub states: Vec<Option<Result<VcpuState, String>>>,
    /// Set when a vCPU thread ended on its own.
    pub stopped: Vec<Option<GuestStop>>,
    /// Set when a vCPU thread has returned (for any reason).
    pub exited: Vec<bool>,
    pub serial: SerialLog,
}

pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    pub changed: Condvar,
    pub serial_hook: Option<SerialHook>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not stop the VM from being paused or stopped.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

thread_local! {
    /// This vCPU thread's `kvm_run.immediate_exit`, for the kick signal handler.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let target = IMMEDIATE_EXIT.with(Cell::get);
    if !target.is_null() {
        // SAFETY: the pointer is set by this thread to its own vCPU's kvm_run mapping and
        // cleared before that mapping goes away (ImmediateExitTarget's drop); a volatile
        // byte store is async-signal-safe.
        unsafe { target.write_volatile(1) };
    }
}

/// The real-time signal that kicks a vCPU out of KVM_RUN (handler installed once).
pub(crate) fn kick_signal() -> Result<libc::c_int, String> {
    static INSTALLED: OnceLock<Result<libc::c_int, i32>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        let signal = vmm_sys_util::signal::SIGRTMIN();
        vmm_sys_util::signal::register_signal_handler(signal, kick_handler).map(|()| signal).map_err(|e| e.errno())
    });
    installed.map_err(|errno| format!("installing the vCPU kick signal handler failed (errno {errno})"))
}

/// Publishes a vCPU's `immediate_exit` to the signal handler for as long as it lives.
struct ImmediateExitTarget;

impl ImmediateExitTarget {
    fn install(vcpu: &mut VcpuFd) -> ImmediateExitTarget {
        let target = std::ptr::addr_of_mut!(vcpu.get_kvm_run().immediate_exit);
        IMMEDIATE_EXIT.with(|c| c.set(target));
        ImmediateExitTarget
    }
}

impl Drop for ImmediateExitTarget {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
    }
}

/// The body of vCPU thread `index`.
pub(crate) fn vcpu_thread(index: usize, mut vcpu: VcpuFd, shared: Arc<Shared>) {
    let target = ImmediateExitTarget::install(&mut vcpu);
    let stop = run_until_stopped(index, &mut vcpu, &shared);
    drop(target);
    let mut inner = shared.lock();
    inner.stopped[index] = stop;
    inner.exited[index] = true;
    shared.changed.notify_all();
}

enum Next {
    Run,
    Stop,
}

fn run_until_stopped(index: usize, vcpu: &mut VcpuFd, shared: &Shared) -> Option<GuestStop> {
    let mut io_pending = false;
    loop {
        match park_if_asked(index, vcpu, shared, io_pending) {
            Next::Stop => return None,
            Next::Run => {}
        }
        io_pending = false;
        let outcome = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                io_pending = true;
                port_out(index, port, data, shared)
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                io_pending = true;
                // Line status: transmitter empty; anything else reads as a floating bus.
                data.fill(if port == SERIAL_LSR_PORT { 0x60 } else { 0xff });
                None
            }
            Ok(VcpuExit::Intr) => None,
            Ok(VcpuExit::Shutdown) => Some(GuestStop::Shutdown),
            Ok(VcpuExit::Hlt) => Some(GuestStop::Halted),
            Ok(VcpuExit::InternalError) => Some(GuestStop::KvmFailed("KVM_EXIT_INTERNAL_ERROR".into())),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                Some(GuestStop::KvmFailed(format!("KVM_EXIT_FAIL_ENTRY reason {reason:#x} on host CPU {cpu}")))
            }
            Ok(_) => Some(GuestStop::UnexpectedExit(format!("exit reason {}", exit_reason(vcpu)))),
            Err(e) if e.errno() == libc::EINTR => None,
            Err(e) => Some(GuestStop::KvmFailed(format!("KVM_RUN: {e}"))),
        };
        if let Some(stop) = outcome {
            return Some(stop);
        }
        // A kick may have set it; clear before looking at the flag again (a later kick sets
        // it anew, and its flag is set before its signal is sent).
        vcpu.set_kvm_immediate_exit(0);
    }
}

fn exit_reason(vcpu: &mut VcpuFd) -> u32 {
    vcpu.get_kvm_run().exit_reason
}

fn park_if_asked(index: usize, vcpu: &mut VcpuFd, shared: &Shared, io_pending: bool) -> Next {
    let mut inner = shared.lock();
    loop {
        if inner.stop_requested {
            return Next::Stop;
        }
        if !inner.pause_requested {
            return Next::Run;
        }
        if io_pending {
            // Let KVM finish the port instruction, then come back with EINTR.
            vcpu.set_kvm_immediate_exit(1);
            return Next::Run;
        }
        if inner.parked_epoch[index] != inner.pause_epoch {
            inner.states[index] = Some(capture(vcpu));
            inner.parked_epoch[index] = inner.pause_epoch;
            shared.changed.notify_all();
        }
        inner = shared.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
    }
}

/// Port writes: serial bytes (one `rep outsb` per line) and the exit port.
fn port_out(index: usize, port: u16, data: &[u8], shared: &Shared) -> Option<GuestStop> {
    match port {
        SERIAL_PORT => {
            let lines = shared.lock().serial.push_bytes(index, data);
            if !lines.is_empty() {
                shared.changed.notify_all();
                if let Some(hook) = &shared.serial_hook {
                    lines.iter().for_each(|l| hook(l));
                }
            }
            None
        }
        EXIT_PORT => Some(GuestStop::Exited { code: data.first().copied().unwrap_or(0) }),
        // Other UART registers (interrupt enable, line control...) are accepted and ignored.
        _ => None,
    }
}

/// Reads the registers a snapshot saves.
pub(crate) fn capture(vcpu: &VcpuFd) -> Result<VcpuState, String> {
    let regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    let sregs = vcpu.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    let fpu = vcpu.get_fpu().map_err(|e| format!("KVM_GET_FPU: {e}"))?;
    let mut msrs = tsc_msr(0).map_err(|e| format!("KVM_GET_MSRS: {e}"))?;
    let read = vcpu.get_msrs(&mut msrs).map_err(|e| format!("KVM_GET_MSRS: {e}"))?;
    let tsc = match msrs.as_slice() {
        [entry] if read == 1 => entry.data,
        _ => return Err("KVM_GET_MSRS did not return MSR_IA32_TSC".into()),
    };
    Ok(VcpuState { regs: (&regs).into(), sregs: (&sregs).into(), fpu: (&fpu).into(), tsc })
}

/// Writes saved registers into a fresh vCPU.
pub(crate) fn apply(vcpu: &VcpuFd, state: &VcpuState) -> Result<(), (&'static str, Option<kvm_ioctls::Error>)> {
    vcpu.set_sregs(&state.sregs.to_kvm()).map_err(|e| ("KVM_SET_SREGS", Some(e)))?;
    let mut regs = kvm_regs::default();
    state.regs.apply(&mut regs);
    vcpu.set_regs(&regs).map_err(|e| ("KVM_SET_REGS", Some(e)))?;
    let fpu = state.fpu.to_kvm().ok_or(("malformed FPU register hex", None))?;
    vcpu.set_fpu(&fpu).map_err(|e| ("KVM_SET_FPU", Some(e)))?;
    let msrs = tsc_msr(state.tsc).map_err(|_| ("building the MSR list", None))?;
    match vcpu.set_msrs(&msrs) {
        Ok(1) => Ok(()),
        Ok(_) => Err(("KVM_SET_MSRS refused MSR_IA32_TSC", None)),
        Err(e) => Err(("KVM_SET_MSRS", Some(e))),
    }
}

/// `MSR_IA32_TSC`.
const MSR_IA32_TSC: u32 = 0x10;

fn tsc_msr(value: u64) -> Result<Msrs, vmm_sys_util::fam::Error> {
    Msrs::from_entries(&[kvm_msr_entry { index: MSR_IA32_TSC, data: value, ..Default::default() }])
}

/// The multiboot entry state: 32-bit protected mode, flat segments, paging off, EAX = the
/// boot magic, EBX = the multiboot information.
pub(crate) fn set_boot_state(vcpu: &VcpuFd, entry: u32) -> Result<(), (&'static str, kvm_ioctls::Error)> {
    let mut sregs = vcpu.get_sregs().map_err(|e| ("KVM_GET_SREGS", e))?;
    let code = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 0x08,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    let data = kvm_segment { selector: 0x10, type_: 0x3, ..code };
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr0 = 0x11; // PE, ET
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs).map_err(|e| ("KVM_SET_SREGS", e))?;
    let regs = kvm_regs {
        rip: u64::from(entry),
        rax: u64::from(MULTIBOOT_BOOT_MAGIC),
        rbx: MBI_ADDR,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(|e| ("KVM_SET_REGS", e))
}
