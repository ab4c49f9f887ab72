//! A private anonymous mapping owned by a baseline measurement.

use super::{BASELINE_BYTES_MAX, BaselineError, BaselineRegion};

/// Page size the baselines use (x86-64 and arm64 base pages).
pub const BASELINE_PAGE_SIZE: usize = 4096;

pub(super) struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory; threads that share it touch it only through raw
// pointers with volatile accesses, page by page, as each measurement documents.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `region.bytes` (whole pages), optionally with MADV_HUGEPAGE, and populates every
    /// page by writing to it (a write-protect or a fork only acts on populated pages).
    pub(super) fn populated(region: &BaselineRegion) -> Result<Mapping, BaselineError> {
        let len = region.bytes / BASELINE_PAGE_SIZE * BASELINE_PAGE_SIZE;
        if len == 0 || len > BASELINE_BYTES_MAX {
            return Err(BaselineError::RegionSize { bytes: region.bytes });
        }
        use rustix::mm::{MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing; no
        // existing memory is affected.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE)
        }
        .map_err(|e| BaselineError::Os { what: "mmap", source: e.into() })?;
        let mapping = Mapping { ptr: ptr.cast(), len };
        if region.transparent_huge_pages {
            // SAFETY: advice on our own mapping.
            unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxHugepage) }
                .map_err(|e| BaselineError::Os { what: "madvise(MADV_HUGEPAGE)", source: e.into() })?;
        }
        for page in 0..mapping.pages() {
            mapping.write_page(page, 1);
        }
        Ok(mapping)
    }

    pub(super) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn pages(&self) -> usize {
        self.len / BASELINE_PAGE_SIZE
    }

    /// Writes one byte at the start of `page` (volatile, so the store is not elided).
    pub(super) fn write_page(&self, page: usize, value: u8) {
        debug_assert!(page < self.pages());
        // SAFETY: in bounds of our mapping; a volatile byte store cannot tear.
        unsafe { self.ptr.add(page * BASELINE_PAGE_SIZE).write_volatile(value) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; nothing refers to it after the measurement.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}
