//! `wpsnap run --out 'cmd:COMMAND'`: the snapshot is piped into a shell command that wpsnap
//! starts and waits for, with both backends; a failing command fails the run and is named.

use wpsnap_linux::uffd::uffd_or_skip;

use std::process::Command;

fn wpsnap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wpsnap"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wpsnap-sink-cmd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run_into_command(backend: &str, dir: &std::path::Path) {
    let snap = dir.join(format!("{backend}.wps"));
    let out = wpsnap()
        .args(["run", "--size", "8M", "--writers", "2", "--warmup-ms", "20", "--json", "--backend", backend])
        .arg("--out")
        .arg(format!("cmd:cat > '{}'", snap.display()))
        .output()
        .expect("run wpsnap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{backend}: run failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(json["output"]["kind"], "cmd", "{stdout}");
    assert_eq!(json["output"]["confirmed"], true, "{stdout}");
    let size = std::fs::metadata(&snap).map(|m| m.len()).unwrap_or(0);
    assert_eq!(json["output"]["bytes"].as_u64(), Some(size), "{stdout}");
    let verify = wpsnap().arg("verify").arg(&snap).output().expect("verify");
    assert!(verify.status.success(), "{backend}: {}", String::from_utf8_lossy(&verify.stderr));
}

#[test]
fn run_pipes_the_snapshot_into_a_command_with_both_backends() {
    if !uffd_or_skip("run_pipes_the_snapshot_into_a_command_with_both_backends") {
        return;
    }
    let dir = temp_dir("ok");
    run_into_command("uffd", &dir);
    run_into_command("fork", &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_command_fails_the_run_and_is_named() {
    if !uffd_or_skip("a_failing_command_fails_the_run_and_is_named") {
        return;
    }
    let out = wpsnap()
        .args(["run", "--size", "4M", "--writers", "1", "--warmup-ms", "0"])
        .args(["--out", "cmd:cat > /dev/null; exit 5"])
        .output()
        .expect("run wpsnap");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failing command must fail the run");
    assert!(stderr.contains("cat > /dev/null; exit 5") && stderr.contains('5'), "{stderr}");
}
