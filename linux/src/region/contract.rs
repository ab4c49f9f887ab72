//! The snapshot contract, enforced where the kernel lets us.
//!
//! userfaultfd write-protection guards the page tables of the registered mapping. A snapshot
//! therefore covers every write that goes through those page tables after the instant:
//! stores by any thread, and writes the kernel makes on the process's behalf through the
//! mapping (`copy_to_user`/GUP: `read(2)` into the region, `process_vm_writev`, `O_DIRECT`
//! reads and other I/O *started after* `arm`), which fault and wait like a store.
//!
//! It cannot cover writes that reach the memory without those page tables:
//! - through another mapping of the same file (a second `mmap` of the memfd, in this process
//!   or another one);
//! - through the file itself: `pwrite`/`write` to the memfd, `fallocate` (`PUNCH_HOLE`
//!   discards pages: the image would hold zeros), `ftruncate`;
//! - I/O started before the pause that completes after it (`O_DIRECT`, AIO, io_uring): its
//!   pages were pinned before the protection;
//! - long-term pinned pages (io_uring fixed buffers, RDMA memory regions, VFIO DMA), written
//!   by devices or the kernel without a fault.
//!
//! What is enforced ([`ContractWatch`]): at `prepare`, the backing is what was declared, and
//! the file behind a shared region is mapped nowhere else in this process (the session also
//! populates every page of a shared region before the instant, so that nothing the snapshot
//! itself does allocates file blocks); at the instant, the file's size and allocated blocks are
//! recorded; at `finish`, they must be unchanged and the file still mapped nowhere else, or the
//! snapshot fails and nothing is published. That catches `ftruncate`, `fallocate`
//! (`PUNCH_HOLE` frees blocks) and a write into a hole, and a second mapping still present.
//! Because the copy's own read would refill a punched hole (with zeros), the session also
//! checks that pages are present right before it copies them ([`ContractError::Discarded`]).
//!
//! Not detectable, and so the caller's promise: a `pwrite` into pages that already exist (it
//! changes neither size nor blocks; mtime and ctime change, but stores through the registered
//! mapping change them too — a write fault on a shared shmem page updates the file times — so
//! they cannot tell a bypass from a legitimate store); a second mapping that came and went
//! during the snapshot; mappings in other processes; the I/O and pinned pages above.

use super::smaps::{self, Vma};
use super::{DetectedBacking, Region, RegionError};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use thiserror::Error;

/// Where the kernel lists this process's mappings (the header lines only: cheap to read).
pub const MAPS_PATH: &str = "/proc/self/maps";

/// Open descriptors scanned at most when looking for the backing file's descriptor.
const FDS_SCANNED_MAX: usize = 4096;

