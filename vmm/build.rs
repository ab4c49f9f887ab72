//! Builds the test guest (`guest/`) with the host's gcc and binutils, so `cargo build` and the
//! tests need no extra step. The ELF's path reaches the crate as `WPSNAP_GUEST_ELF`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let guest = manifest.join("../guest");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("wpsnap-guest.elf");
    for file in ["build.sh", "boot.S", "guest.c", "layout.h", "link.ld"] {
        println!("cargo:rerun-if-changed={}", guest.join(file).display());
    }
    let status = Command::new("sh").arg(guest.join("build.sh")).arg(&out).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("guest/build.sh failed ({s}); it needs gcc and binutils (scripts/setup.sh installs them)"),
        Err(e) => panic!("could not run sh guest/build.sh: {e}"),
    }
    println!("cargo:rustc-env=WPSNAP_GUEST_ELF={}", out.display());
}
