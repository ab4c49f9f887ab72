//! Mappings wpsnap creates for its own command and tests (a library user brings their own).

use super::{Backing, HUGE_PAGE_BYTES, Region};
use crate::errno::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use thiserror::Error;

/// Largest mapping wpsnap creates for itself (64 GiB).
pub const MAPPING_BYTES_MAX: usize = 64 << 30;

#[derive(Debug, Error)]
pub enum MapError {
    #[error("mapping size {len} is zero, above {MAPPING_BYTES_MAX} bytes or not a multiple of {page_size}")]
    BadSize { len: usize, page_size: u64 },
    #[error("mmap of {len} bytes ({backing}): {source}")]
    Mmap { len: usize, backing: Backing, source: Errno },
    #[error("memfd_create / ftruncate: {source}")]
    Memfd { source: Errno },
    #[error("madvise(MADV_HUGEPAGE): {source}")]
    Madvise { source: Errno },
    #[error("hugetlbfs needs {needed} free 2 MiB huge pages, the machine has {free} (set /proc/sys/vm/nr_hugepages)")]
    NoHugePages { needed: u64, free: u64 },
}

/// A mapping owned by this value and unmapped when it is dropped.
#[derive(Debug)]
pub struct OwnedMapping {
    ptr: *mut u8,
    len: usize,
    backing: Backing,
    /// The memfd of a shared backing, kept open so the file can be found without
    /// `/proc/self/map_files` (see `region::contract`).
    fd: Option<rustix::fd::OwnedFd>,
}

// SAFETY: the mapping is plain memory; which thread unmaps it does not matter.
unsafe impl Send for OwnedMapping {}
// SAFETY: shared access only hands out raw addresses; users synchronise their own writes.
unsafe impl Sync for OwnedMapping {}

