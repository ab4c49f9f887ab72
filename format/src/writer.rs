//! Streaming snapshot writer: header, page records in any order, trailer.

use crate::error::FormatError;
use crate::header::{Header, PageLayout};
use crate::layout::{
    COMPLETION_MARKER, PAGE_FLAG_ZERO, PAGE_RECORD_HEADER_BYTES, REPORT_JSON_LEN_MAX, TAG_PAGE, TAG_TRAILER,
    TRAILER_FIXED_BYTES,
};
use crate::page_set::PageSet;
use crate::zero::is_all_zero;
use std::io::Write;

/// Writes one snapshot to any [`Write`]. No per-page allocation: each record is a stack header
/// plus the caller's page slice. Wrap slow sinks in a `BufWriter` (or use [`crate::DurableFile`]).
///
/// After any error the writer is poisoned: later calls return [`FormatError::Poisoned`], since
/// an unknown part of a record may have reached the sink.
#[derive(Debug)]
pub struct SnapshotWriter<W: Write> {
    out: W,
    layout: PageLayout,
    seen: PageSet,
    pages_written: u64,
    zero_pages: u64,
    bytes_written: u64,
    records_crc: u32,
    poisoned: bool,
}

/// The checksum and zero flag of one page, computed by [`PageDigest::of`]. Lets a caller move
/// the per-page CPU work (one pass over the data) off the sink thread, e.g. onto the thread
/// that copies the page into staging, and hand it to [`SnapshotWriter::write_page_digested`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageDigest {
    index: u64,
    zero: bool,
    crc32c: u32,
}

impl PageDigest {
    /// Zero detection and the record checksum of page `index` holding `data`.
    pub fn of(index: u64, data: &[u8]) -> PageDigest {
        let zero = is_all_zero(data);
        let flags = if zero { PAGE_FLAG_ZERO } else { 0 };
        let mut covered = [0u8; 12];
        covered[0..4].copy_from_slice(&flags.to_le_bytes());
        covered[4..12].copy_from_slice(&index.to_le_bytes());
        PageDigest { index, zero, crc32c: record_crc(&covered, (!zero).then_some(data)) }
    }

    /// Whether the page is all zero (stored without data).
    pub fn is_zero(&self) -> bool {
        self.zero
    }

    /// The record checksum (docs/format.md, "Page record").
    pub fn crc32c(&self) -> u32 {
        self.crc32c
    }
}

/// crc32c of a page record: over its flags and page index (bytes 4..16 of the record header),
/// then the page data if any. Shared with the reader so both compute the very same thing.
pub(crate) fn record_crc(flags_and_index: &[u8], data: Option<&[u8]>) -> u32 {
    let crc = crc32c::crc32c(flags_and_index);
    match data {
        Some(d) => crc32c::crc32c_append(crc, d),
        None => crc,
    }
}

impl<W: Write> SnapshotWriter<W> {
    /// Validates `header` and writes it.
    pub fn new(mut out: W, header: &Header) -> Result<Self, FormatError> {
        let bytes = header.encode()?;
        out.write_all(&bytes).map_err(|e| FormatError::io("writing the snapshot header", e))?;
        let layout = header.layout();
        Ok(SnapshotWriter {
            out,
            seen: PageSet::new(layout.page_count()),
            layout,
            pages_written: 0,
            zero_pages: 0,
            bytes_written: bytes.len() as u64,
            records_crc: 0,
            poisoned: false,
        })
    }

