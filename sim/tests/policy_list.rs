//! `--policies` keeps each policy's own `KEY=VALUE` knobs with it, also when a policy with
//! knobs follows another (`none,limit-scan-rate:slow-fault=2ms`).

use std::process::Command;

#[test]
fn a_policy_with_knobs_after_another_policy_is_its_own_policy() {
    let out = Command::new(env!("CARGO_BIN_EXE_wpsnap-sim"))
        .args(["compare", "--region-mib", "4", "--disk", "tmpfs", "--no-baseline", "--policies"])
        .arg("none,limit-scan-rate:slow-fault=2ms,throttle-pages=20,bandwidth:64M,slice=10ms")
        .output()
        .expect("run wpsnap-sim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in ["none", "limit-scan-rate", "bandwidth"] {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
}
