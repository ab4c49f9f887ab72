//! Streaming snapshot reader. Reads strictly forward (pipes and sockets work), checks every
//! checksum before handing data out, and allocates nothing sized by an unchecked field.

use crate::error::FormatError;
use crate::header::{
    Header, PageLayout, PageLocation, RegionEntry, at, check_geometry_v1, check_len, check_region, check_totals,
};
use crate::layout::{
    BACKING_LEN_MAX, COMPLETION_MARKER, CONFIG_JSON_LEN_MAX, CRC_BYTES, FORMAT_VERSION, FORMAT_VERSION_V1,
    HEADER_V1_FIXED_BYTES, HEADER_V2_FIXED_BYTES, MAGIC, PAGE_FLAG_ZERO, PAGE_RECORD_HEADER_BYTES,
    REGION_ENTRY_FIXED_BYTES, REGIONS_MAX, REPORT_JSON_LEN_MAX, TAG_PAGE, TAG_TRAILER, TRAILER_FIXED_BYTES, u32_at,
    u64_at,
};
use crate::page_set::PageSet;
use crate::writer::record_crc;
use serde::Serialize;
use std::io::{ErrorKind, Read};

/// The trailer of a complete snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trailer {
    /// Page records in the file (equals the header's page count).
    pub page_records: u64,
    /// Of those, zero pages (stored without data).
    pub zero_pages: u64,
    /// crc32c over the sequence of the records' crc32c values, in file order.
    pub records_crc32c: u32,
    /// The report stored by the writer (JSON text, not interpreted here).
    pub report_json: String,
}

/// One page as read from the stream. Its checksum has already been checked.
#[derive(Debug)]
pub struct PageRecord<'a> {
    /// Page index over all regions.
    pub index: u64,
    /// Where the page lies: region, size, offset in the concatenated image, address.
    pub location: PageLocation,
    /// Byte offset of the record in the stream.
    pub offset: u64,
    /// The page data, or `None` for an all-zero page.
    pub data: Option<&'a [u8]>,
}

/// Reads a snapshot from any [`Read`]: call [`SnapshotReader::next_page`] until it returns
/// `Ok(None)`; the snapshot is then complete and verified, and [`SnapshotReader::trailer`] is set.
/// The reader does not buffer: wrap files in a `BufReader`.
#[derive(Debug)]
pub struct SnapshotReader<R: Read> {
    src: R,
    offset: u64,
    version: u32,
    header: Header,
    layout: PageLayout,
    header_len: u64,
    seen: PageSet,
    page_buf: Vec<u8>,
    page_records: u64,
    zero_pages: u64,
    records_crc: u32,
    trailer: Option<Trailer>,
    failed: bool,
}

