//! How the snapshot's threads are scheduled against the program's own threads.
//!
//! A writer blocked on a protected page waits for the fault thread to be woken, to be given a
//! CPU, to copy the page and to unprotect it. On a machine whose CPUs are busy (the writers
//! themselves, the scan's memcpy, the sink's writes, other programs) the fault thread's wait
//! for a CPU dominates (docs/results/2026-11-30-fault-latency.md). The default therefore puts
//! the fault thread ahead of ordinary threads (`SCHED_FIFO` where the process may, else a
//! negative nice value where it may). The scan and sink threads keep what they inherited by
//! default: lowering them (`SCHED_BATCH` at a positive nice value, [`BackgroundPriority::Lowered`])
//! gives the writers more CPU while they share one, but the scan then takes longer, and every
//! store to a page it has not reached yet faults: with a full-rate uniform writer on 2 CPUs the
//! protection window's median went from 321 ms to 522 ms (4 interleaved rounds, docs/linux.md).
//! Where a setting is not permitted the thread keeps what it inherited and the report carries
//! a note; it is never an error. [`ThreadPriority::inherit`] turns all of it off.

use serde::{Deserialize, Serialize};

/// Real-time priority of the fault thread under `SCHED_FIFO`: the lowest, so it preempts every
/// ordinary thread but no real-time thread the embedding program may have.
pub const FAULT_RT_PRIORITY: i32 = 1;
/// Nice value of the fault thread when `SCHED_FIFO` is not permitted (needs `CAP_SYS_NICE` or
/// an `RLIMIT_NICE` of at least 20 + 5).
pub const FAULT_NICE: i32 = -5;
/// Nice value of the scan and sink threads. Moderate on purpose: they hold the engine's lock
/// for short turns, and a thread at nice 19 preempted inside one would keep the fault thread
/// waiting behind the program's threads (a priority inversion).
pub const BACKGROUND_NICE: i32 = 5;

/// The fault thread's scheduling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultThreadPriority {
    /// What the spawning thread has.
    Inherit,
    /// `SCHED_FIFO` at [`FAULT_RT_PRIORITY`] where permitted, else nice [`FAULT_NICE`] where
    /// permitted, else inherited (with a note in the report).
    #[default]
    Raised,
}

/// The scan and sink threads' scheduling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackgroundPriority {
    /// What the spawning thread has (the default: a faster scan shortens the protection
    /// window, see the module docs).
    #[default]
    Inherit,
    /// `SCHED_BATCH` (no wake-up preemption of other threads) at nice [`BACKGROUND_NICE`]
    /// (or the inherited nice value if that is already lower priority): for writers that
    /// must keep their CPU share even at the cost of a longer protection window.
    Lowered,
}

/// The qemu model's one thread's scheduling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QemuThreadPriority {
    /// What the spawning thread has: QEMU's migration thread runs at normal priority.
    #[default]
    Inherit,
    /// As a raised fault thread. For experiments that must not depend on the machine's other
    /// load (a test comparing the real backend with the simulator, which has no CPU
    /// contention). Only with a sink that blocks: a `SCHED_FIFO` thread that never sleeps takes
    /// its CPU from every ordinary thread until the kernel's real-time throttling stops it.
    Raised,
}

/// Scheduling of the snapshot's threads: the decoupled model's fault thread and background
/// (scan, sink) threads, and the qemu model's single thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadPriority {
    pub fault: FaultThreadPriority,
    pub background: BackgroundPriority,
    #[serde(default)]
    pub qemu: QemuThreadPriority,
}

impl ThreadPriority {
    /// Every thread as spawned: for a program that manages its own threads' scheduling.
    pub fn inherit() -> ThreadPriority {
        ThreadPriority {
            fault: FaultThreadPriority::Inherit,
            background: BackgroundPriority::Inherit,
            qemu: QemuThreadPriority::Inherit,
        }
    }
}

