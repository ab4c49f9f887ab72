//! Guest memory: one anonymous mapping (vm-memory), optionally with transparent huge pages,
//! registered with KVM as slot 0 at guest-physical 0.

use crate::error::VmError;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use wpsnap_linux::region::{Backing, Region};

/// The guest's memory. It stays mapped for as long as this value lives; the [`Vm`](crate::Vm)
/// owns it and outlives its vCPU threads.
#[derive(Debug)]
pub struct GuestRam {
    memory: GuestMemoryMmap<()>,
    huge_pages: bool,
}

impl GuestRam {
    /// Maps `bytes` of zeroed guest memory; with `huge_pages`, asks for transparent huge pages
    /// (`MADV_HUGEPAGE`).
    pub fn new(bytes: u64, huge_pages: bool) -> Result<GuestRam, VmError> {
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

    /// The memory as a `wpsnap-linux` region, for a live snapshot.
    pub fn region(&self) -> Result<Region, VmError> {
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