impl OwnedMapping {
    /// Maps `len` bytes of fresh zeroed memory with `backing`.
    pub fn new(len: usize, backing: Backing) -> Result<OwnedMapping, MapError> {
        let page_size = backing.page_size();
        if len == 0 || len > MAPPING_BYTES_MAX || !(len as u64).is_multiple_of(page_size) {
            return Err(MapError::BadSize { len, page_size });
        }
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        let mut fd = None;
        let ptr = match backing {
            Backing::Anonymous | Backing::Thp => {
                // SAFETY: a fresh anonymous mapping at an address the kernel picks.
                let p = unsafe { rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, prot, MapFlags::PRIVATE) }
                    .map_err(|e| MapError::Mmap { len, backing, source: e.into() })?;
                // Anonymous means 4 KiB pages even where THP is "always"; Thp asks for huge ones.
                let advice = if backing == Backing::Thp {
                    rustix::mm::Advice::LinuxHugepage
                } else {
                    rustix::mm::Advice::LinuxNoHugepage
                };
                // SAFETY: advice on the mapping just created.
                if let Err(source) = unsafe { rustix::mm::madvise(p, len, advice) } {
                    // SAFETY: unmapping what we mapped above.
                    let _ = unsafe { rustix::mm::munmap(p, len) };
                    return Err(MapError::Madvise { source: source.into() });
                }
                p
            }
            Backing::Memfd | Backing::HugetlbfsShared => {
                // Sealing allowed, so a snapshot may seal it (ContractWatch::seal).
                let mut flags = rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING;
                if backing == Backing::HugetlbfsShared {
                    check_huge_pages(len)?;
                    flags |= rustix::fs::MemfdFlags::HUGETLB;
                }
                let memfd = rustix::fs::memfd_create("wpsnap-region", flags)
                    .map_err(|e| MapError::Memfd { source: e.into() })?;
                rustix::fs::ftruncate(&memfd, len as u64).map_err(|e| MapError::Memfd { source: e.into() })?;
                // SAFETY: a fresh shared mapping of the memfd at an address the kernel picks.
                let p = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, &memfd, 0) }
                    .map_err(|e| MapError::Mmap { len, backing, source: e.into() })?;
                fd = Some(memfd);
                p
            }
            Backing::Hugetlbfs => {
                check_huge_pages(len)?;
                // MAP_HUGETLB with the default (2 MiB) huge page size.
                // SAFETY: a fresh anonymous huge-page mapping at an address the kernel picks.
                unsafe {
                    rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, prot, MapFlags::PRIVATE | MapFlags::HUGETLB)
                }
                .map_err(|e| MapError::Mmap { len, backing, source: e.into() })?
            }
        };
        Ok(OwnedMapping { ptr: ptr.cast(), len, backing, fd })
    }

    /// The region this mapping covers, borrowing the mapping: the mapping cannot be dropped
    /// (unmapped) while the region, or a snapshot session or writer set over it, is alive.
    pub fn region(&self) -> Region<'_> {
        // The backing is known (this value made the mapping); no need to ask the kernel.
        Region::checked_geometry(self.ptr as usize, self.len, self.backing).unwrap_or_else(|e| {
            // mmap returns page-aligned memory of a length checked in `new`.
            unreachable!("mapping is aligned and sized: {e}")
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn backing(&self) -> Backing {
        self.backing
    }
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// Writes the initial content of the test and benchmark regions, page by page, as `plan`
    /// says for each page index: [`PageFill::Untouched`] leaves it never touched (so it is
    /// unpopulated when a snapshot starts), [`PageFill::Pattern`] writes [`fill_byte`] over
    /// the page from byte `skip_prefix_bytes` on (the synthetic writers stamp the first 8
    /// bytes), [`PageFill::Touch`] writes that byte once at `skip_prefix_bytes` (populated,
    /// not all zero). `&mut self`: no region of this mapping, and so no snapshot or writer, is
    /// alive meanwhile. [`PageFill::Stop`] ends the fill there (a cancelled command); returns
    /// whether every page was visited.
    pub fn fill(&mut self, skip_prefix_bytes: usize, mut plan: impl FnMut(u64) -> PageFill) -> bool {
        let page_size = self.backing.page_size() as usize;
        let skip = skip_prefix_bytes.min(page_size - 1);
        for page in 0..(self.len / page_size) as u64 {
            let at = page as usize * page_size + skip;
            let byte = fill_byte(page);
            // SAFETY: `at .. page end` lies inside the mapping this value owns, and `&mut self`
            // guarantees no other user (region, snapshot, writer) exists.
            unsafe {
                match plan(page) {
                    PageFill::Untouched => {}
                    PageFill::Pattern => std::ptr::write_bytes(self.ptr.add(at), byte, page_size - skip),
                    PageFill::Touch => self.ptr.add(at).write_volatile(byte),
                    PageFill::Stop => return false,
                }
            }
        }
        true
    }

    /// The memfd behind a shared backing (`None` for private ones).
    pub fn memfd(&self) -> Option<rustix::fd::BorrowedFd<'_>> {
        use rustix::fd::AsFd;
        self.fd.as_ref().map(|fd| fd.as_fd())
    }
}

impl Drop for OwnedMapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and nothing else refers to it any more.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// What [`OwnedMapping::fill`] does to one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFill {
    /// Never touched: unpopulated when a snapshot starts.
    Untouched,
    /// [`fill_byte`] over the page (after the skipped prefix).
    Pattern,
    /// [`fill_byte`] once: populated, not all zero.
    Touch,
    /// Stop filling here (the rest stays untouched).
    Stop,
}

/// The byte [`OwnedMapping::fill`] writes into page `page`: never zero, different for
/// neighbouring pages.
pub fn fill_byte(page: u64) -> u8 {
    (page % 251) as u8 + 1
}

/// Refuses a hugetlbfs mapping the machine has too few free huge pages for.
fn check_huge_pages(len: usize) -> Result<(), MapError> {
    let needed = len as u64 / HUGE_PAGE_BYTES;
    let free = hugetlb_pages_free();
    if free < needed {
        return Err(MapError::NoHugePages { needed, free });
    }
    Ok(())
}

/// Free 2 MiB huge pages (`HugePages_Free` in /proc/meminfo); 0 when unknown.
pub fn hugetlb_pages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
}
