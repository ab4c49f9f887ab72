//! The memory a snapshot covers: a borrowed view of the caller's mapping ([`Region`]) and, for
//! the command and the tests, mappings this crate creates itself ([`OwnedMapping`]) with each
//! supported backing.
//!
//! The library never takes ownership of the caller's memory: a [`Region`] is a pointer, a
//! length and a description, valid for as long as the caller's SAFETY promise holds.

mod mapping;

pub use mapping::{MapError, OwnedMapping, hugetlb_pages_free};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What backs a region's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backing {
    /// Private anonymous memory, 4 KiB pages.
    Anonymous,
    /// Private anonymous memory with `MADV_HUGEPAGE` (transparent huge pages where the kernel
    /// can; write-protect still works per 4 KiB page, splitting huge pages as needed).
    Thp,
    /// A shared memfd mapping (shmem).
    Memfd,
    /// hugetlbfs pages (2 MiB), `MAP_HUGETLB`.
    Hugetlbfs,
}

impl Backing {
    pub const ALL: [Backing; 4] = [Backing::Anonymous, Backing::Thp, Backing::Memfd, Backing::Hugetlbfs];

    pub fn name(self) -> &'static str {
        match self {
            Backing::Anonymous => "anonymous",
            Backing::Thp => "thp",
            Backing::Memfd => "memfd",
            Backing::Hugetlbfs => "hugetlbfs",
        }
    }

    /// shmem and hugetlbfs are file-backed as far as userfaultfd is concerned.
    pub fn is_file_backed(self) -> bool {
        matches!(self, Backing::Memfd | Backing::Hugetlbfs)
    }

    /// The unit the kernel protects and reports faults in.
    pub fn page_size(self) -> u64 {
        match self {
            Backing::Hugetlbfs => HUGE_PAGE_BYTES,
            _ => BASE_PAGE_BYTES,
        }
    }
}

impl std::str::FromStr for Backing {
    type Err = String;
    fn from_str(s: &str) -> Result<Backing, String> {
        Backing::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown backing {s:?}: expected anonymous, thp, memfd or hugetlbfs"))
    }
}

impl std::fmt::Display for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Base page size on the platforms wpsnap supports (x86-64, aarch64 with 4 KiB pages).
pub const BASE_PAGE_BYTES: u64 = 4096;
/// hugetlbfs page size wpsnap uses (the x86-64 default).
pub const HUGE_PAGE_BYTES: u64 = 2 << 20;

/// A region a caller passed in that cannot be snapshotted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegionError {
    #[error("region start {start:#x} is not aligned to its page size {page_size}")]
    Unaligned { start: usize, page_size: u64 },
    #[error("region length {len} is zero or not a multiple of its page size {page_size}")]
    BadLength { len: usize, page_size: u64 },
}

/// A borrowed view of the caller's mapping. Copy, so the session's threads can each hold one;
/// none of them owns or unmaps the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    start: usize,
    len: usize,
    backing: Backing,
}

impl Region {
    /// The snapshot file header for this region, stamped with the current wall-clock time.
    pub fn snapshot_header(&self, config_json: String) -> wpsnap_format::Header {
        wpsnap_format::Header {
            page_size: self.page_size(),
            page_count: self.page_count(),
            region_len: self.len() as u64,
            backing: self.backing().name().to_string(),
            created_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            config_json,
        }
    }

    /// Describes the caller's mapping `[start, start + len)`.
    ///
    /// # Safety
    /// For as long as any snapshot of this region runs (from `prepare` until `finish`,
    /// `cancel` or drop of the session returns), the caller promises that:
    /// - `[start, start + len)` is one readable and writable mapping of the given backing,
    ///   page-aligned, that stays mapped (no `munmap`, `mremap` or `mmap(MAP_FIXED)` over it;
    ///   `MADV_DONTNEED` is detected and aborts the snapshot, but unmapping may crash the copy);
    /// - nothing else registers it with a userfaultfd.
    ///
    /// Between `prepare` and `arm` nobody reads the userfaultfd, so a `munmap` or
    /// `MADV_DONTNEED` of the region by another thread waits until the session is armed or
    /// dropped (the kernel holds it until the event is read).
    ///
    /// Writers may keep writing to it throughout; that is the point.
    pub unsafe fn from_raw(start: *mut u8, len: usize, backing: Backing) -> Result<Region, RegionError> {
        let start = start as usize;
        let page_size = backing.page_size();
        if !(start as u64).is_multiple_of(page_size) {
            return Err(RegionError::Unaligned { start, page_size });
        }
        if len == 0 || !(len as u64).is_multiple_of(page_size) {
            return Err(RegionError::BadLength { len, page_size });
        }
        Ok(Region { start, len, backing })
    }

