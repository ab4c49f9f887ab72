//! `verify`: structure and checksums, optionally page-by-page equality with a raw image.

use super::open_snapshot;
use crate::error::FormatError;
use crate::header::RegionEntry;
use crate::layout::DIFFERING_PAGES_LISTED_MAX;
use crate::reader::SnapshotReader;
use crate::zero::is_all_zero;
use serde::Serialize;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a full read of a valid snapshot stream found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    /// Format version of the stream.
    pub format_version: u32,
    /// The region table (one entry for version-1 streams).
    pub regions: Vec<RegionEntry>,
    /// Pages in all regions.
    pub page_count: u64,
    /// Bytes in all regions.
    pub region_len: u64,
    /// Page records read (equals `page_count`).
    pub page_records: u64,
    /// Of those, zero pages.
    pub zero_pages: u64,
    /// Total bytes of the stream.
    pub stream_bytes: u64,
    /// The records checksum from the trailer (checked).
    pub records_crc32c: u32,
}

/// Result of [`verify_file`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The snapshot file.
    pub path: PathBuf,
    /// What was read.
    pub summary: StreamSummary,
    /// The raw image every page was compared with, if any (all pages matched).
    pub compared_with_raw: Option<PathBuf>,
}

/// Reads a whole snapshot stream, checking structure and every checksum.
pub fn verify_stream<R: Read>(r: R) -> Result<StreamSummary, FormatError> {
    let mut reader = SnapshotReader::new(r)?;
    while reader.next_page()?.is_some() {}
    summary_of(&reader)
}

pub(super) fn summary_of<R: Read>(reader: &SnapshotReader<R>) -> Result<StreamSummary, FormatError> {
    let trailer = reader.trailer().ok_or(FormatError::Poisoned { what: "reader" })?;
    let h = reader.header();
    Ok(StreamSummary {
        format_version: reader.format_version(),
        regions: h.regions.clone(),
        page_count: h.page_count(),
        region_len: h.region_len(),
        page_records: trailer.page_records,
        zero_pages: trailer.zero_pages,
        stream_bytes: reader.offset(),
        records_crc32c: trailer.records_crc32c,
    })
}

/// Verifies the snapshot at `path`; with `against_raw`, also checks that every page equals the
/// same page of that raw image ([`FormatError::RawMismatch`] lists the first differing pages).
pub fn verify_file(path: &Path, against_raw: Option<&Path>) -> Result<VerifyReport, FormatError> {
    let mut reader = open_snapshot(path)?;
    let Some(raw_path) = against_raw else {
        while reader.next_page()?.is_some() {}
        return Ok(VerifyReport { path: path.to_path_buf(), summary: summary_of(&reader)?, compared_with_raw: None });
    };
    let raw = File::open(raw_path).map_err(|e| FormatError::io(format!("{}: open", raw_path.display()), e))?;
    let raw_len = raw.metadata().map_err(|e| FormatError::io(format!("{}: stat", raw_path.display()), e))?.len();
    let region_len = reader.header().region_len();
    if raw_len != region_len {
        return Err(FormatError::RawSizeMismatch { path: raw_path.to_path_buf(), raw_len, region_len });
    }
    // One page buffer, bounded by PAGE_SIZE_MAX (the header was checked).
    let mut raw_page = Vec::with_capacity(reader.layout().page_size_max() as usize);
    let mut differing_pages = 0u64;
    let mut first_differing: Vec<u64> = Vec::new();
    while let Some(page) = reader.next_page()? {
        raw_page.resize(page.location.page_size as usize, 0);
        raw.read_exact_at(&mut raw_page, page.location.image_offset)
            .map_err(|e| FormatError::io(format!("{}: read page {}", raw_path.display(), page.index), e))?;
        let same = match page.data {
            Some(d) => d == &raw_page[..],
            None => is_all_zero(&raw_page),
        };
        if !same {
            differing_pages += 1;
            first_differing.push(page.index);
            // Records come in any order: keep the lowest indices, bounded.
            first_differing.sort_unstable();
            first_differing.truncate(DIFFERING_PAGES_LISTED_MAX);
        }
    }
    let summary = summary_of(&reader)?;
    if differing_pages > 0 {
        return Err(FormatError::RawMismatch { differing_pages, first_differing });
    }
    Ok(VerifyReport { path: path.to_path_buf(), summary, compared_with_raw: Some(raw_path.to_path_buf()) })
}

impl fmt::Display for StreamSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "format version   {}", self.format_version)?;
        writeln!(f, "regions          {}", self.regions.len())?;
        for (i, r) in self.regions.iter().enumerate() {
            let start = if r.start == 0 { "address unknown".to_string() } else { format!("at {:#x}", r.start) };
            writeln!(f, "  region {i}       {} B, {} B pages, {}, {start}", r.len, r.page_size, r.backing)?;
        }
        writeln!(f, "page count       {}", self.page_count)?;
        writeln!(f, "region length    {} B", self.region_len)?;
        writeln!(f, "page records     {} ({} zero pages)", self.page_records, self.zero_pages)?;
        writeln!(f, "stream length    {} B", self.stream_bytes)?;
        write!(f, "records crc32c   {:#010x}", self.records_crc32c)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: OK (structure and all checksums verified)", self.path.display())?;
        writeln!(f, "{}", self.summary)?;
        match &self.compared_with_raw {
            Some(raw) => write!(f, "raw image        every page equals {}", raw.display()),
            None => write!(f, "raw image        not compared"),
        }
    }
}