/// The snapshot contract was, or would be, broken.
#[derive(Debug, Error)]
pub enum ContractError {
    #[error(transparent)]
    Region(#[from] RegionError),
    #[error(
        "the region's backing file {path} (device {major}:{minor}, inode {inode}) is also mapped at {other_start:#x}..{other_end:#x} in this process; writes through that mapping bypass write-protection, so the snapshot is refused (unmap it, or snapshot that mapping instead)"
    )]
    MappedElsewhere { path: String, major: u32, minor: u32, inode: u64, other_start: usize, other_end: usize },
    #[error(
        "the region's backing file {path} was mapped a second time during the snapshot (at {other_start:#x}..{other_end:#x}); writes through it bypass write-protection, so the snapshot was abandoned"
    )]
    MappedDuringSnapshot { path: String, other_start: usize, other_end: usize },
    #[error(
        "the region's backing file {path} changed during the snapshot ({field}: {at_instant} at the instant, {at_end} at the end); a write bypassed write-protection (fallocate, ftruncate, pwrite into a hole, ...), so the image is not the region at one instant and was abandoned"
    )]
    FileChanged { path: String, field: &'static str, at_instant: u64, at_end: u64 },
    #[error(
        "page {page} (at {addr:#x}) of the region's backing file was discarded during the snapshot (fallocate PUNCH_HOLE or similar, behind the mapping's back); its saved content would be zeros, so the snapshot was abandoned"
    )]
    Discarded { page: u64, addr: usize },
    #[error("checking which pages of the region are present (mincore): {source}")]
    Residency {
        #[source]
        source: crate::errno::Errno,
    },
    #[error("stat of the region's backing file {path}: {source}")]
    Stat {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot seal the region's backing file {path} against writes outside the mapping: {reason}")]
    SealUnavailable { path: String, reason: &'static str },
    #[error("sealing the region's backing file {path} (F_ADD_SEALS): {source}")]
    Seal {
        path: String,
        #[source]
        source: crate::errno::Errno,
    },
    #[error("reading {MAPS_PATH}: {source}")]
    ReadMaps {
        #[source]
        source: std::io::Error,
    },
    #[error("{MAPS_PATH} could not be parsed: {source}")]
    ParseMaps {
        #[source]
        source: smaps::ParseError,
    },
}

/// What a file's metadata says about its content, compared between the instant and the end.
/// Only fields that stores through the registered mapping never change (see the module doc
/// for why mtime and ctime are not among them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackingStamp {
    pub size: u64,
    /// 512-byte blocks allocated (`PUNCH_HOLE` lowers it, writing into a hole raises it).
    pub blocks: u64,
}

impl BackingStamp {
    fn of(file: &File) -> std::io::Result<BackingStamp> {
        let m = file.metadata()?;
        Ok(BackingStamp { size: m.size(), blocks: m.blocks() })
    }

    /// The first field that differs, with both values.
    fn first_difference(&self, end: &BackingStamp) -> Option<(&'static str, u64, u64)> {
        [("size", self.size, end.size), ("blocks", self.blocks, end.blocks)].into_iter().find(|(_, a, b)| a != b)
    }
}

/// The file behind a shared region.
#[derive(Debug)]
struct WatchedFile {
    dev: (u32, u32),
    inode: u64,
    path: String,
    /// A descriptor of the file, if one could be had (`/proc/self/map_files`, which needs
    /// CAP_CHECKPOINT_RESTORE or root, else an open descriptor of this process).
    handle: Option<File>,
    at_instant: Option<BackingStamp>,
}

/// The contract checks of one session: made at `prepare`, stamped at the instant, checked at
/// `finish`.
#[derive(Debug)]
pub struct ContractWatch {
    start: usize,
    end: usize,
    detected: DetectedBacking,
    file: Option<WatchedFile>,
}

impl ContractWatch {
    /// Checks the declared backing against the kernel's view and, for a shared region,
    /// refuses when its file is mapped anywhere else in this process.
    pub fn at_prepare(region: &Region) -> Result<ContractWatch, ContractError> {
        let detected = region.check_backing()?;
        let (start, end) = (region.start(), region.start() + region.len());
        let mut watch = ContractWatch { start, end, detected, file: None };
        if !region.backing().is_shared_file() {
            return Ok(watch);
        }
        let vmas = read_maps()?;
        let Some(own) = vmas.iter().find(|v| v.start <= start && v.end > start && v.has_file()) else {
            return Ok(watch);
        };
        if let Some(other) = mapped_elsewhere(&vmas, own, start, end) {
            return Err(ContractError::MappedElsewhere {
                path: own.path.clone(),
                major: own.dev.0,
                minor: own.dev.1,
                inode: own.inode,
                other_start: other.start,
                other_end: other.end,
            });
        }
        watch.file = Some(WatchedFile {
            dev: own.dev,
            inode: own.inode,
            path: own.path.clone(),
            handle: open_backing_file(own),
            at_instant: None,
        });
        Ok(watch)
    }

    /// What the kernel says backs the region.
    pub fn detected(&self) -> &DetectedBacking {
        &self.detected
    }

