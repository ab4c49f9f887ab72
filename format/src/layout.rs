//! Byte layout of the format (version 2 written, versions 1 and 2 read): magic numbers, field
//! sizes and the named bounds every length field is checked against. docs/format.md describes the same layout in tables; keep
//! the two in step.

/// The 8 bytes every snapshot starts with.
pub const MAGIC: [u8; 8] = *b"WPSNAPF\0";
/// The format version this crate writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 2;
/// The first version (one region, no address), still read.
pub const FORMAT_VERSION_V1: u32 = 1;
/// The 8 bytes every complete snapshot ends with (the completion marker).
pub const COMPLETION_MARKER: [u8; 8] = *b"SNAPDONE";

/// Tag of a page record ("PAGE" in ASCII, little-endian u32).
pub const TAG_PAGE: u32 = u32::from_le_bytes(*b"PAGE");
/// Tag of the trailer ("TRLR" in ASCII, little-endian u32).
pub const TAG_TRAILER: u32 = u32::from_le_bytes(*b"TRLR");
/// Page record flag: the page is all zero bytes and no data follows the record header.
pub const PAGE_FLAG_ZERO: u32 = 1;

/// Size of the fixed part of a version-1 header, before the backing and config text.
pub const HEADER_V1_FIXED_BYTES: usize = 56;
/// Size of the fixed part of a version-2 header, before the region table and config text.
pub const HEADER_V2_FIXED_BYTES: usize = 32;
/// Size of the fixed part of a version-2 region entry, before its backing text.
pub const REGION_ENTRY_FIXED_BYTES: usize = 32;
/// Size of a page record header (tag, flags, page index, crc32c), before the page data.
pub const PAGE_RECORD_HEADER_BYTES: usize = 20;
/// Size of the fixed part of the trailer, before the report text.
pub const TRAILER_FIXED_BYTES: usize = 32;
/// Size of a crc32c field.
pub const CRC_BYTES: usize = 4;

/// Smallest page size accepted (page sizes are powers of two).
pub const PAGE_SIZE_MIN: u64 = 4096;
/// Largest page size accepted (1 GiB huge pages).
pub const PAGE_SIZE_MAX: u64 = 1 << 30;
/// Largest page count accepted: bounds the duplicate-detection bitmap to 32 MiB.
pub const PAGE_COUNT_MAX: u64 = 1 << 28;
/// Most regions one snapshot holds (a VM's memory slots, a database's arenas).
pub const REGIONS_MAX: u64 = 1024;
/// Largest region accepted, and largest sum of all regions (1 TiB).
pub const REGION_LEN_MAX: u64 = 1 << 40;
/// Longest backing description in bytes.
pub const BACKING_LEN_MAX: u64 = 4096;
/// Longest engine configuration JSON in bytes.
pub const CONFIG_JSON_LEN_MAX: u64 = 1 << 20;
/// Longest stored report JSON in bytes.
pub const REPORT_JSON_LEN_MAX: u64 = 16 << 20;
/// How many differing page indices `verify --against` lists.
pub const DIFFERING_PAGES_LISTED_MAX: usize = 16;

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
