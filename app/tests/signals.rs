//! Issue 11, finding 2: every long-running command stops within a second of SIGINT or
//! SIGTERM, exits 130 / 143, and leaves nothing under a final name. Each signal is sent only
//! after a readiness sign (a file appearing, a line, threads started, a FIFO opened), and the
//! work is made long by construction (a slow scan, a FIFO nobody reads, a FIFO input nobody
//! writes), so the verdict does not depend on timing.

mod common;

use common::{
    fifo, fifo_reader_with_data, first_line_within, open_fifo_writer, scratch, send, thread_count, wait_at_most,
    wait_until, wpsnap,
};
use rustix::process::Signal;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use wpsnap_linux::uffd::uffd_or_skip;

/// Generous bound on "within 1 s": two CPU hogs must not break it.
const EXIT_WITHIN: Duration = Duration::from_secs(5);
/// How long a readiness sign may take to appear.
const READY_WITHIN: Duration = Duration::from_secs(60);
const SIGNALS: [(Signal, i32); 2] = [(Signal::INT, 130), (Signal::TERM, 143)];

fn spawn(args: &[&str], out: Option<&Path>) -> Child {
    let mut command = wpsnap();
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(out) = out {
        command.arg("--out").arg(out);
    }
    command.spawn().expect("spawn wpsnap")
}

/// Sends the signal, then checks the exit status and the time it took.
fn interrupt_and_check(mut child: Child, signal: Signal, code: i32, what: &str) -> String {
    send(&child, signal);
    let (status, took) = wait_at_most(&mut child, EXIT_WITHIN);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let status = status.unwrap_or_else(|| panic!("{what}: still running {took:?} after {signal:?}; stderr: {stderr}"));
    assert_eq!(status.code(), Some(code), "{what}: exit status after {signal:?}; stderr: {stderr}");
    eprintln!("{what}: {signal:?} -> exit {code} in {took:?}");
    stderr
}

