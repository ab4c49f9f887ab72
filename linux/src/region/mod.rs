//! The memory a snapshot covers: a borrowed view of the caller's mapping ([`Region`]) and, for
//! the command and the tests, mappings this crate creates itself ([`OwnedMapping`]) with each
//! supported backing.
//!
//! The library never takes ownership of the caller's memory: a [`Region`] is a pointer, a
//! length and a description, valid for as long as the caller's SAFETY promise holds.

pub mod contract;
mod mapping;
mod set;
pub mod smaps;

pub use contract::{BackingStamp, ContractError, ContractWatch, ContractWatches};
pub use mapping::{MapError, OwnedMapping, PageFill, fill_byte, hugetlb_pages_free};
pub use set::{REGIONS_MAX, Regions};
pub use smaps::DetectedBacking;

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
    /// Private hugetlbfs pages (2 MiB), `MAP_HUGETLB | MAP_PRIVATE`.
    Hugetlbfs,
    /// Shared hugetlbfs pages (2 MiB): a `MFD_HUGETLB` memfd or a hugetlbfs file mapped
    /// `MAP_SHARED` (VM memory often is). File-backed: the contract's file checks apply.
    HugetlbfsShared,
}

impl Backing {
    pub const ALL: [Backing; 5] =
        [Backing::Anonymous, Backing::Thp, Backing::Memfd, Backing::Hugetlbfs, Backing::HugetlbfsShared];

    pub fn name(self) -> &'static str {
        match self {
            Backing::Anonymous => "anonymous",
            Backing::Thp => "thp",
            Backing::Memfd => "memfd",
            Backing::Hugetlbfs => "hugetlbfs",
            Backing::HugetlbfsShared => "hugetlbfs-shared",
        }
    }

    /// shmem and hugetlbfs are file-backed as far as userfaultfd is concerned.
    pub fn is_file_backed(self) -> bool {
        matches!(self, Backing::Memfd | Backing::Hugetlbfs | Backing::HugetlbfsShared)
    }

    /// Shared with a file others can write through (`pwrite`, `fallocate`, another mapping):
    /// the snapshot contract's file checks apply (see [`contract`]).
    pub fn is_shared_file(self) -> bool {
        matches!(self, Backing::Memfd | Backing::HugetlbfsShared)
    }

    /// The unit the kernel protects and reports faults in.
    pub fn page_size(self) -> u64 {
        match self {
            Backing::Hugetlbfs | Backing::HugetlbfsShared => HUGE_PAGE_BYTES,
            Backing::Anonymous | Backing::Thp | Backing::Memfd => BASE_PAGE_BYTES,
        }
    }
}

impl std::str::FromStr for Backing {
    type Err = String;
    fn from_str(s: &str) -> Result<Backing, String> {
        Backing::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            format!("unknown backing {s:?}: expected anonymous, thp, memfd, hugetlbfs or hugetlbfs-shared")
        })
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
#[derive(Debug, Error)]
pub enum RegionError {
    #[error("region start {start:#x} is not aligned to its page size {page_size}")]
    Unaligned { start: usize, page_size: u64 },
    #[error("region length {len} is zero or not a multiple of its page size {page_size}")]
    BadLength { len: usize, page_size: u64 },
    #[error("reading {path}: {source}")]
    ReadMappings {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} could not be parsed: {source}")]
    ParseMappings {
        path: &'static str,
        #[source]
        source: smaps::ParseError,
    },
    #[error("the region is not one mapping of one backing: {source}")]
    Range {
        #[source]
        source: smaps::RangeError,
    },
    #[error(
        "the region at {start:#x} is {detected}, which userfaultfd write-protection cannot snapshot (it supports private anonymous memory, shmem/memfd and hugetlbfs with 2 MiB pages)"
    )]
    Unsupported { start: usize, detected: DetectedBacking },
    #[error("the region at {start:#x} was declared {declared} but the kernel says it is {detected}")]
    BackingMismatch { start: usize, declared: Backing, detected: DetectedBacking },
    #[error("a session covers 1 to {max} regions, not {count}")]
    RegionCount { count: usize, max: usize },
    #[error("the regions of one session share a page size: {first} bytes, but the region at {start:#x} has {other}")]
    MixedPageSizes { first: u64, other: u64, start: usize },
    #[error("the regions at {first:#x} and {second:#x} overlap")]
    Overlap { first: usize, second: usize },
}

/// Where the kernel lists this process's mappings with their backing details.
pub const SMAPS_PATH: &str = "/proc/self/smaps";

/// The mappings of this process, from [`SMAPS_PATH`].
pub fn read_mappings() -> Result<Vec<smaps::Vma>, RegionError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(SMAPS_PATH)
        .and_then(|f| f.take(smaps::SMAPS_BYTES_MAX).read_to_string(&mut text))
        .map_err(|source| RegionError::ReadMappings { path: SMAPS_PATH, source })?;
    smaps::parse(&text).map_err(|source| RegionError::ParseMappings { path: SMAPS_PATH, source })
}

