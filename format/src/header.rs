//! The snapshot header: which regions were saved, how, and when.
//!
//! Version 2 stores a region table (several regions, each with its address, length, page
//! size and backing); page indices run over the regions' pages in table order. Version 1
//! stored one region without an address; it is still read, as a one-region table with
//! `start = 0` (unknown).

use crate::error::FormatError;
use crate::layout::{
    BACKING_LEN_MAX, CONFIG_JSON_LEN_MAX, FORMAT_VERSION, HEADER_V2_FIXED_BYTES, MAGIC, PAGE_COUNT_MAX, PAGE_SIZE_MAX,
    PAGE_SIZE_MIN, REGION_ENTRY_FIXED_BYTES, REGION_LEN_MAX, REGIONS_MAX,
};
use serde::{Deserialize, Serialize};

/// One region of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionEntry {
    /// Virtual address the region had in the snapshotted process (aligned to `page_size`);
    /// 0 when unknown (version-1 files, or a writer that does not say).
    pub start: u64,
    /// Bytes in the region: a non-zero multiple of `page_size`.
    pub len: u64,
    /// Bytes per page: a power of two in `PAGE_SIZE_MIN..=PAGE_SIZE_MAX`.
    pub page_size: u64,
    /// Free text saying what memory this was (e.g. "anonymous", "memfd", "hugetlbfs").
    pub backing: String,
}

impl RegionEntry {
    /// Pages in the region.
    pub fn page_count(&self) -> u64 {
        self.len.checked_div(self.page_size).unwrap_or(0)
    }
}

/// The header of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    /// The regions, in page-index order: region 0 holds pages `0..n0`, region 1 the next
    /// `n1`, and so on. `1..=REGIONS_MAX` of them.
    pub regions: Vec<RegionEntry>,
    /// Wall-clock time the snapshot was started, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// The session configuration as JSON (stored verbatim, not interpreted).
    pub config_json: String,
}

/// Where one page lies: its region, its size, and its offset in the regions' concatenation
/// (the raw image `restore` writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLocation {
    /// Index of the region in the table.
    pub region: usize,
    /// Bytes in the page.
    pub page_size: u64,
    /// Byte offset of the page in the concatenated image.
    pub image_offset: u64,
    /// Virtual address of the page (0 when the region's start is unknown).
    pub address: u64,
}

/// The page-index to region map of a header, for lookups per page (binary search).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageLayout {
    /// Per region: first page index, page size, image offset of its first byte, start address.
    spans: Vec<(u64, u64, u64, u64)>,
    page_count: u64,
    image_len: u64,
}

impl PageLayout {
    /// Total pages.
    pub fn page_count(&self) -> u64 {
        self.page_count
    }

    /// Total bytes of all regions.
    pub fn image_len(&self) -> u64 {
        self.image_len
    }

    /// The largest page size of any region.
    pub fn page_size_max(&self) -> u64 {
        self.spans.iter().map(|s| s.1).max().unwrap_or(0)
    }

    /// Where page `index` lies, or `None` if it is not below the page count.
    pub fn locate(&self, index: u64) -> Option<PageLocation> {
        if index >= self.page_count {
            return None;
        }
        // The last span whose first page is <= index.
        let region = self.spans.partition_point(|s| s.0 <= index).checked_sub(1)?;
        let (first, page_size, image_offset, start) = self.spans[region];
        let within = (index - first) * page_size;
        Some(PageLocation {
            region,
            page_size,
            image_offset: image_offset + within,
            address: if start == 0 { 0 } else { start + within },
        })
    }
}

/// Byte offsets of the header fields (docs/format.md, "Header").
pub(crate) mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    /// Version 1.
    pub mod v1 {
        pub const PAGE_SIZE: usize = 16;
        pub const PAGE_COUNT: usize = 24;
        pub const REGION_LEN: usize = 32;
        pub const CREATED: usize = 40;
        pub const BACKING_LEN: usize = 48;
        pub const CONFIG_LEN: usize = 52;
    }
    /// Version 2.
    pub mod v2 {
        pub const CREATED: usize = 16;
        pub const REGION_COUNT: usize = 24;
        pub const CONFIG_LEN: usize = 28;
        /// Within a region entry.
        pub const ENTRY_START: usize = 0;
        pub const ENTRY_LEN: usize = 8;
        pub const ENTRY_PAGE_SIZE: usize = 16;
        pub const ENTRY_BACKING_LEN: usize = 24;
        pub const ENTRY_FLAGS: usize = 28;
    }
}

