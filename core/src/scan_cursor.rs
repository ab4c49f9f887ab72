//! The linear scan: where the background save goes next.

use crate::bitmap::PageBitmap;
use crate::page::PageIndex;

/// Walks the pending bitmap upward, wrapping once the end is reached (pages behind the
/// cursor can still be pending when the cursor was moved to a fault).
#[derive(Clone, Debug, Default)]
pub struct ScanCursor {
    position: u64,
}

impl ScanCursor {
    pub fn position(&self) -> PageIndex {
        PageIndex(self.position)
    }

    /// The next pending page at or after the cursor.
    pub fn next_pending(&self, pending: &PageBitmap) -> Option<PageIndex> {
        pending.next_set_wrapping(self.position).map(PageIndex)
    }

    /// Moves the cursor, for example to a faulting page (QEMU's locality hint).
    pub fn move_to(&mut self, page: PageIndex) {
        self.position = page.0;
    }
}
