//! A thread's own run-queue delay (time runnable but waiting for a CPU), from
//! `/proc/thread-self/schedstat` (second field, nanoseconds; needs `CONFIG_SCHED_INFO`).
//! Classified writers subtract it from a fault candidate's wait, so a writer that was woken
//! from its fault but not given a CPU (a CPU hog) is told from a slow fault service.

use crate::snapshot::SchedStat;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The schedstat line ("exec_ns run_delay_ns timeslices\n") fits with room to spare.
const SCHEDSTAT_BYTES_MAX: usize = 96;
const SCHEDSTAT_PATH: &str = "/proc/thread-self/schedstat";

/// The calling thread's schedstat, opened once (the file stays bound to that thread).
#[derive(Debug)]
pub struct RunDelayReader {
    file: File,
}

impl RunDelayReader {
    /// `None` where the kernel has no schedstat.
    pub fn open_for_this_thread() -> Option<RunDelayReader> {
        File::open(SCHEDSTAT_PATH).ok().map(|file| RunDelayReader { file })
    }

    /// Nanoseconds this thread has waited on a run queue since it started; `None` if the
    /// file cannot be read or parsed.
    pub fn run_delay_ns(&self) -> Option<u64> {
        let mut buf = [0u8; SCHEDSTAT_BYTES_MAX];
        let len = self.file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..len)?).ok()?;
        SchedStat::parse(text).map(|stat| stat.run_queue_wait_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::RunDelayReader;

    /// Whether this thread waits on a run queue depends on the machine's load, so this checks
    /// only that the count is read and parsed and never goes back.
    #[test]
    fn this_threads_run_delay_is_read_and_never_decreases() {
        let Some(reader) = RunDelayReader::open_for_this_thread() else {
            eprintln!("SKIPPED: no /proc/thread-self/schedstat");
            return;
        };
        let first = reader.run_delay_ns().expect("first read");
        std::thread::yield_now();
        let second = reader.run_delay_ns().expect("second read");
        assert!(second >= first, "run delay went from {first} to {second} ns");
    }
}
