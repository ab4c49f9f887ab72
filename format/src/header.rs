//! The snapshot header: what region was saved, how, and when.

use crate::error::FormatError;
use crate::layout::{
    BACKING_LEN_MAX, CONFIG_JSON_LEN_MAX, FORMAT_VERSION, HEADER_FIXED_BYTES, MAGIC, PAGE_COUNT_MAX, PAGE_SIZE_MAX,
    PAGE_SIZE_MIN, REGION_LEN_MAX,
};
use serde::Serialize;

/// The header of a snapshot. `region_len` must equal `page_size * page_count`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Bytes per page: a power of two in `PAGE_SIZE_MIN..=PAGE_SIZE_MAX`.
    pub page_size: u64,
    /// Number of pages: `1..=PAGE_COUNT_MAX`.
    pub page_count: u64,
    /// Bytes in the region (`page_size * page_count`, at most `REGION_LEN_MAX`).
    pub region_len: u64,
    /// Free text saying what memory was saved (e.g. "anonymous", "memfd", "shmem:/name").
    pub backing: String,
    /// Wall-clock time the snapshot was started, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// The engine configuration as JSON (stored verbatim, not interpreted).
    pub config_json: String,
}

/// Byte offsets of the header fields (docs/format.md, "Header").
pub(crate) mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    pub const PAGE_SIZE: usize = 16;
    pub const PAGE_COUNT: usize = 24;
    pub const REGION_LEN: usize = 32;
    pub const CREATED: usize = 40;
    pub const BACKING_LEN: usize = 48;
    pub const CONFIG_LEN: usize = 52;
}

impl Header {
    /// Checks the rules of the format; the offsets in errors are those of the header fields.
    pub fn validate(&self) -> Result<(), FormatError> {
        check_geometry(self.page_size, self.page_count, self.region_len)?;
        check_len(at::BACKING_LEN, "backing_len", self.backing.len() as u64, BACKING_LEN_MAX)?;
        check_len(at::CONFIG_LEN, "config_json_len", self.config_json.len() as u64, CONFIG_JSON_LEN_MAX)?;
        Ok(())
    }

    /// Encodes the header, including its trailing crc32c.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.validate().map_err(|e| FormatError::InvalidHeader { reason: e.to_string() })?;
        let mut b = Vec::with_capacity(HEADER_FIXED_BYTES + self.backing.len() + self.config_json.len() + 4);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.page_size.to_le_bytes());
        b.extend_from_slice(&self.page_count.to_le_bytes());
        b.extend_from_slice(&self.region_len.to_le_bytes());
        b.extend_from_slice(&self.created_unix_ns.to_le_bytes());
        // Lengths fit: validate() bounded them far below u32::MAX.
        b.extend_from_slice(&(self.backing.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.config_json.len() as u32).to_le_bytes());
        debug_assert_eq!(b.len(), HEADER_FIXED_BYTES);
        b.extend_from_slice(self.backing.as_bytes());
        b.extend_from_slice(self.config_json.as_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        Ok(b)
    }

    /// Bytes the encoded header occupies.
    pub fn encoded_len(&self) -> u64 {
        (HEADER_FIXED_BYTES + self.backing.len() + self.config_json.len() + 4) as u64
    }
}

pub(crate) fn check_len(offset: usize, field: &'static str, len: u64, max: u64) -> Result<(), FormatError> {
    if len > max {
        return Err(FormatError::LengthTooLarge { offset: offset as u64, field, len, max });
    }
    Ok(())
}

pub(crate) fn check_geometry(page_size: u64, page_count: u64, region_len: u64) -> Result<(), FormatError> {
    let bad = |offset: usize, field: &'static str, value: u64, reason: String| FormatError::BadHeaderField {
        offset: offset as u64,
        field,
        value,
        reason,
    };
    if !page_size.is_power_of_two() || !(PAGE_SIZE_MIN..=PAGE_SIZE_MAX).contains(&page_size) {
        return Err(bad(
            at::PAGE_SIZE,
            "page_size",
            page_size,
            format!("must be a power of two in {PAGE_SIZE_MIN}..={PAGE_SIZE_MAX}"),
        ));
    }
    if !(1..=PAGE_COUNT_MAX).contains(&page_count) {
        return Err(bad(at::PAGE_COUNT, "page_count", page_count, format!("must be in 1..={PAGE_COUNT_MAX}")));
    }
    match page_size.checked_mul(page_count) {
        Some(len) if len == region_len && len <= REGION_LEN_MAX => Ok(()),
        _ => Err(bad(
            at::REGION_LEN,
            "region_len",
            region_len,
            format!("must equal page_size * page_count and be at most {REGION_LEN_MAX}"),
        )),
    }
}