/// tmpfs and hugetlbfs `statfs` magic numbers (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Which file system a path-backed mapping's file is on: `statfs` of the mapping's
/// `/proc/self/map_files` entry (needs CAP_CHECKPOINT_RESTORE or root), else of its path.
// `f_type`'s width differs between architectures; the cast is needed on some of them.
#[allow(clippy::unnecessary_cast)]
fn file_system_of(vma: &smaps::Vma) -> smaps::FileSystem {
    let map_file = format!("/proc/self/map_files/{:x}-{:x}", vma.start, vma.end);
    let fs = rustix::fs::statfs(map_file.as_str()).or_else(|_| rustix::fs::statfs(vma.path.as_str()));
    match fs {
        Ok(fs) if fs.f_type as i64 == TMPFS_MAGIC => smaps::FileSystem::Tmpfs,
        Ok(fs) if fs.f_type as i64 == HUGETLBFS_MAGIC => smaps::FileSystem::Hugetlbfs,
        _ => smaps::FileSystem::Other,
    }
}

/// Whether `path` is on tmpfs.
#[allow(clippy::unnecessary_cast)]
pub fn is_on_tmpfs(path: &std::path::Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|fs| fs.f_type as i64 == TMPFS_MAGIC)
}

/// What the kernel says backs `[start, start + len)` of this process.
pub fn detect_backing(start: usize, len: usize) -> Result<DetectedBacking, RegionError> {
    let vmas = read_mappings()?;
    let end = start.saturating_add(len);
    smaps::detect(&vmas, start, end, file_system_of).map_err(|source| RegionError::Range { source })
}