    /// Whether the backing file's metadata is watched (a shared region whose file could be
    /// opened). `None` for private memory, which has no file to write around the mapping.
    pub fn file_watched(&self) -> Option<bool> {
        self.file.as_ref().map(|f| f.handle.is_some())
    }

    /// Enforces the contract instead of detecting it, **permanently**: adds the seals
    /// `F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW` to the backing memfd. From then on
    /// the file can be changed only through writable mappings that already exist (the
    /// region's): `write`/`pwrite`, `fallocate` (`PUNCH_HOLE`), `ftruncate` and new writable
    /// mappings fail with `EPERM`, for this process and any other, forever (seals cannot be
    /// removed). The memfd must have been created with `MFD_ALLOW_SEALING`.
    pub fn seal(&self) -> Result<(), ContractError> {
        let Some(file) = &self.file else {
            return Err(ContractError::SealUnavailable {
                path: String::new(),
                reason: "the region is private memory, which has no file to seal",
            });
        };
        let Some(handle) = &file.handle else {
            return Err(ContractError::SealUnavailable {
                path: file.path.clone(),
                reason: "no descriptor of the file could be opened",
            });
        };
        let seals = rustix::fs::SealFlags::FUTURE_WRITE | rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW;
        rustix::fs::fcntl_add_seals(handle, seals)
            .map_err(|e| ContractError::Seal { path: file.path.clone(), source: e.into() })
    }

    /// Records the backing file's metadata. Call it at the instant (inside the pause, after
    /// the protect): one `fstat`.
    pub fn at_instant(&mut self) -> Result<(), ContractError> {
        if let Some(file) = &mut self.file
            && let Some(handle) = &file.handle
        {
            let stamp =
                BackingStamp::of(handle).map_err(|source| ContractError::Stat { path: file.path.clone(), source })?;
            file.at_instant = Some(stamp);
        }
        Ok(())
    }

    /// After every page was saved, before anything is published: the file must be unchanged
    /// since the instant and still mapped nowhere else.
    pub fn at_finish(&self) -> Result<(), ContractError> {
        let Some(file) = &self.file else { return Ok(()) };
        if let (Some(handle), Some(at_instant)) = (&file.handle, &file.at_instant) {
            let at_end =
                BackingStamp::of(handle).map_err(|source| ContractError::Stat { path: file.path.clone(), source })?;
            if let Some((field, before, after)) = at_instant.first_difference(&at_end) {
                return Err(ContractError::FileChanged {
                    path: file.path.clone(),
                    field,
                    at_instant: before,
                    at_end: after,
                });
            }
        }
        let vmas = read_maps()?;
        let own = Vma { dev: file.dev, inode: file.inode, ..Vma::default() };
        if let Some(other) = mapped_elsewhere(&vmas, &own, self.start, self.end) {
            return Err(ContractError::MappedDuringSnapshot {
                path: file.path.clone(),
                other_start: other.start,
                other_end: other.end,
            });
        }
        Ok(())
    }
}

/// The contract checks of a session over several regions, one [`ContractWatch`] each.
#[derive(Debug)]
pub struct ContractWatches(Vec<ContractWatch>);

