//! Guest memory: one anonymous mapping (vm-memory), optionally with transparent huge pages,
//! registered with KVM as slot 0 at guest-physical 0.

use crate::error::VmError;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use wpsnap_linux::region::{Backing, Region};

/// `MADV_COLLAPSE` tries before giving up on a transient failure.
const COLLAPSE_ATTEMPTS_MAX: u32 = 3;

/// The guest's memory. It stays mapped for as long as this value lives; the [`Vm`](crate::Vm)
/// owns it and outlives its vCPU threads.
#[derive(Debug)]
pub struct GuestRam {
    memory: GuestMemoryMmap<()>,
    huge_pages: bool,
}

impl GuestRam {
    /// Maps `bytes` of zeroed guest memory; with `huge_pages`, asks for transparent huge pages
    /// (`MADV_HUGEPAGE`); with `prefault`, allocates all of it now (`MADV_POPULATE_WRITE`), so
    /// the guest's first touches do not wait for the kernel to find, compact and zero huge
    /// pages (hundreds of milliseconds each on a busy host with `defrag=madvise`).
    pub fn new(bytes: u64, huge_pages: bool, prefault: bool) -> Result<GuestRam, VmError> {
        let err = |reason: String| VmError::Memory { bytes, reason };
        let len = usize::try_from(bytes).map_err(|_| err("too large for this host".into()))?;
        let memory = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), len)]).map_err(|e| err(e.to_string()))?;
        let ram = GuestRam { memory, huge_pages };
        if huge_pages {
            // SAFETY: the range is exactly our own anonymous mapping; MADV_HUGEPAGE changes no
            // content, only how the kernel backs it.
            unsafe { rustix::mm::madvise(ram.host_ptr().cast(), len, rustix::mm::Advice::LinuxHugepage) }
                .map_err(|e| err(format!("madvise(MADV_HUGEPAGE): {e}")))?;
        }
        if prefault {
            // SAFETY: as above; populating writes nothing the program can observe (the pages
            // read as zero either way).
            unsafe { rustix::mm::madvise(ram.host_ptr().cast(), len, rustix::mm::Advice::LinuxPopulateWrite) }
                .map_err(|e| err(format!("madvise(MADV_POPULATE_WRITE): {e}")))?;
        }
        Ok(ram)
    }

    /// Bytes of guest memory.
    pub fn len(&self) -> u64 {
        self.memory.iter().map(|r| r.len()).sum()
    }

    /// Never true: guest memory has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether transparent huge pages were asked for.
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    /// Host address of guest-physical 0.
    pub fn host_ptr(&self) -> *mut u8 {
        // The memory is built from exactly one range starting at 0.
        self.memory.iter().next().map_or(std::ptr::null_mut(), |r| r.as_ptr())
    }

    /// The vm-memory view (bounds-checked reads and writes by guest-physical address).
    pub fn memory(&self) -> &GuestMemoryMmap<()> {
        &self.memory
    }

    /// Writes `data` at guest-physical `addr`; fails if it does not fit.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), VmError> {
        self.memory.write_slice(data, GuestAddress(addr)).map_err(|e| VmError::Memory {
            bytes: self.len(),
            reason: format!("writing {} bytes at {addr:#x}: {e}", data.len()),
        })
    }

    /// Reads guest-physical `addr` into `out`; fails if it does not fit.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), VmError> {
        self.memory.read_slice(out, GuestAddress(addr)).map_err(|e| VmError::Memory {
            bytes: self.len(),
            reason: format!("reading {} bytes at {addr:#x}: {e}", out.len()),
        })
    }

    /// Re-forms transparent huge pages over guest memory (`MADV_COLLAPSE`, Linux 6.1+): a
    /// snapshot unprotects 4 KiB pieces, which splits the huge pages, and the guest runs slower
    /// on 4 KiB pages afterwards (QEMU leaves them split). Runs while the guest runs.
    pub fn collapse_huge_pages(&self) -> Result<(), VmError> {
        if !self.huge_pages {
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            // SAFETY: our own anonymous mapping, all of it; MADV_COLLAPSE copies pages into
            // huge pages without changing their content (the kernel handles concurrent writes).
            let rc = unsafe { libc::madvise(self.host_ptr().cast(), self.len() as usize, libc::MADV_COLLAPSE) };
            if rc == 0 {
                return Ok(());
            }
            let error = std::io::Error::last_os_error();
            // EAGAIN: a transient condition (a page locked, a lock contended); worth a retry.
            if error.raw_os_error() != Some(libc::EAGAIN) || attempt == COLLAPSE_ATTEMPTS_MAX {
                return Err(VmError::Memory {
                    bytes: self.len(),
                    reason: format!("madvise(MADV_COLLAPSE), attempt {attempt}: {error}"),
                });
            }
            attempt += 1;
        }
    }

    /// `AnonHugePages` of the guest memory mapping in kB (from /proc/self/smaps): how much of
    /// it transparent huge pages back right now. `None` if the mapping is not found.
    pub fn anon_huge_pages_kb(&self) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let start = format!("{:x}-", self.host_ptr() as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        lines.next()?;
        lines
            .take_while(|l| l.split_whitespace().next().is_some_and(|field| field.ends_with(':')))
            .find_map(|l| l.strip_prefix("AnonHugePages:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The memory as a `wpsnap-linux` region, for a live snapshot; it borrows the memory, so
    /// no session can outlive it.
    pub(crate) fn region(&self) -> Result<Region<'_>, VmError> {
        let backing = if self.huge_pages { Backing::Thp } else { Backing::Anonymous };
        let len = self.len() as usize;
        // SAFETY: the mapping is private anonymous memory that stays mapped for as long as this
        // GuestRam lives; callers (crate::snapshot) finish or cancel every session before
        // the Vm, which owns this GuestRam, can be dropped (they borrow it). Nothing else
        // registers it with a userfaultfd.
        unsafe { Region::from_raw(self.host_ptr(), len, backing) }
            .map_err(|e| VmError::Memory { bytes: self.len(), reason: e.to_string() })
    }
}
