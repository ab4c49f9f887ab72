//! Streaming snapshot writer: header, page records in any order, trailer.

use crate::error::FormatError;
use crate::header::{Header, PageLayout};
use crate::layout::{
    COMPLETION_MARKER, PAGE_FLAG_ZERO, PAGE_RECORD_HEADER_BYTES, REPORT_JSON_LEN_MAX, TAG_PAGE, TAG_TRAILER,
    TRAILER_FIXED_BYTES,
};
use crate::page_set::PageSet;
use crate::zero::is_all_zero;
use std::io::{IoSlice, Write};

/// Most slices one vectored write gets (Linux's IOV_MAX is 1024).
const IO_SLICES_MAX: usize = 1024;

/// Consecutive pages `first..first + digests.len()` in one buffer, each with its digest: what
/// [`SnapshotWriter::write_runs_digested`] writes with vectored writes, straight from `data`.
#[derive(Clone, Copy, Debug)]
pub struct DigestedRun<'a> {
    pub first: u64,
    /// `digests.len()` pages back to back.
    pub data: &'a [u8],
    pub digests: &'a [PageDigest],
}

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

/// The 20-byte header of page `index`'s record (docs/format.md, "Page record").
fn record_header(index: u64, digest: &PageDigest) -> [u8; PAGE_RECORD_HEADER_BYTES] {
    let flags = if digest.zero { PAGE_FLAG_ZERO } else { 0 };
    let mut rec = [0u8; PAGE_RECORD_HEADER_BYTES];
    rec[0..4].copy_from_slice(&TAG_PAGE.to_le_bytes());
    rec[4..8].copy_from_slice(&flags.to_le_bytes());
    rec[8..16].copy_from_slice(&index.to_le_bytes());
    rec[16..20].copy_from_slice(&digest.crc32c.to_le_bytes());
    rec
}

/// `Write::write_all_vectored` (not stable yet): writes every slice, retrying short writes.
fn write_all_vectored<W: Write>(out: &mut W, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    // Bounded: each round writes at least one byte or returns.
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "failed to write whole buffer")),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    /// Writes every page of `runs` as [`SnapshotWriter::write_page_digested`] would, byte for
    /// byte the same records, but with vectored writes (record headers and the callers' page
    /// slices, up to 1024 slices a call), so the page data is not copied into a buffer first.
    /// Every page is checked before anything is written; a bad page leaves the writer usable.
    pub fn write_runs_digested(&mut self, runs: &[DigestedRun<'_>]) -> Result<(), FormatError> {
        let mut headers = Vec::new();
        let mut pages = Vec::new();
        for run in runs {
            // A run lies in one region, so its first page's size is every page's.
            let page_size = self.layout.locate(run.first).map_or(0, |l| l.page_size);
            if page_size == 0 || run.data.len() as u64 != run.digests.len() as u64 * page_size {
                return Err(FormatError::WrongPageLength { index: run.first, len: run.data.len() as u64, page_size });
            }
            let page_size = page_size as usize;
            for (i, (digest, page)) in run.digests.iter().zip(run.data.chunks_exact(page_size)).enumerate() {
                let index = run.first + i as u64;
                self.check_page(index, page)?;
                if digest.index != index {
                    return Err(FormatError::DigestMismatch { index, digest_index: digest.index });
                }
                debug_assert_eq!(*digest, PageDigest::of(index, page), "page {index} changed after its digest");
                headers.push(record_header(index, digest));
                pages.push((digest, page));
            }
        }
        // A run list with the same page twice is refused before anything is written: sorted by
        // first page, each run must end before the next begins.
        let mut ranges: Vec<(u64, u64)> = runs.iter().map(|r| (r.first, r.first + r.digests.len() as u64)).collect();
        ranges.sort_unstable();
        if let Some(pair) = ranges.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(FormatError::DuplicatePage { offset: self.bytes_written, index: pair[1].0 });
        }
        self.poisoned = true;
        let mut slices = Vec::with_capacity(IO_SLICES_MAX);
        for (chunk_headers, chunk_pages) in headers.chunks(IO_SLICES_MAX / 2).zip(pages.chunks(IO_SLICES_MAX / 2)) {
            slices.clear();
            for (header, (digest, page)) in chunk_headers.iter().zip(chunk_pages) {
                slices.push(IoSlice::new(header));
                if !digest.zero {
                    slices.push(IoSlice::new(page));
                }
            }
            write_all_vectored(&mut self.out, &mut slices)
                .map_err(|e| FormatError::io(format!("writing page records from {}", chunk_pages[0].0.index), e))?;
        }
        self.poisoned = false;
        for (digest, page) in &pages {
            self.account(digest, page.len() as u64);
        }
        Ok(())
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
        let rec = record_header(index, &digest);
        let payload = (!digest.zero).then_some(data);
        // Poisoned until both writes succeed: on error an unknown prefix reached the sink.
        self.poisoned = true;
        self.out.write_all(&rec).map_err(|e| FormatError::io(format!("writing page record {index}"), e))?;
        if let Some(d) = payload {
            self.out.write_all(d).map_err(|e| FormatError::io(format!("writing page data {index}"), e))?;
        }
        self.poisoned = false;
        self.account(&digest, data.len() as u64);
        Ok(())
    }

    /// Counts a record that reached the sink.
    fn account(&mut self, digest: &PageDigest, page_bytes: u64) {
        self.seen.insert(digest.index);
        self.records_crc = crc32c::crc32c_append(self.records_crc, &digest.crc32c.to_le_bytes());
        self.pages_written += 1;
        self.zero_pages += u64::from(digest.zero);
        let payload = if digest.zero { 0 } else { page_bytes };
        self.bytes_written += PAGE_RECORD_HEADER_BYTES as u64 + payload;
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