/// A view of the caller's mapping that borrows it for `'a`: a `Region` made from an
/// [`OwnedMapping`] cannot outlive it, and a session over the region cannot outlive the
/// region's borrow, so reading the memory after it was unmapped does not compile:
///
/// ```compile_fail,E0505
/// use wpsnap_linux::region::{Backing, OwnedMapping};
/// let mapping = OwnedMapping::new(4096, Backing::Anonymous).expect("mapping");
/// let region = mapping.region();
/// drop(mapping); // unmaps: `region` still borrows it
/// let mut page = vec![0u8; 4096];
/// region.copy_pages(0, 1, &mut page);
/// ```
///
/// Nor can a snapshot session over it:
///
/// ```compile_fail,E0505
/// use wpsnap_linux::region::{Backing, OwnedMapping};
/// use wpsnap_linux::snapshot::{NoWriters, Snapshot};
/// let mapping = OwnedMapping::new(4096, Backing::Anonymous).expect("mapping");
/// let (prepared, _bytes) = Snapshot::builder(mapping.region()).prepare_writer(Vec::new()).expect("prepare");
/// drop(mapping); // the session's threads would read unmapped memory
/// let _ = prepared.arm(|| NoWriters).and_then(|running| running.finish());
/// ```
///
/// The same two without the `drop` compile:
///
/// ```no_run
/// use wpsnap_linux::region::{Backing, OwnedMapping};
/// use wpsnap_linux::snapshot::{NoWriters, Snapshot};
/// let mapping = OwnedMapping::new(4096, Backing::Anonymous).expect("mapping");
/// let region = mapping.region();
/// let mut page = vec![0u8; 4096];
/// region.copy_pages(0, 1, &mut page);
/// let (prepared, _bytes) = Snapshot::builder(mapping.region()).prepare_writer(Vec::new()).expect("prepare");
/// let _ = prepared.arm(|| NoWriters).and_then(|running| running.finish());
/// drop(mapping);
/// ```
///
/// Copy, so a caller can hand it around; none of the copies owns or unmaps the memory.
/// [`Region::from_raw`] and [`Region::detect`] describe memory the caller manages: there the
/// lifetime is the caller's promise (their `# Safety`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region<'a> {
    start: usize,
    len: usize,
    backing: Backing,
    _mapping: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Region<'a> {
    /// This region's entry in a snapshot file's region table.
    pub fn table_entry(&self) -> wpsnap_format::RegionEntry {
        wpsnap_format::RegionEntry {
            start: self.start as u64,
            len: self.len as u64,
            page_size: self.page_size(),
            backing: self.backing().name().to_string(),
        }
    }

    /// The snapshot file header for this region, stamped with the current wall-clock time.
    pub fn snapshot_header(&self, config_json: String) -> wpsnap_format::Header {
        wpsnap_format::Header {
            regions: vec![self.table_entry()],
            created_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            config_json,
        }
    }

    /// Describes the caller's mapping `[start, start + len)`, declared to be of `backing`.
    ///
    /// The declaration is checked against what the kernel reports (`/proc/self/smaps`): a
    /// range that is not mapped, spans different backings, is a regular file (which
    /// userfaultfd write-protection does not support), or is another backing than declared
    /// is refused, naming both. [`Region::detect`] takes the backing from the kernel instead.
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
    pub unsafe fn from_raw(start: *mut u8, len: usize, backing: Backing) -> Result<Region<'a>, RegionError> {
        let region = Region::checked_geometry(start as usize, len, backing)?;
        region.check_backing()?;
        Ok(region)
    }

    /// Describes the caller's mapping `[start, start + len)` with the backing the kernel
    /// reports for it.
    ///
    /// # Safety
    /// As for [`Region::from_raw`].
    pub unsafe fn detect(start: *mut u8, len: usize) -> Result<Region<'a>, RegionError> {
        let start = start as usize;
        let detected = detect_backing(start, len)?;
        let backing = detected.backing().ok_or(RegionError::Unsupported { start, detected })?;
        Region::checked_geometry(start, len, backing)
    }

    /// Checks the declared backing against the kernel's view now (the session checks again
    /// at `prepare`: the mapping may have changed since the region was described).
    pub fn check_backing(&self) -> Result<DetectedBacking, RegionError> {
        let detected = detect_backing(self.start, self.len)?;
        match detected.backing() {
            None => Err(RegionError::Unsupported { start: self.start, detected }),
            Some(b) if b != self.backing => {
                Err(RegionError::BackingMismatch { start: self.start, declared: self.backing, detected })
            }
            Some(_) => Ok(detected),
        }
    }

    /// Alignment and length checks only.
    pub(crate) fn checked_geometry(start: usize, len: usize, backing: Backing) -> Result<Region<'a>, RegionError> {
        let page_size = backing.page_size();
        if !(start as u64).is_multiple_of(page_size) {
            return Err(RegionError::Unaligned { start, page_size });
        }
        if len == 0 || !(len as u64).is_multiple_of(page_size) {
            return Err(RegionError::BadLength { len, page_size });
        }
        Ok(Region { start, len, backing, _mapping: std::marker::PhantomData })
    }

    /// The same region with its borrow erased, for the session's and the writers' threads,
    /// which `'static` spawning requires.
    ///
    /// # Safety
    /// The caller keeps the original borrow alive (by holding a value that carries `'a`)
    /// until every user of the returned copy is done, and joins those threads in its `Drop`.
    /// The remaining hazard is `std::mem::forget` of that value: it skips the join while the
    /// threads keep reading (docs/embedding.md, "Soundness").
    pub(crate) unsafe fn erase(self) -> Region<'static> {
        Region { start: self.start, len: self.len, backing: self.backing, _mapping: std::marker::PhantomData }
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

    /// The first of pages `first .. first + count` whose memory is not in the page cache
    /// (`mincore`), if any. For a shared region that was populated at `prepare`, a page that is
    /// gone was discarded behind the mapping's back (`fallocate(PUNCH_HOLE)` on the file).
    pub fn first_absent(&self, first: u64, count: u64) -> Result<Option<u64>, crate::errno::Errno> {
        let bytes = (count * self.page_size()) as usize;
        assert!(first + count <= self.page_count(), "residency check outside the region");
        // mincore reports per base page, whatever the mapping's page size.
        let mut resident = vec![0u8; bytes.div_ceil(BASE_PAGE_BYTES as usize)];
        // SAFETY: the range lies inside the region (checked above), which `from_raw`'s contract
        // keeps mapped; `resident` has one byte per base page of it, as mincore writes.
        let rc = unsafe { libc::mincore(self.page_addr(first) as *mut libc::c_void, bytes, resident.as_mut_ptr()) };
        if rc != 0 {
            let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
            return Err(crate::errno::Errno::from_code(code));
        }
        let per_page = (self.page_size() / BASE_PAGE_BYTES) as usize;
        Ok(resident.iter().position(|b| b & 1 == 0).map(|i| first + (i / per_page) as u64))
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
        // Described only, never read: geometry without the kernel check.
        let region = Region::checked_geometry(0x20_0000, 8 * 4096, Backing::Anonymous).expect("region");
        assert_eq!(region.page_count(), 8);
        assert_eq!(region.page_of(0x20_0000 + 4096 * 3 + 17), Some(3));
        assert_eq!(region.page_of(0x20_0000 + 8 * 4096), None);
        assert!(region.overlaps(0x20_0000 + 8 * 4096 - 1, 0x30_0000));
        assert!(!region.overlaps(0x10_0000, 0x20_0000));
        let unaligned = Region::checked_geometry(0x20_0001, 4096, Backing::Anonymous);
        assert!(matches!(unaligned, Err(RegionError::Unaligned { .. })));
        let bad_len = Region::checked_geometry(0x20_0000, 4096, Backing::Hugetlbfs);
        assert!(matches!(bad_len, Err(RegionError::BadLength { .. })));
        assert_eq!("memfd".parse::<Backing>(), Ok(Backing::Memfd));
        assert!("floppy".parse::<Backing>().is_err());
    }
}
