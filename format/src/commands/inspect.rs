//! `inspect`: the header, the counts and the report stored with a snapshot.

use super::open_snapshot;
use super::verify::{StreamSummary, summary_of};
use crate::error::FormatError;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Result of [`inspect_file`]. The JSON texts are parsed when they are valid JSON and kept as
/// strings otherwise (the format stores them verbatim).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectReport {
    /// The snapshot file.
    pub path: PathBuf,
    /// Start of the snapshot, ns since the Unix epoch.
    pub created_unix_ns: u64,
    /// Structure and counts (the whole file was read and verified).
    pub summary: StreamSummary,
    /// Pages stored with data.
    pub data_pages: u64,
    /// The engine configuration stored in the header.
    pub config: serde_json::Value,
    /// The report stored in the trailer.
    pub report: serde_json::Value,
}

fn parse_or_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// Reads (and thereby verifies) the whole snapshot and describes it.
pub fn inspect_file(path: &Path) -> Result<InspectReport, FormatError> {
    let mut reader = open_snapshot(path)?;
    while reader.next_page()?.is_some() {}
    let trailer = reader.trailer().ok_or(FormatError::Poisoned { what: "reader" })?;
    let summary = summary_of(&reader)?;
    let h = reader.header();
    Ok(InspectReport {
        path: path.to_path_buf(),
        created_unix_ns: h.created_unix_ns,
        summary,
        data_pages: trailer.page_records - trailer.zero_pages,
        config: parse_or_text(&h.config_json),
        report: parse_or_text(&trailer.report_json),
    })
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_else(|e| e.to_string());
        writeln!(f, "{}", self.path.display())?;
        writeln!(f, "created          {} ns since the Unix epoch", self.created_unix_ns)?;
        writeln!(f, "{}", self.summary)?;
        writeln!(f, "data pages       {}", self.data_pages)?;
        writeln!(f, "engine config:\n{}", pretty(&self.config))?;
        write!(f, "stored report:\n{}", pretty(&self.report))
    }
}
