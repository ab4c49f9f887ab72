//! Issue 11, findings 5 and 7: `receive` checks as it reads and before it listens; usage
//! errors exit 2; knobs that do not apply are refused; `--json` errors are JSON; `verify -`
//! reads standard input; summaries carry no Rust Debug text, one "fault wait" figure and an
//! ISO-8601 creation date; each cause is printed once.

mod common;

use common::{first_line_within, scratch, wait_at_most, wait_until, wpsnap};
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;
use wpsnap_linux::uffd::uffd_or_skip;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `receive` and returns it with the address it listens on.
fn start_receive(out: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    // --json: the error comes on standard output (standard error's first line is read here).
    let mut child = wpsnap()
        .args(["receive", "--json", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn receive");
    let line = first_line_within(child.stderr.take().expect("stderr"), Duration::from_secs(30));
    let Some(line) = line.filter(|l| l.contains("listening on")) else {
        let _ = child.kill();
        panic!("receive never said where it listens");
    };
    let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    (child, addr)
}

#[test]
fn receive_drops_a_bad_stream_at_its_first_bytes() {
    let dir = scratch("bad-stream");
    let out = dir.join("r.wps");
    let (mut child, addr) = start_receive(&out, &[]);
    let mut sender = std::net::TcpStream::connect(&addr).expect("connect");
    sender.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // Endless junk: the receiver must stop taking it long before 64 MiB.
    let junk = vec![0x5a_u8; 64 * 1024];
    let mut sent: u64 = 0;
    while sent < 64 << 20 && sender.write_all(&junk).is_ok() {
        sent += junk.len() as u64;
    }
    let (status, _) = wait_at_most(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    let _ = child.stdout.take().map(|mut e| e.read_to_string(&mut stderr));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(stderr.contains("bad magic"), "{stderr}");
    let kept = std::fs::metadata(dir.join("r.wps.partial")).map(|m| m.len()).unwrap_or(0);
    assert!(kept <= 1 << 20, "{kept} bytes of junk were stored");
    assert!(sent < 64 << 20, "the receiver kept reading junk");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn receive_gives_up_on_a_silent_sender_with_a_plain_message() {
    let dir = scratch("idle");
    let out = dir.join("r.wps");
    let (mut child, addr) = start_receive(&out, &["--idle-timeout-ms", "300"]);
    let sender = std::net::TcpStream::connect(&addr).expect("connect");
    let (status, _) = wait_at_most(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    let _ = child.stdout.take().map(|mut e| e.read_to_string(&mut stderr));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(stderr.contains("sent nothing for 300 ms"), "{stderr}");
    assert!(!stderr.contains("os error 11"), "{stderr}");
    drop(sender);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn receive_checks_its_output_before_listening() {
    let mut child = wpsnap()
        .args(["receive", "--listen", "127.0.0.1:0", "--out", "/nonexistent-wpsnap-folder/r.wps"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (status, _) = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "receive waited for a sender before checking --out");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run", "--size", "4097"],
        vec!["run", "--policy", "none", "--scan-bandwidth", "1M"],
        vec!["run", "--policy", "bandwidth", "--target-p99-us", "10"],
        vec!["run", "--backend", "fork", "--model", "qemu"],
        vec!["run", "--check", "--out", "-", "--size", "1M"],
    ] {
        let out = wpsnap().args(&args).stdout(Stdio::null()).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn json_errors_are_json_and_causes_are_printed_once() {
    for args in [vec!["verify", "--json", "/nonexistent.wps"], vec!["inspect", "--json", "/nonexistent.wps"]] {
        let out = wpsnap().args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(1));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on standard output");
        assert!(json["error"].as_str().is_some_and(|e| e.contains("/nonexistent.wps")), "{json}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.matches("os error 2").count(), 1, "the cause is repeated: {stderr}");
    }
}

#[test]
fn summaries_name_things_in_words_and_dates_in_iso_8601() {
    if !uffd_or_skip("summaries_name_things_in_words_and_dates_in_iso_8601") {
        return;
    }
    let dir = scratch("words");
    let snap = dir.join("s.wps");
    let out = wpsnap()
        .args(["run", "--size", "2M", "--writers", "1", "--warmup-ms", "0", "--pattern", "zipf:0.99"])
        .arg("--out")
        .arg(&snap)
        .output()
        .expect("run");
    let summary = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for debug in ["Decoupled", "Zipf {", "KernelWpUnpopulated", "TouchByReading", " { "] {
        assert!(!summary.contains(debug), "Debug text {debug:?} in the summary:\n{summary}");
    }
    let figures = summary.lines().filter(|l| l.contains("fault wait") && l.contains("p50")).count();
    assert_eq!(figures, 1, "one fault-wait figure, got {figures}:\n{summary}");
    let fork = wpsnap()
        .args(["run", "--backend", "fork", "--size", "2M", "--writers", "1", "--warmup-ms", "0", "--json"])
        .arg("--out")
        .arg(dir.join("f.wps"))
        .output()
        .expect("run");
    let report: serde_json::Value = serde_json::from_slice(&fork.stdout).expect("json");
    assert_eq!(report["pattern"], "zipf:0.99");
    let fork_text = wpsnap()
        .args(["run", "--backend", "fork", "--size", "2M", "--writers", "1", "--warmup-ms", "0"])
        .arg("--out")
        .arg(dir.join("f.wps"))
        .output()
        .expect("run");
    assert!(!text(&fork_text.stdout).contains("ExtraMemory"), "{}", text(&fork_text.stdout));

    let inspect = text(&wpsnap().arg("inspect").arg(&snap).output().expect("inspect").stdout);
    let created = inspect.lines().find(|l| l.starts_with("created")).unwrap_or_default().to_string();
    assert!(created.contains('T') && created.contains("Z UTC") && !created.contains(" ns"), "{created}");

    // verify - reads standard input; restore prints text unless --json.
    let mut verify =
        wpsnap().args(["verify", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn");
    let bytes = std::fs::read(&snap).expect("read");
    verify.stdin.take().expect("stdin").write_all(&bytes).expect("feed");
    let verified = verify.wait_with_output().expect("verify");
    assert!(verified.status.success() && text(&verified.stdout).contains("page count"), "{}", text(&verified.stderr));
    let restore = wpsnap().arg("restore").arg(&snap).arg("--raw").arg(dir.join("s.raw")).output().expect("restore");
    assert!(text(&restore.stdout).starts_with("restored to"), "{}", text(&restore.stdout));
    assert!(wait_until(Duration::from_secs(1), || dir.join("s.raw").exists()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_mapping_reads_as_english() {
    // An address-space limit below the region makes the mapping fail.
    let script =
        format!("ulimit -v 400000; exec {} run --size 512M --writers 1 --out /tmp/x.wps", env!("CARGO_BIN_EXE_wpsnap"));
    let out = std::process::Command::new("sh").args(["-c", &script]).output().expect("sh");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("a anonymous"), "{stderr}");
    assert!(stderr.contains("anonymous region"), "{stderr}");
}
