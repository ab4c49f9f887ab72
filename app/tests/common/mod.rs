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

/// The first line `source` yields within `timeout` (read on a helper thread, so a process
/// that never prints cannot hang the test); `None` on timeout or end of stream. The thread
/// then reads the rest to the end, so the process never writes into a closed pipe.
pub fn first_line_within<R: std::io::Read + Send + 'static>(source: R, timeout: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(source);
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut reader, &mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(timeout).ok().filter(|l| !l.is_empty())
}

/// Opens a FIFO's write end once a reader has it open, retrying without blocking until
/// `timeout` (a reader that never comes fails the test instead of hanging it).
pub fn open_fifo_writer(path: &Path, timeout: Duration) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = None;
    wait_until(timeout, || {
        file = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path).ok();
        file.is_some()
    });
    file
}

/// Opens a FIFO's read end without blocking and waits until a writer has put a byte in it.
pub fn fifo_reader_with_data(path: &Path, timeout: Duration) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).ok()?;
    let ready = wait_until(timeout, || {
        let mut fds = [rustix::event::PollFd::new(&file, rustix::event::PollFlags::IN)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
            && fds[0].revents().contains(rustix::event::PollFlags::IN)
    });
    ready.then_some(file)
}
