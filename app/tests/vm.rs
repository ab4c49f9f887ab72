//! `wpsnap vm` end to end: a live snapshot of the test guest into a file and into a
//! `--sink-cmd` pipe, both verified, then `--restore` with the guest's self-check passing.
//! Skips with a printed reason where /dev/kvm cannot be opened (fails with
//! `WPSNAP_REQUIRE_KVM=1`).

use std::process::Command;

fn kvm_available() -> bool {
    let reason = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => return true,
        Err(e) => format!("/dev/kvm cannot be opened: {e}"),
    };
    if std::env::var("WPSNAP_REQUIRE_KVM").is_ok_and(|v| v == "1") {
        panic!("WPSNAP_REQUIRE_KVM=1 but {reason}");
    }
    eprintln!("skipping wpsnap vm tests: {reason}");
    false
}

fn wpsnap(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wpsnap")).args(args).output().expect("runs wpsnap");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn vm_snapshots_pipes_and_restores_a_running_guest() {
    if !kvm_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("wpsnap-cli-vm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("vm.wps");
    let report = dir.join("vm.json");
    let common = ["vm", "--memory", "64M", "--warmup-ms", "1000", "--after-ms", "1000", "--report-ms", "200"];

    let mut args = common.to_vec();
    args.extend(["--out", file.to_str().expect("utf-8 path"), "--report", report.to_str().expect("utf-8 path")]);
    let (ok, text) = wpsnap(&args);
    assert!(ok, "wpsnap vm failed:\n{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written")).expect("report is JSON");
    assert_eq!(json["mode"], "snapshot");
    assert!(json["snapshot"]["session"]["engine"]["stats"].is_object(), "no session report");
    assert!(json["stats"].as_array().is_some_and(|s| !s.is_empty()), "no guest stats in the report");
    let (ok, text) = wpsnap(&["verify", file.to_str().expect("utf-8 path")]);
    assert!(ok, "the snapshot does not verify:\n{text}");

    let piped = dir.join("piped.wps");
    let sink = format!("cat > '{}'", piped.display());
    let mut args = common.to_vec();
    args.extend(["--sink-cmd", &sink]);
    let (ok, text) = wpsnap(&args);
    assert!(ok, "wpsnap vm --sink-cmd failed:\n{text}");
    let (ok, text) = wpsnap(&["verify", piped.to_str().expect("utf-8 path")]);
    assert!(ok, "the piped snapshot does not verify:\n{text}");

    let (ok, text) = wpsnap(&["vm", "--restore", file.to_str().expect("utf-8 path"), "--after-ms", "300"]);
    assert!(ok, "wpsnap vm --restore failed:\n{text}");
    assert!(text.contains("self-check vCPU 0: passed"), "no passing self-check:\n{text}");
    let _ = std::fs::remove_dir_all(dir);
}
