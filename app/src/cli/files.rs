//! `verify`, `inspect`, `restore` and `receive`: thin wrappers over `wpsnap-format` and the
//! TCP receiver. Each prints text, or JSON with `--json`.

use super::paths::{checked_target, with_partial_note};
use super::signals::{cancel_flag, interrupted, set_exit_note};
use anyhow::{Context, bail};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};
use wpsnap_linux::output::{ReceiveError, ReceiveLimits, Receiver, TargetKind};

fn print_report<T: Serialize + std::fmt::Display>(report: &T, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// `verify FILE` (`-`: standard input, structure and checksums only).
pub fn verify(file: &Path, against: Option<&Path>, json: bool) -> anyhow::Result<()> {
    if file == Path::new("-") {
        if against.is_some() {
            bail!("--against needs a snapshot file, not standard input");
        }
        let stdin = std::io::BufReader::new(std::io::stdin().lock());
        let summary = wpsnap_format::verify_stream(stdin).context("verifying standard input")?;
        return print_report(&summary, json);
    }
    let report = wpsnap_format::verify_file(file, against).with_context(|| format!("verifying {}", file.display()))?;
    print_report(&report, json)
}

/// `inspect FILE`: the header, counts and stored report; the creation time as an ISO-8601
/// UTC date.
pub fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let report = wpsnap_format::inspect_file(file).with_context(|| format!("inspecting {}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_else(|e| e.to_string());
    let created = UNIX_EPOCH + Duration::from_nanos(report.created_unix_ns);
    println!("{}", report.path.display());
    println!("created          {} UTC", humantime::format_rfc3339_millis(created));
    println!("{}", report.summary);
    println!("data pages       {}", report.data_pages);
    println!("engine config:\n{}", pretty(&report.config));
    println!("stored report:\n{}", pretty(&report.report));
    Ok(())
}

/// `restore FILE --raw RAW`: RAW must be (or become) a regular file other than FILE.
pub fn restore(file: &Path, raw: &Path, json: bool) -> anyhow::Result<()> {
    let target = checked_target("--raw", raw)?;
    if target.kind != TargetKind::ReplaceFile {
        bail!(
            "--raw {}: is a {}; a raw image is written out of order and needs a regular file",
            raw.display(),
            target.kind.name()
        );
    }
    target.ensure_not_input(&[file]).context("--raw")?;
    if let Some(partial) = target.partial_path() {
        set_exit_note(format!("{} may be left behind (incomplete; delete it)", partial.display()));
    }
    // A symbolic link is followed: the file it points to is replaced, the link stays.
    let report = wpsnap_format::restore_raw(file, &target.path)
        .with_context(|| format!("restoring {} to {}", file.display(), raw.display()));
    let report = with_partial_note(report, Some(&target))?;
    print_report(&report, json)
}

/// `receive --listen ADDR --out PATH`: PATH is checked before listening; Ctrl-C stops the
/// wait at once.
pub fn receive(listen: &str, out: &Path, idle_timeout_ms: u64, json: bool) -> anyhow::Result<()> {
    let target = checked_target("--out", out)?;
    let receiver = Receiver::bind(listen)?;
    let limits = ReceiveLimits { idle_timeout_ms, ..ReceiveLimits::default() };
    // On standard error, so scripts (and tests) know when a sender may connect.
    eprintln!("receive: listening on {}", receiver.local_addr()?);
    let result = receiver.receive_until(out, &limits, cancel_flag());
    let report = match result {
        Err(ReceiveError::Cancelled) => {
            let signal = interrupted().unwrap_or("a signal");
            Err(anyhow::anyhow!("interrupted by {signal}; nothing was committed"))
        }
        other => other.with_context(|| format!("receiving on {listen}")),
    };
    let report = with_partial_note(report, Some(&target))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "received {} B from {} into {} in {} ms; verified",
            report.bytes,
            report.peer,
            report.path.display(),
            report.duration_ms
        );
    }
    Ok(())
}
