//! Where a snapshot thread's wall time went, from the kernel's scheduler statistics
//! (`/proc/thread-self/schedstat`): on a CPU, runnable but waiting for one, or blocked. On a
//! machine with fewer cores than busy threads this tells a thread that is slow from one that
//! is not running.

use super::thread_priority::SchedStat;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The decoupled model's scan thread, as named in [`ThreadTime::name`].
pub const SCAN_THREAD_NAME: &str = "wpsnap-scan";

/// One thread's time from its start to the end of its work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadTime {
    /// The thread's name (`wpsnap-scan`, ...).
    pub name: String,
    /// Wall time from the thread's start to the end of its work (for the scan thread: its
    /// last capture handed to the sink).
    pub wall_ns: u64,
    /// Time on a CPU.
    pub cpu_ns: u64,
    /// Time runnable but waiting on a run queue (another thread had the CPU).
    pub runqueue_wait_ns: u64,
    /// Times the thread was put on a CPU.
    pub timeslices: u64,
}

impl ThreadTime {
    /// Wall time neither running nor runnable: sleeping or blocked (on a lock, a futex, poll).
    pub fn blocked_ns(&self) -> u64 {
        self.wall_ns.saturating_sub(self.cpu_ns).saturating_sub(self.runqueue_wait_ns)
    }

    /// The scheduler statistics of the same span.
    pub fn schedstat(&self) -> SchedStat {
        SchedStat { run_ns: self.cpu_ns, run_queue_wait_ns: self.runqueue_wait_ns, timeslices: self.timeslices }
    }
}

/// Started on the thread it measures; [`ThreadClock::stop`] on the same thread.
pub(super) struct ThreadClock {
    started: Instant,
    at_start: Option<SchedStat>,
}

impl ThreadClock {
    pub fn start() -> ThreadClock {
        ThreadClock { started: Instant::now(), at_start: SchedStat::of_current_thread() }
    }

    /// The time since [`start`](ThreadClock::start); `None` if schedstat cannot be read.
    pub fn stop(&self, name: &str) -> Option<ThreadTime> {
        let used = SchedStat::of_current_thread()?.since(&self.at_start?);
        Some(ThreadTime {
            name: name.to_string(),
            wall_ns: self.started.elapsed().as_nanos().min(u64::MAX as u128) as u64,
            cpu_ns: used.run_ns,
            runqueue_wait_ns: used.run_queue_wait_ns,
            timeslices: used.timeslices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spinning_thread_is_mostly_on_cpu_and_a_sleeping_one_mostly_blocked() {
        let Some(_) = SchedStat::of_current_thread() else {
            // Kernels without CONFIG_SCHEDSTATS have no file: nothing to measure.
            return;
        };
        let clock = ThreadClock::start();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = clock.stop("sleeper").expect("schedstat was readable at start");
        assert!(slept.blocked_ns() >= 20_000_000, "{slept:?}");
        assert!(slept.cpu_ns + slept.runqueue_wait_ns + slept.blocked_ns() <= slept.wall_ns, "{slept:?}");
        let clock = ThreadClock::start();
        let until = Instant::now() + std::time::Duration::from_millis(30);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let spun = clock.stop("spinner").expect("schedstat was readable at start");
        // Spinning never blocks: the wall time is on a CPU or waiting for one.
        assert!(spun.cpu_ns + spun.runqueue_wait_ns >= spun.wall_ns / 2, "{spun:?}");
        assert!(spun.cpu_ns > 0 && spun.timeslices >= 1, "{spun:?}");
    }
}