    /// Writes page `index`. Pages may come in any order; an all-zero page is stored as a
    /// record without data. Rejects a wrong length, an index out of range and a duplicate
    /// (these three leave the writer usable: nothing was written).
    pub fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), FormatError> {
        self.check_page(index, data)?;
        self.write_record(index, data, PageDigest::of(index, data))
    }

    /// Like [`SnapshotWriter::write_page`], with the checksum and zero flag computed earlier by
    /// [`PageDigest::of`] (on another thread, say). The data must not have changed since: a
    /// stale digest makes a file that fails verification (debug builds assert it). A digest
    /// computed for another index is refused with [`FormatError::DigestMismatch`].
    pub fn write_page_digested(&mut self, index: u64, data: &[u8], digest: &PageDigest) -> Result<(), FormatError> {
        self.check_page(index, data)?;
        if digest.index != index {
            return Err(FormatError::DigestMismatch { index, digest_index: digest.index });
        }
        debug_assert_eq!(*digest, PageDigest::of(index, data), "page {index} changed after its digest");
        self.write_record(index, data, *digest)
    }

    fn check_page(&self, index: u64, data: &[u8]) -> Result<(), FormatError> {
        if self.poisoned {
            return Err(FormatError::Poisoned { what: "writer" });
        }
        let Some(location) = self.layout.locate(index) else {
            return Err(FormatError::PageIndexOutOfRange {
                offset: self.bytes_written,
                index,
                page_count: self.layout.page_count(),
            });
        };
        if data.len() as u64 != location.page_size {
            return Err(FormatError::WrongPageLength { index, len: data.len() as u64, page_size: location.page_size });
        }
        if self.seen.contains(index) {
            return Err(FormatError::DuplicatePage { offset: self.bytes_written, index });
        }
        Ok(())
    }

    fn write_record(&mut self, index: u64, data: &[u8], digest: PageDigest) -> Result<(), FormatError> {
        let flags = if digest.zero { PAGE_FLAG_ZERO } else { 0 };
        let mut rec = [0u8; PAGE_RECORD_HEADER_BYTES];
        rec[0..4].copy_from_slice(&TAG_PAGE.to_le_bytes());
        rec[4..8].copy_from_slice(&flags.to_le_bytes());
        rec[8..16].copy_from_slice(&index.to_le_bytes());
        rec[16..20].copy_from_slice(&digest.crc32c.to_le_bytes());
        let payload = (!digest.zero).then_some(data);
        // Poisoned until both writes succeed: on error an unknown prefix reached the sink.
        self.poisoned = true;
        self.out.write_all(&rec).map_err(|e| FormatError::io(format!("writing page record {index}"), e))?;
        if let Some(d) = payload {
            self.out.write_all(d).map_err(|e| FormatError::io(format!("writing page data {index}"), e))?;
        }
        self.poisoned = false;
        self.seen.insert(index);
        self.records_crc = crc32c::crc32c_append(self.records_crc, &digest.crc32c.to_le_bytes());
        self.pages_written += 1;
        self.zero_pages += u64::from(digest.zero);
        self.bytes_written += (PAGE_RECORD_HEADER_BYTES + payload.map_or(0, <[u8]>::len)) as u64;
        Ok(())
    }

    /// Pushes what the sink buffers down to its destination (a stream flush, as QEMU does after
    /// each page). A failure poisons the writer: an unknown prefix may have reached the sink.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        if self.poisoned {
            return Err(FormatError::Poisoned { what: "writer" });
        }
        self.poisoned = true;
        self.out.flush().map_err(|e| FormatError::io("flushing the sink".to_string(), e))?;
        self.poisoned = false;
        Ok(())
    }

    /// Where each page lies (region, size, offset in the concatenated image).
    pub fn layout(&self) -> &PageLayout {
        &self.layout
    }

    /// Pages written so far.
    pub fn pages_written(&self) -> u64 {
        self.pages_written
    }

    /// Of those, pages stored as zero pages (no data).
    pub fn zero_pages_written(&self) -> u64 {
        self.zero_pages
    }

    /// Bytes handed to the sink so far (header and records).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Whether page `index` has been written.
    pub fn is_written(&self, index: u64) -> bool {
        self.seen.contains(index)
    }

    /// Writes the trailer (counts, records checksum, `report_json`, completion marker), flushes
    /// the sink and returns it. Fails, writing nothing, if any page is missing.
    pub fn finish(mut self, report_json: &str) -> Result<W, FormatError> {
        if self.poisoned {
            return Err(FormatError::Poisoned { what: "writer" });
        }
        if let Some(first_missing) = self.seen.first_missing() {
            return Err(FormatError::MissingPages {
                offset: self.bytes_written,
                missing: self.layout.page_count() - self.pages_written,
                first_missing,
            });
        }
        let report_len = report_json.len() as u64;
        if report_len > REPORT_JSON_LEN_MAX {
            return Err(FormatError::LengthTooLarge {
                offset: self.bytes_written + 28,
                field: "report_json_len",
                len: report_len,
                max: REPORT_JSON_LEN_MAX,
            });
        }
        let mut fixed = [0u8; TRAILER_FIXED_BYTES];
        fixed[0..4].copy_from_slice(&TAG_TRAILER.to_le_bytes());
        fixed[4..8].copy_from_slice(&0u32.to_le_bytes());
        fixed[8..16].copy_from_slice(&self.pages_written.to_le_bytes());
        fixed[16..24].copy_from_slice(&self.zero_pages.to_le_bytes());
        fixed[24..28].copy_from_slice(&self.records_crc.to_le_bytes());
        fixed[28..32].copy_from_slice(&(report_len as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed), report_json.as_bytes());
        let io = |e| FormatError::io("writing the snapshot trailer", e);
        self.out.write_all(&fixed).map_err(io)?;
        self.out.write_all(report_json.as_bytes()).map_err(io)?;
        self.out.write_all(&crc.to_le_bytes()).map_err(io)?;
        self.out.write_all(&COMPLETION_MARKER).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}