/// What a snapshot thread is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ThreadRole {
    Fault,
    Background,
    /// The qemu model's one thread: changed only when asked ([`QemuThreadPriority::Raised`]).
    Qemu,
}

/// Applies `priority` to the calling thread for `role`. Returns what the thread runs at and,
/// where a setting was refused, a note saying so.
pub(super) fn apply_to_current(priority: ThreadPriority, role: ThreadRole) -> (String, Option<String>) {
    match role {
        ThreadRole::Fault if priority.fault == FaultThreadPriority::Raised => raise_current(),
        ThreadRole::Qemu if priority.qemu == QemuThreadPriority::Raised => raise_current(),
        ThreadRole::Background if priority.background == BackgroundPriority::Lowered => lower_current(),
        _ => (describe_current(), None),
    }
}

fn raise_current() -> (String, Option<String>) {
    let fifo = set_policy(libc::SCHED_FIFO, FAULT_RT_PRIORITY);
    if fifo.is_ok() {
        return (describe_current(), None);
    }
    let nice = set_nice(FAULT_NICE);
    let note = match (fifo, nice) {
        (Err(fifo), Ok(())) => format!("SCHED_FIFO refused ({fifo}); the thread runs at nice {FAULT_NICE}"),
        (Err(fifo), Err(nice)) => format!(
            "SCHED_FIFO refused ({fifo}) and nice {FAULT_NICE} refused ({nice}); the thread keeps its inherited priority"
        ),
        (Ok(()), _) => String::new(),
    };
    (describe_current(), Some(note))
}

fn lower_current() -> (String, Option<String>) {
    let batch = set_policy(libc::SCHED_BATCH, 0);
    let nice = if current_nice() < BACKGROUND_NICE { set_nice(BACKGROUND_NICE) } else { Ok(()) };
    let note = match (batch, nice) {
        (Ok(()), Ok(())) => None,
        (Err(e), _) => Some(format!("SCHED_BATCH refused for a background thread ({e})")),
        (_, Err(e)) => Some(format!("nice {BACKGROUND_NICE} refused for a background thread ({e})")),
    };
    (describe_current(), note)
}