#[test]
fn run_with_the_uffd_backend_stops_on_sigint_and_sigterm() {
    if !uffd_or_skip("run_with_the_uffd_backend_stops_on_sigint_and_sigterm") {
        return;
    }
    let dir = scratch("sig-uffd");
    for (signal, code) in SIGNALS {
        let snap = dir.join(format!("s{code}.wps"));
        let partial = dir.join(format!("s{code}.wps.partial"));
        // 32 MiB at 4 MiB/s: 8 s of snapshot, by the rate limiter.
        let args = ["run", "--size", "32M", "--writers", "2", "--warmup-ms", "0", "--policy", "bandwidth"];
        let child = spawn(&[&args[..], &["--scan-bandwidth", "4M"]].concat(), Some(&snap));
        assert!(wait_until(READY_WITHIN, || partial.exists()), "the output never appeared");
        let stderr = interrupt_and_check(child, signal, code, "run --backend uffd");
        assert!(!snap.exists(), "a file under the final name after {signal:?}");
        assert!(stderr.contains(".partial was left behind"), "the .partial is not named: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_with_the_fork_backend_stops_on_sigint_and_sigterm() {
    let dir = scratch("sig-fork");
    for (signal, code) in SIGNALS {
        // The child writes into a FIFO nobody reads: it blocks once the pipe is full, so the
        // snapshot cannot finish before the signal.
        let pipe = fifo(&dir, &format!("out{code}.fifo"));
        let child =
            spawn(&["run", "--backend", "fork", "--size", "8M", "--writers", "1", "--warmup-ms", "0"], Some(&pipe));
        // Opening the read end lets the run open its write end; the first bytes mean the
        // child is writing.
        let reader = fifo_reader_with_data(&pipe, READY_WITHIN);
        assert!(reader.is_some(), "the fork child never wrote to the FIFO");
        interrupt_and_check(child, signal, code, "run --backend fork");
        assert!(std::fs::symlink_metadata(&pipe).expect("fifo").file_type().is_fifo());
        drop(reader);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_warm_up_stops_on_sigint() {
    if !uffd_or_skip("the_warm_up_stops_on_sigint") {
        return;
    }
    let dir = scratch("sig-warm");
    let snap = dir.join("s.wps");
    let child = spawn(&["run", "--size", "4M", "--writers", "2", "--warmup-ms", "600000"], Some(&snap));
    // main + the signal watcher + 2 writers: the writers run, so the warm-up has begun.
    let pid = child.id();
    assert!(wait_until(READY_WITHIN, || thread_count(pid) >= 4), "writers never started");
    interrupt_and_check(child, Signal::INT, 130, "run warm-up");
    assert!(!snap.exists() && !dir.join("s.wps.partial").exists(), "output opened during the warm-up");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn receive_stops_while_waiting_and_while_reading() {
    let dir = scratch("sig-receive");
    for (signal, code) in SIGNALS {
        let out = dir.join(format!("r{code}.wps"));
        let mut child = spawn(&["receive", "--listen", "127.0.0.1:0"], Some(&out));
        let line = first_line_within(child.stderr.take().expect("stderr"), READY_WITHIN);
        let Some(line) = line.filter(|l| l.contains("listening on")) else {
            let _ = child.kill();
            panic!("receive never said where it listens");
        };
        let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        if code == 143 {
            // While reading: a sender that connected and sent the start of a stream.
            let mut sender = std::net::TcpStream::connect(&addr).expect("connect");
            sender.write_all(b"WPSN").expect("send");
            assert!(wait_until(READY_WITHIN, || dir.join(format!("r{code}.wps.partial")).exists()));
            send(&child, signal);
            let (status, took) = wait_at_most(&mut child, EXIT_WITHIN);
            assert_eq!(status.and_then(|s| s.code()), Some(code), "receive while reading: {took:?}");
        } else {
            send(&child, signal);
            let (status, took) = wait_at_most(&mut child, EXIT_WITHIN);
            assert_eq!(status.and_then(|s| s.code()), Some(code), "receive while waiting: {took:?}");
        }
        assert!(!out.exists(), "a file under the final name");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `verify`, `inspect` and `restore` read their input from a FIFO that the test opens for
/// writing and never writes: once our open returns, the command is blocked reading it.
#[test]
fn verify_inspect_and_restore_stop_on_sigint_and_sigterm() {
    let dir = scratch("sig-files");
    for (command, (signal, code)) in ["verify", "inspect", "restore"].into_iter().zip(SIGNALS.into_iter().cycle()) {
        let input = fifo(&dir, &format!("{command}.fifo"));
        let raw = dir.join(format!("{command}.raw"));
        let mut args = vec![command.to_string(), input.display().to_string()];
        if command == "restore" {
            args.extend(["--raw".to_string(), raw.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = spawn(&args, None);
        let Some(writer) = open_fifo_writer(&input, READY_WITHIN) else {
            let _ = child.kill();
            panic!("{command} never opened its input");
        };
        interrupt_and_check(child, signal, code, command);
        assert!(!raw.exists(), "{command}: a file under the final name");
        drop(writer);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_and_bench_stop_on_sigint() {
    if !uffd_or_skip("demo_and_bench_stop_on_sigint") {
        return;
    }
    let dir = scratch("sig-demo");
    let mut child = spawn(&["demo", "--dir", &dir.display().to_string()], None);
    let line = first_line_within(child.stdout.take().expect("stdout"), READY_WITHIN);
    assert!(line.is_some(), "the demo printed nothing");
    interrupt_and_check(child, Signal::INT, 130, "demo");
    assert!(!dir.join("demo.wps").exists(), "demo left its snapshot under the final name");

    let json = dir.join("bench.json");
    let mut child = spawn(&["bench", "--json", &json.display().to_string()], None);
    let line = first_line_within(child.stderr.take().expect("stderr"), READY_WITHIN).unwrap_or_default();
    assert!(line.starts_with("bench:"), "{line}");
    interrupt_and_check(child, Signal::INT, 130, "bench");
    assert!(!json.exists(), "bench wrote its report after an interrupt");
    let _ = std::fs::remove_dir_all(&dir);
}
