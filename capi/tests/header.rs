//! The committed C header is what cbindgen makes of the current source. With
//! `WPSNAP_BLESS=1` the test rewrites it instead of comparing.

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = dir.join("include/wpsnap.h");
    if std::env::var("WPSNAP_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(&path).expect("include/wpsnap.h exists (WPSNAP_BLESS=1 creates it)");
    assert!(
        committed == generated,
        "include/wpsnap.h is out of date with src/lib.rs: run WPSNAP_BLESS=1 cargo test -p wpsnap-capi --test header"
    );
}
