//! The version stamps writers put in pages, and their check.

use crate::region::Region;

/// Offsets (in u64 words) a write stamps: word 0 always, and one more word that moves with
/// the sequence number, so writes touch different cache lines of the page.
pub const STAMP_OFFSETS: usize = 2;

/// A stamp: writer index + 1 in the top 16 bits, its sequence number below (never 0).
pub fn stamp_value(index: u32, seq: u64) -> u64 {
    ((index as u64 + 1) << 48) | (seq & ((1 << 48) - 1))
}

/// Writes `value` into word 0 of `page` and into one word chosen by `seq`.
pub(super) fn write_stamp(region: &Region, page: u64, seq: u64, value: u64) {
    let words = (region.page_size() / 8) as usize;
    let second = 1 + (seq as usize % (words - 1));
    let base = region.page_addr(page) as *mut u64;
    // SAFETY: `page` is inside the region, which the caller keeps mapped and writable while
    // the writers run (WriterSet::start's contract); this writer is the only one writing this
    // page (pages are partitioned by writer index); both words are inside the page. Volatile,
    // because the point is the store itself (it may block on a write-protect fault).
    unsafe {
        std::ptr::write_volatile(base.add(second), value);
        std::ptr::write_volatile(base, value);
    }
}

/// Whether word 0 of `page_bytes` holds `expected` (the last stamp written to it).
pub fn expected_stamp_ok(page_bytes: &[u8], expected: u64) -> bool {
    page_bytes
        .get(..8)
        .is_some_and(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == expected)
}