impl Header {
    /// A header of one region of `page_count` pages of `page_size` bytes at an unknown address.
    pub fn single(page_size: u64, page_count: u64, backing: &str, created_unix_ns: u64, config_json: String) -> Header {
        Header {
            regions: vec![RegionEntry {
                start: 0,
                len: page_size.saturating_mul(page_count),
                page_size,
                backing: backing.to_string(),
            }],
            created_unix_ns,
            config_json,
        }
    }

    /// Total pages of all regions.
    pub fn page_count(&self) -> u64 {
        self.regions.iter().map(RegionEntry::page_count).fold(0, u64::saturating_add)
    }

    /// Total bytes of all regions (the length of the raw image `restore` writes).
    pub fn region_len(&self) -> u64 {
        self.regions.iter().map(|r| r.len).fold(0, u64::saturating_add)
    }

    /// The page size, when every region has the same one.
    pub fn uniform_page_size(&self) -> Option<u64> {
        let first = self.regions.first()?.page_size;
        self.regions.iter().all(|r| r.page_size == first).then_some(first)
    }

    /// The page-index map of a valid header.
    pub fn layout(&self) -> PageLayout {
        let mut spans = Vec::with_capacity(self.regions.len());
        let (mut first, mut offset) = (0u64, 0u64);
        for r in &self.regions {
            spans.push((first, r.page_size, offset, r.start));
            first = first.saturating_add(r.page_count());
            offset = offset.saturating_add(r.len);
        }
        PageLayout { spans, page_count: first, image_len: offset }
    }

    /// Checks the rules of the format. Offsets in errors are those the fields have in a
    /// version-2 header.
    pub fn validate(&self) -> Result<(), FormatError> {
        let count = self.regions.len() as u64;
        if !(1..=REGIONS_MAX).contains(&count) {
            return Err(FormatError::BadHeaderField {
                offset: at::v2::REGION_COUNT as u64,
                field: "region_count",
                value: count,
                reason: format!("must be in 1..={REGIONS_MAX}"),
            });
        }
        let mut entry_at = HEADER_V2_FIXED_BYTES as u64;
        for r in &self.regions {
            check_region(entry_at, r.start, r.len, r.page_size)?;
            check_len(
                entry_at + at::v2::ENTRY_BACKING_LEN as u64,
                "backing_len",
                r.backing.len() as u64,
                BACKING_LEN_MAX,
            )?;
            entry_at += (REGION_ENTRY_FIXED_BYTES + r.backing.len()) as u64;
        }
        check_totals(&self.regions, at::v2::REGION_COUNT as u64)?;
        check_len(at::v2::CONFIG_LEN as u64, "config_json_len", self.config_json.len() as u64, CONFIG_JSON_LEN_MAX)?;
        Ok(())
    }

    /// Encodes the header in the current version, including its trailing crc32c.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.validate().map_err(|e| FormatError::InvalidHeader { reason: e.to_string() })?;
        let mut b = Vec::with_capacity(self.encoded_len() as usize);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.created_unix_ns.to_le_bytes());
        // Counts and lengths fit: validate() bounded them far below u32::MAX.
        b.extend_from_slice(&(self.regions.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.config_json.len() as u32).to_le_bytes());
        debug_assert_eq!(b.len(), HEADER_V2_FIXED_BYTES);
        for r in &self.regions {
            b.extend_from_slice(&r.start.to_le_bytes());
            b.extend_from_slice(&r.len.to_le_bytes());
            b.extend_from_slice(&r.page_size.to_le_bytes());
            b.extend_from_slice(&(r.backing.len() as u32).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(r.backing.as_bytes());
        }
        b.extend_from_slice(self.config_json.as_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        Ok(b)
    }

    /// Bytes the encoded header occupies.
    pub fn encoded_len(&self) -> u64 {
        let entries: usize = self.regions.iter().map(|r| REGION_ENTRY_FIXED_BYTES + r.backing.len()).sum();
        (HEADER_V2_FIXED_BYTES + entries + self.config_json.len() + 4) as u64
    }
}