    pub fn start(&self) -> usize {
        self.start
    }
    pub fn len(&self) -> usize {
        self.len
    }
    /// Never true: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn backing(&self) -> Backing {
        self.backing
    }
    pub fn page_size(&self) -> u64 {
        self.backing.page_size()
    }
    pub fn page_count(&self) -> u64 {
        self.len as u64 / self.page_size()
    }
    /// Address of the first byte of `page` (which must be below `page_count`).
    pub fn page_addr(&self, page: u64) -> usize {
        debug_assert!(page < self.page_count());
        self.start + (page * self.page_size()) as usize
    }
    /// The page holding `addr`, if it lies in the region.
    pub fn page_of(&self, addr: usize) -> Option<u64> {
        (addr >= self.start && addr < self.start + self.len).then(|| (addr - self.start) as u64 / self.page_size())
    }
    /// Whether `[start, end)` overlaps the region.
    pub fn overlaps(&self, start: usize, end: usize) -> bool {
        start < self.start + self.len && end > self.start
    }

    /// Copies `count` pages from `first` into `out` (which must be exactly that long).
    ///
    /// Only call it for pages that are write-protected (nobody can be writing them) or while
    /// writers are paused: the copy is a plain memory read.
    pub fn copy_pages(&self, first: u64, count: u64, out: &mut [u8]) {
        let bytes = (count * self.page_size()) as usize;
        assert!(first + count <= self.page_count() && out.len() == bytes, "copy outside the region");
        // SAFETY: the range lies inside the region, which `from_raw`'s contract keeps mapped and
        // readable; the pages are write-protected (or writers paused), so no thread writes them
        // during the copy; `out` is a distinct Rust buffer of exactly `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.page_addr(first) as *const u8, out.as_mut_ptr(), bytes) };
    }

    /// Reads one byte of every page, so each has a page-table entry that can be protected
    /// (the fallback when the kernel cannot protect unpopulated pages).
    pub fn touch_every_page(&self) {
        for page in 0..self.page_count() {
            // SAFETY: the address is inside the mapped, readable region; a volatile read so the
            // compiler keeps it.
            unsafe { std::ptr::read_volatile(self.page_addr(page) as *const u8) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_geometry_and_bounds() {
        // SAFETY: the region is only described, never read, in this test.
        let region = unsafe { Region::from_raw(0x20_0000 as *mut u8, 8 * 4096, Backing::Anonymous) }.expect("region");
        assert_eq!(region.page_count(), 8);
        assert_eq!(region.page_of(0x20_0000 + 4096 * 3 + 17), Some(3));
        assert_eq!(region.page_of(0x20_0000 + 8 * 4096), None);
        assert!(region.overlaps(0x20_0000 + 8 * 4096 - 1, 0x30_0000));
        assert!(!region.overlaps(0x10_0000, 0x20_0000));
        // SAFETY: as above.
        let unaligned = unsafe { Region::from_raw(0x20_0001 as *mut u8, 4096, Backing::Anonymous) };
        assert!(matches!(unaligned, Err(RegionError::Unaligned { .. })));
        // SAFETY: as above.
        let bad_len = unsafe { Region::from_raw(0x20_0000 as *mut u8, 4096, Backing::Hugetlbfs) };
        assert!(matches!(bad_len, Err(RegionError::BadLength { .. })));
        assert_eq!("memfd".parse::<Backing>(), Ok(Backing::Memfd));
        assert!("floppy".parse::<Backing>().is_err());
    }
}
