//! Output paths, checked before any work starts, and the note about a `.partial` left
//! behind when a command fails.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use wpsnap_linux::output::{FileTarget, TargetKind};

/// Checks an output path (what it names, its folder) before any work; `what` names the option.
pub fn checked_target(what: &str, path: &Path) -> anyhow::Result<FileTarget> {
    FileTarget::resolve(path).with_context(|| format!("{what} {}", path.display()))
}

/// Refuses two outputs that name the same file (they would overwrite each other).
pub fn ensure_distinct(outputs: &[(&str, &FileTarget)]) -> anyhow::Result<()> {
    for (i, (what_a, a)) in outputs.iter().enumerate() {
        for (what_b, b) in &outputs[i + 1..] {
            let same_file = a.kind == TargetKind::ReplaceFile && b.kind == TargetKind::ReplaceFile;
            if same_file && absolute(&a.path) == absolute(&b.path) {
                bail!("{what_a} and {what_b} name the same file {}", a.given.display());
            }
        }
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// "NAME.partial was left behind (12.0 MiB); ..." when a failed command left one.
pub fn partial_note(target: &FileTarget) -> Option<String> {
    let partial = target.partial_path()?;
    let bytes = std::fs::metadata(&partial).ok()?.len();
    Some(format!(
        "{} was left behind ({:.1} MiB); it is incomplete: delete it to free the space",
        partial.display(),
        bytes as f64 / (1u64 << 20) as f64
    ))
}

/// Adds [`partial_note`] to an error, if a `.partial` is there.
pub fn with_partial_note<T>(result: anyhow::Result<T>, target: Option<&FileTarget>) -> anyhow::Result<T> {
    result.map_err(|e| match target.and_then(partial_note) {
        Some(note) => anyhow::anyhow!("{}; {note}", super::error_text(&e)),
        None => e,
    })
}
