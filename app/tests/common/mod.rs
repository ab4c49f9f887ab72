//! Helpers shared by the app's integration tests: the built binary, scratch folders,
//! device nodes made with mknod in them, waiting on a condition, signals.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The `wpsnap` binary under test.
pub fn wpsnap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wpsnap"))
}

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-app-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Whether we are root (mknod, setpriv, cgroups need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A character device node like /dev/null (1, 3), made in `dir`; `None` (with the reason
/// printed) where mknod is not permitted.
pub fn null_device(dir: &Path, test: &str) -> Option<PathBuf> {
    let node = dir.join("null-device");
    let dev = rustix::fs::makedev(1, 3);
    match rustix::fs::mknodat(rustix::fs::CWD, &node, rustix::fs::FileType::CharacterDevice, 0o666.into(), dev) {
        Ok(()) => Some(node),
        Err(e) => {
            eprintln!("SKIPPED {test}: mknod of a character device not permitted here: {e}");
            None
        }
    }
}

/// A FIFO in `dir`.
pub fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
    path
}

/// Polls `ready` every 5 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` to a child.
pub fn send(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("child pid");
    rustix::process::kill_process(pid, signal).expect("kill");
}

/// Waits for the child at most `timeout`; kills it after that. Returns the status (if it
/// exited in time) and how long it took.
pub fn wait_at_most(child: &mut Child, timeout: Duration) -> (Option<ExitStatus>, Duration) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return (Some(status), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, started.elapsed())
}

/// Threads of a running process (from /proc).
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}