impl ContractWatches {
    /// [`ContractWatch::at_prepare`] for each region.
    pub fn at_prepare(regions: &super::Regions<'_>) -> Result<ContractWatches, ContractError> {
        regions.iter().map(ContractWatch::at_prepare).collect::<Result<Vec<_>, _>>().map(ContractWatches)
    }
    /// Per region, whether its backing file is watched (a shared region whose file could be
    /// opened).
    pub fn watched(&self) -> Vec<bool> {
        self.0.iter().map(|w| w.file_watched() == Some(true)).collect()
    }
    /// [`ContractWatch::seal`] for every shared region; refused if none is shared.
    pub fn seal(&self) -> Result<(), ContractError> {
        let shared: Vec<&ContractWatch> = self.0.iter().filter(|w| w.file.is_some()).collect();
        if shared.is_empty() {
            return Err(ContractError::SealUnavailable {
                path: String::new(),
                reason: "no region is shared memory with a file to seal",
            });
        }
        shared.iter().try_for_each(|w| w.seal())
    }
    /// [`ContractWatch::at_instant`] for each region.
    pub fn at_instant(&mut self) -> Result<(), ContractError> {
        self.0.iter_mut().try_for_each(ContractWatch::at_instant)
    }
    /// [`ContractWatch::at_finish`] for each region.
    pub fn at_finish(&self) -> Result<(), ContractError> {
        self.0.iter().try_for_each(ContractWatch::at_finish)
    }
}

/// A mapping outside `[start, end)` of the same file as `own`.
fn mapped_elsewhere<'a>(vmas: &'a [Vma], own: &Vma, start: usize, end: usize) -> Option<&'a Vma> {
    vmas.iter().find(|v| v.dev == own.dev && v.inode == own.inode && (v.end <= start || v.start >= end))
}

fn read_maps() -> Result<Vec<Vma>, ContractError> {
    let text = std::fs::read_to_string(MAPS_PATH).map_err(|source| ContractError::ReadMaps { source })?;
    smaps::parse(&text).map_err(|source| ContractError::ParseMaps { source })
}

/// `major:minor` of an encoded `dev_t` (glibc's `gnu_dev_major`/`gnu_dev_minor`).
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// A descriptor of the file `vma` maps: its `/proc/self/map_files` entry, else one of this
/// process's open descriptors of the same file.
fn open_backing_file(vma: &Vma) -> Option<File> {
    // Read-write when allowed: adding seals needs a writable descriptor.
    let open = |path: &std::path::Path| {
        std::fs::OpenOptions::new().read(true).write(true).open(path).or_else(|_| File::open(path))
    };
    let map_file = format!("/proc/self/map_files/{:x}-{:x}", vma.start, vma.end);
    if let Ok(file) = open(std::path::Path::new(&map_file)) {
        return Some(file);
    }
    let fds = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in fds.flatten().take(FDS_SCANNED_MAX) {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.ino() == vma.inode && split_dev(meta.dev()) == vma.dev {
            return open(&path).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_other_mappings_of_the_same_file_only_outside_the_region() {
        let text = "\
7f0000000000-7f0000100000 rw-s 00000000 00:01 25 /memfd:a (deleted)
7f0000100000-7f0000200000 rw-s 00100000 00:01 25 /memfd:a (deleted)
7f0000300000-7f0000400000 rw-s 00000000 00:01 26 /memfd:b (deleted)
";
        let vmas = smaps::parse(text).expect("parse");
        let own = &vmas[0];
        assert!(mapped_elsewhere(&vmas, own, 0x7f00_0000_0000, 0x7f00_0020_0000).is_none());
        let other = mapped_elsewhere(&vmas, own, 0x7f00_0000_0000, 0x7f00_0010_0000).expect("second mapping");
        assert_eq!(other.start, 0x7f00_0010_0000);
    }

    #[test]
    fn dev_numbers_split_like_glibc() {
        assert_eq!(split_dev(0x801), (8, 1));
        assert_eq!(split_dev((259 << 8) | 3), (259, 3));
        // minor above 255 lives in bits 20..32.
        assert_eq!(split_dev((1 << 20) | 0x22), (0, 0x122));
    }

    #[test]
    fn stamps_name_the_first_difference() {
        let a = BackingStamp { size: 10, blocks: 8 };
        assert_eq!(a.first_difference(&a), None);
        assert_eq!(a.first_difference(&BackingStamp { blocks: 0, ..a }), Some(("blocks", 8, 0)));
        assert_eq!(a.first_difference(&BackingStamp { size: 11, ..a }), Some(("size", 10, 11)));
    }
}
