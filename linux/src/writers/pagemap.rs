//! Whether a page is userfaultfd write-protected right now, from `/proc/self/pagemap`: the
//! writers' exact fault classification (`WriterConfig::classify_faults`).
//!
//! Each virtual 4 KiB page has one 64-bit entry at offset `vaddr / 4096 * 8`; bit 57 is set
//! while the entry is uffd-wp write-protected (the kernel's
//! `Documentation/admin-guide/mm/pagemap.rst`, Linux 5.13+; newer kernels call it "tracked by
//! userfaultfd", which in a write-protect registration still means write-protected). The
//! kernel reports it for present PTEs, PMD-mapped transparent huge pages, hugetlb entries,
//! swap entries and the markers `WP_UNPOPULATED` (anonymous) or shmem/hugetlbfs protection
//! leave in empty entries; `tests/pagemap_wp.rs` checks each backing the tests use. Reading
//! the flags needs no privilege (only the frame numbers do).

use std::fs::File;
use std::os::unix::fs::FileExt;
use thiserror::Error;

/// The pagemap entry bit "pte is uffd-wp write-protected".
pub const PAGEMAP_UFFD_WP_BIT: u32 = 57;
/// Bytes of address space one pagemap entry describes (always the base page, also for huge
/// pages: each 4 KiB part of one has its own entry).
const PAGEMAP_ENTRY_SPAN_BYTES: usize = 4096;
/// Bytes of one pagemap entry.
const PAGEMAP_ENTRY_BYTES: usize = 8;
const PAGEMAP_PATH: &str = "/proc/self/pagemap";

/// Why the pagemap could not be read.
#[derive(Debug, Error)]
pub enum PagemapError {
    #[error("opening {PAGEMAP_PATH}: {0}")]
    Open(#[source] std::io::Error),
    #[error("reading the {PAGEMAP_PATH} entry of address {addr:#x}: {source}")]
    Read {
        addr: usize,
        #[source]
        source: std::io::Error,
    },
}

/// An open `/proc/self/pagemap`; reads are `pread`s, so one reader serves many threads.
#[derive(Debug)]
pub struct PagemapReader {
    file: File,
}

impl PagemapReader {
    /// Opens this process's pagemap (needs `/proc` mounted).
    pub fn open() -> Result<PagemapReader, PagemapError> {
        File::open(PAGEMAP_PATH).map(|file| PagemapReader { file }).map_err(PagemapError::Open)
    }

    /// Whether the page holding `addr` is write-protected by userfaultfd now (one 8-byte
    /// `pread`). A later write to it faults unless the protection is removed first.
    pub fn is_write_protected(&self, addr: usize) -> Result<bool, PagemapError> {
        let mut entry = [0u8; PAGEMAP_ENTRY_BYTES];
        let offset = (addr / PAGEMAP_ENTRY_SPAN_BYTES * PAGEMAP_ENTRY_BYTES) as u64;
        self.file.read_exact_at(&mut entry, offset).map_err(|source| PagemapError::Read { addr, source })?;
        Ok(u64::from_ne_bytes(entry) & (1 << PAGEMAP_UFFD_WP_BIT) != 0)
    }
}