pub(crate) fn check_len(offset: u64, field: &'static str, len: u64, max: u64) -> Result<(), FormatError> {
    if len > max {
        return Err(FormatError::LengthTooLarge { offset, field, len, max });
    }
    Ok(())
}

fn bad(offset: u64, field: &'static str, value: u64, reason: String) -> FormatError {
    FormatError::BadHeaderField { offset, field, value, reason }
}

fn check_page_size(offset: u64, page_size: u64) -> Result<(), FormatError> {
    if !page_size.is_power_of_two() || !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&page_size) {
        return Err(bad(
            offset,
            "page_size",
            page_size,
            format!("must be a power of two in {PAGE_SIZE_MIN}..={PAGE_SIZE_MAX}"),
        ));
    }
    Ok(())
}

/// Version 1's one-region geometry.
pub(crate) fn check_geometry_v1(page_size: u64, page_count: u64, region_len: u64) -> Result<(), FormatError> {
    check_page_size(at::v1::PAGE_SIZE as u64, page_size)?;
    if !(1..=PAGE_COUNT_MAX).contains(&page_count) {
        return Err(bad(
            at::v1::PAGE_COUNT as u64,
            "page_count",
            page_count,
            format!("must be in 1..={PAGE_COUNT_MAX}"),
        ));
    }
    match page_size.checked_mul(page_count) {
        Some(len) if len == region_len && len <= REGION_LEN_MAX => Ok(()),
        _ => Err(bad(
            at::v1::REGION_LEN as u64,
            "region_len",
            region_len,
            format!("must equal page_size * page_count and be at most {REGION_LEN_MAX}"),
        )),
    }
}

/// One version-2 region entry starting at byte `entry_at`.
pub(crate) fn check_region(entry_at: u64, start: u64, len: u64, page_size: u64) -> Result<(), FormatError> {
    check_page_size(entry_at + at::v2::ENTRY_PAGE_SIZE as u64, page_size)?;
    if len == 0 || !len.is_multiple_of(page_size) || len > REGION_LEN_MAX {
        return Err(bad(
            entry_at + at::v2::ENTRY_LEN as u64,
            "region_len",
            len,
            format!("must be a non-zero multiple of the page size and at most {REGION_LEN_MAX}"),
        ));
    }
    if !start.is_multiple_of(page_size) || start.checked_add(len).is_none() {
        return Err(bad(
            entry_at + at::v2::ENTRY_START as u64,
            "region_start",
            start,
            "must be aligned to the page size and leave start + len within 64 bits".to_string(),
        ));
    }
    Ok(())
}

/// The whole table: total pages and bytes within bounds, known addresses not overlapping.
pub(crate) fn check_totals(regions: &[RegionEntry], offset: u64) -> Result<(), FormatError> {
    let pages = regions.iter().map(RegionEntry::page_count).fold(0u64, u64::saturating_add);
    if pages > PAGE_COUNT_MAX {
        return Err(bad(
            offset,
            "page_count",
            pages,
            format!("all regions together must have at most {PAGE_COUNT_MAX} pages"),
        ));
    }
    let bytes = regions.iter().map(|r| r.len).fold(0u64, u64::saturating_add);
    if bytes > REGION_LEN_MAX {
        return Err(bad(
            offset,
            "region_len",
            bytes,
            format!("all regions together must be at most {REGION_LEN_MAX} bytes"),
        ));
    }
    let mut known: Vec<(u64, u64)> =
        regions.iter().filter(|r| r.start != 0).map(|r| (r.start, r.start + r.len)).collect();
    known.sort_unstable();
    if let Some(w) = known.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(bad(offset, "region_start", w[1].0, format!("overlaps the region at {:#x}", w[0].0)));
    }
    Ok(())
}
