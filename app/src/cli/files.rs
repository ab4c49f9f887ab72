//! `verify`, `inspect`, `restore` and `receive`: thin wrappers over `wpsnap-format` and the
//! TCP receiver.

use anyhow::Context;
use std::path::Path;

pub fn verify(file: &Path, against: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let report = wpsnap_format::verify_file(file, against).with_context(|| format!("verifying {}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

pub fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let report = wpsnap_format::inspect_file(file).with_context(|| format!("inspecting {}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

pub fn restore(file: &Path, raw: &Path) -> anyhow::Result<()> {
    let report = wpsnap_format::restore_raw(file, raw)
        .with_context(|| format!("restoring {} to {}", file.display(), raw.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub fn receive(listen: &str, out: &Path) -> anyhow::Result<()> {
    let report = wpsnap_linux::output::receive(listen, out).with_context(|| format!("receiving on {listen}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