/// Starts reading a snapshot: reads and checks the header.
pub fn read_snapshot<R: Read>(r: R) -> Result<SnapshotReader<R>, FormatError> {
    SnapshotReader::new(r)
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the header.
    pub fn new(src: R) -> Result<Self, FormatError> {
        let mut this = SnapshotReader {
            src,
            offset: 0,
            version: 0,
            header: Header { regions: Vec::new(), created_unix_ns: 0, config_json: String::new() },
            layout: Header { regions: Vec::new(), created_unix_ns: 0, config_json: String::new() }.layout(),
            header_len: 0,
            seen: PageSet::new(0),
            page_buf: Vec::new(),
            page_records: 0,
            zero_pages: 0,
            records_crc: 0,
            trailer: None,
            failed: false,
        };
        this.read_header()?;
        Ok(this)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The format version of the stream (1 or 2).
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// Where each page lies (region, size, offset in the concatenated image).
    pub fn layout(&self) -> &PageLayout {
        &self.layout
    }

    /// Bytes of the encoded header.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The trailer, once `next_page` has returned `Ok(None)`.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// Page records read so far.
    pub fn pages_read(&self) -> u64 {
        self.page_records
    }

    /// Zero pages read so far.
    pub fn zero_pages_read(&self) -> u64 {
        self.zero_pages
    }

    /// The next page, or `Ok(None)` after the trailer and completion marker were read and
    /// checked (and nothing follows them). After an error every call returns `Poisoned`.
    pub fn next_page(&mut self) -> Result<Option<PageRecord<'_>>, FormatError> {
        if self.failed {
            return Err(FormatError::Poisoned { what: "reader" });
        }
        if self.trailer.is_some() {
            return Ok(None);
        }
        self.failed = true;
        let Some((index, offset, zero)) = self.read_record()? else {
            self.failed = false;
            return Ok(None);
        };
        // read_record checked the index against the layout.
        let location = self.layout.locate(index).ok_or(FormatError::Poisoned { what: "reader" })?;
        self.failed = false;
        let data = (!zero).then_some(&self.page_buf[..]);
        Ok(Some(PageRecord { index, location, offset, data }))
    }

    /// Reads all remaining pages, checking everything, and returns the trailer.
    pub fn read_to_end(&mut self) -> Result<&Trailer, FormatError> {
        while self.next_page()?.is_some() {}
        self.trailer.as_ref().ok_or(FormatError::Poisoned { what: "reader" })
    }

    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), FormatError> {
        let mut done = 0;
        while done < buf.len() {
            match self.src.read(&mut buf[done..]) {
                Ok(0) => return Err(FormatError::Truncated { offset: self.offset, what }),
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(FormatError::io(format!("reading {what} at byte {}", self.offset), e)),
            }
        }
        Ok(())
    }

    /// Reads `len` bytes into `out`, growing it only as data actually arrives, so a bogus
    /// length cannot make us allocate more than the input holds.
    fn fill_vec(&mut self, out: &mut Vec<u8>, len: u64, what: &'static str) -> Result<(), FormatError> {
        out.clear();
        let start = self.offset;
        let got = (&mut self.src)
            .take(len)
            .read_to_end(out)
            .map_err(|e| FormatError::io(format!("reading {what} at byte {start}"), e))?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(FormatError::Truncated { offset: self.offset, what });
        }
        Ok(())
    }

    fn read_text(&mut self, len: u64, field: &'static str, crc: &mut u32) -> Result<String, FormatError> {
        let start = self.offset;
        let mut bytes = Vec::new();
        self.fill_vec(&mut bytes, len, field)?;
        *crc = crc32c::crc32c_append(*crc, &bytes);
        String::from_utf8(bytes).map_err(|_| FormatError::NotUtf8 { offset: start, field })
    }

    fn read_header(&mut self) -> Result<(), FormatError> {
        let mut start = [0u8; 16];
        self.fill(&mut start[..8], "the magic")?;
        if start[..8] != MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&start[..8]);
            return Err(FormatError::BadMagic { offset: at::MAGIC as u64, found });
        }
        self.fill(&mut start[8..], "the header")?;
        let version = u32_at(&start, at::VERSION);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_V1 {
            return Err(FormatError::UnsupportedVersion {
                offset: at::VERSION as u64,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = u32_at(&start, at::FLAGS);
        if flags != 0 {
            return Err(FormatError::BadFlags { offset: at::FLAGS as u64, what: "header", flags });
        }
        let mut crc = crc32c::crc32c(&start);
        self.header = if version == FORMAT_VERSION_V1 {
            self.read_header_v1(&start, &mut crc)?
        } else {
            self.read_header_v2(&start, &mut crc)?
        };
        let crc_offset = self.offset;
        let mut stored = [0u8; CRC_BYTES];
        self.fill(&mut stored, "the header checksum")?;
        let stored = u32::from_le_bytes(stored);
        if stored != crc {
            return Err(FormatError::ChecksumMismatch {
                offset: crc_offset,
                what: "header".into(),
                stored,
                computed: crc,
            });
        }
        self.version = version;
        self.header_len = self.offset;
        self.layout = self.header.layout();
        self.seen = PageSet::new(self.layout.page_count());
        Ok(())
    }

    /// Version 1: one region, no address.
    fn read_header_v1(&mut self, start: &[u8; 16], crc: &mut u32) -> Result<Header, FormatError> {
        let mut fixed = [0u8; HEADER_V1_FIXED_BYTES];
        fixed[..16].copy_from_slice(start);
        self.fill(&mut fixed[16..], "the header")?;
        *crc = crc32c::crc32c_append(*crc, &fixed[16..]);
        let page_size = u64_at(&fixed, at::v1::PAGE_SIZE);
        let page_count = u64_at(&fixed, at::v1::PAGE_COUNT);
        let region_len = u64_at(&fixed, at::v1::REGION_LEN);
        check_geometry_v1(page_size, page_count, region_len)?;
        let backing_len = u64::from(u32_at(&fixed, at::v1::BACKING_LEN));
        check_len(at::v1::BACKING_LEN as u64, "backing_len", backing_len, BACKING_LEN_MAX)?;
        let config_len = u64::from(u32_at(&fixed, at::v1::CONFIG_LEN));
        check_len(at::v1::CONFIG_LEN as u64, "config_json_len", config_len, CONFIG_JSON_LEN_MAX)?;
        let backing = self.read_text(backing_len, "backing", crc)?;
        let config_json = self.read_text(config_len, "config_json", crc)?;
        Ok(Header {
            regions: vec![RegionEntry { start: 0, len: region_len, page_size, backing }],
            created_unix_ns: u64_at(&fixed, at::v1::CREATED),
            config_json,
        })
    }

    /// Version 2: the region table.
    fn read_header_v2(&mut self, start: &[u8; 16], crc: &mut u32) -> Result<Header, FormatError> {
        let mut fixed = [0u8; HEADER_V2_FIXED_BYTES];
        fixed[..16].copy_from_slice(start);
        self.fill(&mut fixed[16..], "the header")?;
        *crc = crc32c::crc32c_append(*crc, &fixed[16..]);
        let region_count = u64::from(u32_at(&fixed, at::v2::REGION_COUNT));
        if !(1..=REGIONS_MAX).contains(&region_count) {
            return Err(FormatError::BadHeaderField {
                offset: at::v2::REGION_COUNT as u64,
                field: "region_count",
                value: region_count,
                reason: format!("must be in 1..={REGIONS_MAX}"),
            });
        }
        let config_len = u64::from(u32_at(&fixed, at::v2::CONFIG_LEN));
        check_len(at::v2::CONFIG_LEN as u64, "config_json_len", config_len, CONFIG_JSON_LEN_MAX)?;
        // Grows with the entries actually read, bounded by REGIONS_MAX.
        let mut regions = Vec::new();
        for _ in 0..region_count {
            regions.push(self.read_region_entry(crc)?);
            check_totals(&regions, at::v2::REGION_COUNT as u64)?;
        }
        let config_json = self.read_text(config_len, "config_json", crc)?;
        Ok(Header { regions, created_unix_ns: u64_at(&fixed, at::v2::CREATED), config_json })
    }

    fn read_region_entry(&mut self, crc: &mut u32) -> Result<RegionEntry, FormatError> {
        let entry_at = self.offset;
        let mut entry = [0u8; REGION_ENTRY_FIXED_BYTES];
        self.fill(&mut entry, "a region entry")?;
        *crc = crc32c::crc32c_append(*crc, &entry);
        let start = u64_at(&entry, at::v2::ENTRY_START);
        let len = u64_at(&entry, at::v2::ENTRY_LEN);
        let page_size = u64_at(&entry, at::v2::ENTRY_PAGE_SIZE);
        check_region(entry_at, start, len, page_size)?;
        let flags = u32_at(&entry, at::v2::ENTRY_FLAGS);
        if flags != 0 {
            return Err(FormatError::BadFlags {
                offset: entry_at + at::v2::ENTRY_FLAGS as u64,
                what: "region entry",
                flags,
            });
        }
        let backing_len = u64::from(u32_at(&entry, at::v2::ENTRY_BACKING_LEN));
        check_len(entry_at + at::v2::ENTRY_BACKING_LEN as u64, "backing_len", backing_len, BACKING_LEN_MAX)?;
        let backing = self.read_text(backing_len, "backing", crc)?;
        Ok(RegionEntry { start, len, page_size, backing })
    }

    /// Reads one record. `Some((index, offset, zero))` for a page (data in `page_buf`),
    /// `None` after a good trailer.
    fn read_record(&mut self) -> Result<Option<(u64, u64, bool)>, FormatError> {
        let offset = self.offset;
        let mut tag = [0u8; 4];
        self.fill(&mut tag, "a record tag")?;
        match u32::from_le_bytes(tag) {
            TAG_PAGE => self.read_page(offset).map(Some),
            TAG_TRAILER => self.read_trailer(offset).map(|()| None),
            tag => Err(FormatError::UnknownRecordTag { offset, tag }),
        }
    }

    fn read_page(&mut self, offset: u64) -> Result<(u64, u64, bool), FormatError> {
        let mut rest = [0u8; PAGE_RECORD_HEADER_BYTES - 4];
        self.fill(&mut rest, "a page record header")?;
        let flags = u32_at(&rest, 0);
        let index = u64_at(&rest, 4);
        let stored = u32_at(&rest, 12);
        if flags & !PAGE_FLAG_ZERO != 0 {
            return Err(FormatError::BadFlags { offset: offset + 4, what: "page record", flags });
        }
        let Some(location) = self.layout.locate(index) else {
            return Err(FormatError::PageIndexOutOfRange {
                offset: offset + 8,
                index,
                page_count: self.layout.page_count(),
            });
        };
        if self.seen.contains(index) {
            return Err(FormatError::DuplicatePage { offset, index });
        }
        let zero = flags & PAGE_FLAG_ZERO != 0;
        let computed = if zero {
            record_crc(&rest[..12], None)
        } else {
            let mut buf = std::mem::take(&mut self.page_buf);
            let r = self.fill_vec(&mut buf, location.page_size, "page data");
            self.page_buf = buf;
            r?;
            record_crc(&rest[..12], Some(&self.page_buf))
        };
        if computed != stored {
            return Err(FormatError::ChecksumMismatch {
                offset: offset + 16,
                what: format!("page record {index}"),
                stored,
                computed,
            });
        }
        self.seen.insert(index);
        self.page_records += 1;
        self.zero_pages += u64::from(zero);
        self.records_crc = crc32c::crc32c_append(self.records_crc, &stored.to_le_bytes());
        Ok((index, offset, zero))
    }

    fn read_trailer(&mut self, offset: u64) -> Result<(), FormatError> {
        if let Some(first_missing) = self.seen.first_missing() {
            return Err(FormatError::MissingPages {
                offset,
                missing: self.layout.page_count() - self.page_records,
                first_missing,
            });
        }
        let mut fixed = [0u8; TRAILER_FIXED_BYTES];
        fixed[..4].copy_from_slice(&TAG_TRAILER.to_le_bytes());
        self.fill(&mut fixed[4..], "the trailer")?;
        let flags = u32_at(&fixed, 4);
        if flags != 0 {
            return Err(FormatError::BadFlags { offset: offset + 4, what: "trailer", flags });
        }
        let report_len = u64::from(u32_at(&fixed, 28));
        if report_len > REPORT_JSON_LEN_MAX {
            return Err(FormatError::LengthTooLarge {
                offset: offset + 28,
                field: "report_json_len",
                len: report_len,
                max: REPORT_JSON_LEN_MAX,
            });
        }
        let mut crc = crc32c::crc32c(&fixed);
        let report_json = self.read_text(report_len, "report_json", &mut crc)?;
        let crc_offset = self.offset;
        let mut stored = [0u8; CRC_BYTES];
        self.fill(&mut stored, "the trailer checksum")?;
        let stored = u32::from_le_bytes(stored);
        if stored != crc {
            return Err(FormatError::ChecksumMismatch {
                offset: crc_offset,
                what: "trailer".into(),
                stored,
                computed: crc,
            });
        }
        let counts = [
            (offset + 8, "page_records", u64_at(&fixed, 8), self.page_records),
            (offset + 16, "zero_pages", u64_at(&fixed, 16), self.zero_pages),
        ];
        for (at, field, stored, counted) in counts {
            if stored != counted {
                return Err(FormatError::CountMismatch { offset: at, field, stored, counted });
            }
        }
        let records_crc = u32_at(&fixed, 24);
        if records_crc != self.records_crc {
            return Err(FormatError::ChecksumMismatch {
                offset: offset + 24,
                what: "records".into(),
                stored: records_crc,
                computed: self.records_crc,
            });
        }
        let marker_offset = self.offset;
        let mut marker = [0u8; 8];
        self.fill(&mut marker, "the completion marker")?;
        if marker != COMPLETION_MARKER {
            return Err(FormatError::BadCompletionMarker { offset: marker_offset, found: marker });
        }
        let end = self.offset;
        let mut extra = [0u8; 1];
        loop {
            match self.src.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => return Err(FormatError::TrailingBytes { offset: end }),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(FormatError::io(format!("reading past the end at byte {end}"), e)),
            }
        }
        self.trailer = Some(Trailer {
            page_records: self.page_records,
            zero_pages: self.zero_pages,
            records_crc32c: records_crc,
            report_json,
        });
        Ok(())
    }
}