/// Sets the calling thread's policy (reset on fork, so no child process inherits it).
fn set_policy(policy: i32, rt_priority: i32) -> Result<(), std::io::Error> {
    let param = libc::sched_param { sched_priority: rt_priority };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
    let rc = unsafe { libc::sched_setscheduler(0, policy | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Sets the calling thread's nice value: on Linux the nice value is per thread, and `who` 0
/// (`None`) is the calling thread.
fn set_nice(nice: i32) -> Result<(), std::io::Error> {
    rustix::process::setpriority_process(None, nice).map_err(std::io::Error::from)
}

fn current_nice() -> i32 {
    rustix::process::getpriority_process(None).unwrap_or(0)
}

/// The calling thread's policy and nice value, e.g. `SCHED_FIFO 1` or `SCHED_BATCH nice 5`.
fn describe_current() -> String {
    // SAFETY: pid 0 is the calling thread; the call has no other input.
    let policy = unsafe { libc::sched_getscheduler(0) } & !libc::SCHED_RESET_ON_FORK;
    match policy {
        libc::SCHED_FIFO | libc::SCHED_RR => {
            let mut param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` is a valid out-parameter.
            unsafe { libc::sched_getparam(0, &mut param) };
            let name = if policy == libc::SCHED_FIFO { "SCHED_FIFO" } else { "SCHED_RR" };
            format!("{name} {}", param.sched_priority)
        }
        libc::SCHED_BATCH => format!("SCHED_BATCH nice {}", current_nice()),
        libc::SCHED_IDLE => "SCHED_IDLE".to_string(),
        _ => format!("SCHED_OTHER nice {}", current_nice()),
    }
}

/// One thread's scheduler statistics (`/proc/thread-self/schedstat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedStat {
    /// Time on a CPU.
    pub run_ns: u64,
    /// Time runnable but waiting on a run queue: the scheduling delay.
    pub run_queue_wait_ns: u64,
    /// Times it was given a CPU.
    pub timeslices: u64,
}

impl SchedStat {
    /// The calling thread's statistics; `None` where the kernel has no schedstat.
    pub fn of_current_thread() -> Option<SchedStat> {
        SchedStat::parse(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
    }

    /// Thread `tid` of this process.
    pub fn of_thread(tid: i32) -> Option<SchedStat> {
        SchedStat::parse(&std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?)
    }

    /// Parses the file's text ("run_ns run_queue_wait_ns timeslices").
    pub(crate) fn parse(text: &str) -> Option<SchedStat> {
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let run_ns = fields.next()?.ok()?;
        let run_queue_wait_ns = fields.next()?.ok()?;
        let timeslices = fields.next()?.ok()?;
        Some(SchedStat { run_ns, run_queue_wait_ns, timeslices })
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &SchedStat) -> SchedStat {
        SchedStat {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            run_queue_wait_ns: self.run_queue_wait_ns.saturating_sub(earlier.run_queue_wait_ns),
            timeslices: self.timeslices.saturating_sub(earlier.timeslices),
        }
    }

    /// Mean run-queue wait per time slice (0 with none).
    pub fn run_queue_wait_per_slice_ns(&self) -> u64 {
        self.run_queue_wait_ns.checked_div(self.timeslices).unwrap_or(0)
    }
}

/// One snapshot thread's scheduling over its life.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadScheduling {
    /// The thread's name (`wpsnap-fault`, `wpsnap-scan`, `wpsnap-sink`, `wpsnap-qemu`).
    pub thread: String,
    /// What it ran at, e.g. `SCHED_FIFO 1`.
    pub policy: String,
    /// Why it does not run at what was asked, if it does not.
    pub note: Option<String>,
    /// Its scheduler statistics from start to exit (`None` without schedstat).
    pub schedstat: Option<SchedStat>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_parses_the_three_fields_and_subtracts() {
        let a = SchedStat::parse("100 40 3\n").expect("three fields");
        let b = SchedStat::parse("250 100 7\n").expect("three fields");
        assert_eq!(b.since(&a), SchedStat { run_ns: 150, run_queue_wait_ns: 60, timeslices: 4 });
        assert_eq!(b.since(&a).run_queue_wait_per_slice_ns(), 15);
        assert_eq!(SchedStat::parse("1 2"), None);
    }

    #[test]
    fn inherit_changes_nothing() {
        let before = describe_current();
        let (policy, note) = apply_to_current(ThreadPriority::inherit(), ThreadRole::Fault);
        assert_eq!((policy, note), (before, None));
    }

    #[test]
    fn lowering_a_thread_never_fails_and_says_what_it_runs_at() {
        let lowered = ThreadPriority { background: BackgroundPriority::Lowered, ..ThreadPriority::default() };
        let (policy, note) =
            std::thread::spawn(move || apply_to_current(lowered, ThreadRole::Background)).join().expect("thread");
        assert_eq!(note, None, "lowering one's own priority is always permitted");
        assert!(policy.starts_with("SCHED_BATCH nice "), "{policy}");
    }

    #[test]
    fn the_default_leaves_the_background_threads_as_spawned() {
        let (before, applied) = std::thread::spawn(|| {
            let before = describe_current();
            (before, apply_to_current(ThreadPriority::default(), ThreadRole::Background))
        })
        .join()
        .expect("thread");
        assert_eq!(applied, (before, None));
    }

    #[test]
    fn raising_a_thread_runs_at_fifo_or_says_why_not() {
        let (policy, note) = std::thread::spawn(|| apply_to_current(ThreadPriority::default(), ThreadRole::Fault))
            .join()
            .expect("thread");
        match note {
            None => assert_eq!(policy, format!("SCHED_FIFO {FAULT_RT_PRIORITY}")),
            Some(note) => assert!(note.contains("SCHED_FIFO refused"), "{note}"),
        }
    }
}
