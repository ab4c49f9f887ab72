//! Staging memory of the decoupled model, allocated on demand in chunks and returned to the
//! system as the sink drains, so the process's RSS follows what is staged, not the budget.
//!
//! Each chunk is its own anonymous mapping (`mmap`), unmapped when the last run staged in it
//! is dropped. The allocator's heap would not do: glibc keeps freed memory in its arenas (and
//! raises its mmap threshold after a large free), so RSS would stay at the peak. Runs are
//! carved from the current chunk in order; the sink drains them in about that order, so
//! chunks are freed in order too and at most about two chunks are mapped beyond what is staged.

use crate::sync::shim::{AtomicU64, Mutex, Ordering, lock};
use rustix::mm::{MapFlags, ProtFlags};
use std::ptr::NonNull;
use std::sync::Arc;
use thiserror::Error;

/// Chunk size: 512 pages of 4 KiB, or one 2 MiB huge page (a larger run gets a chunk of its
/// own size).
pub const STAGING_CHUNK_BYTES: usize = 2 << 20;

/// The kernel refused a staging chunk.
#[derive(Debug, Error)]
#[error("mapping {bytes} bytes of staging memory: {source}")]
pub struct StagingMemoryError {
    pub bytes: usize,
    #[source]
    pub source: rustix::io::Errno,
}

/// Bytes mapped now and at most, shared by the chunks so each can account for its unmap.
#[derive(Debug, Default)]
struct Accounting {
    mapped: AtomicU64,
    peak: AtomicU64,
}

/// One anonymous mapping; unmapped when dropped (when no run in it is left).
#[derive(Debug)]
struct Chunk {
    ptr: NonNull<u8>,
    len: usize,
    accounting: Arc<Accounting>,
}

// SAFETY: the chunk is plain memory; `StagedBuf` hands out disjoint parts of it to one owner
// each, and which thread unmaps it does not matter.
unsafe impl Send for Chunk {}
// SAFETY: as above; shared references only reach disjoint ranges through their `StagedBuf`.
unsafe impl Sync for Chunk {}

impl Chunk {
    fn map(len: usize, accounting: Arc<Accounting>) -> Result<Chunk, StagingMemoryError> {
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE)
        }
        .map_err(|source| StagingMemoryError { bytes: len, source })?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or(StagingMemoryError { bytes: len, source: rustix::io::Errno::NOMEM })?;
        let mapped = accounting.mapped.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        accounting.peak.fetch_max(mapped, Ordering::Relaxed);
        Ok(Chunk { ptr, len, accounting })
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `map`; no `StagedBuf` into it is left (each
        // holds an `Arc` of this chunk).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        self.accounting.mapped.fetch_sub(self.len as u64, Ordering::Relaxed);
    }
}

/// A run's bytes in a chunk, owned by one holder at a time (not `Clone`).
#[derive(Debug)]
pub struct StagedBuf {
    chunk: Arc<Chunk>,
    offset: usize,
    len: usize,
}

impl StagedBuf {
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `offset..offset + len` lies in the chunk (checked when carved), the chunk
        // stays mapped while this `Arc` lives, and no other `StagedBuf` covers these bytes.
        unsafe { std::slice::from_raw_parts(self.chunk.ptr.as_ptr().add(self.offset), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference to the range.
        unsafe { std::slice::from_raw_parts_mut(self.chunk.ptr.as_ptr().add(self.offset), self.len) }
    }
}

#[derive(Debug)]
struct Current {
    chunk: Option<Arc<Chunk>>,
    used: usize,
}

/// Hands out staging buffers from chunks mapped on demand.
#[derive(Debug)]
pub struct StagingMemory {
    current: Mutex<Current>,
    accounting: Arc<Accounting>,
}

impl Default for StagingMemory {
    fn default() -> Self {
        StagingMemory::new()
    }
}

impl StagingMemory {
    pub fn new() -> StagingMemory {
        StagingMemory { current: Mutex::new(Current { chunk: None, used: 0 }), accounting: Arc::default() }
    }

    /// A buffer of `len` bytes (a multiple of the page size keeps every run page-aligned).
    pub fn alloc(&self, len: usize) -> Result<StagedBuf, StagingMemoryError> {
        let mut current = lock(&self.current);
        if let Some(chunk) = &current.chunk
            && current.used + len <= chunk.len
        {
            let buf = StagedBuf { chunk: chunk.clone(), offset: current.used, len };
            current.used += len;
            return Ok(buf);
        }
        // Start a new chunk; the old one lives on until its last run is drained.
        let chunk = Arc::new(Chunk::map(len.max(STAGING_CHUNK_BYTES), self.accounting.clone())?);
        current.chunk = Some(chunk.clone());
        current.used = len;
        Ok(StagedBuf { chunk, offset: 0, len })
    }

    /// Staging bytes mapped now.
    #[cfg(test)]
    pub fn mapped_bytes(&self) -> u64 {
        self.accounting.mapped.load(Ordering::Relaxed)
    }

    /// Most staging bytes mapped at once: the snapshot's extra memory.
    pub fn mapped_peak_bytes(&self) -> u64 {
        self.accounting.peak.load(Ordering::Relaxed)
    }

    /// Lets the current chunk go, so it is unmapped once its runs are drained.
    pub fn release_current(&self) {
        let mut current = lock(&self.current);
        current.chunk = None;
        current.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_mapped_on_demand_and_unmapped_when_drained() {
        let memory = StagingMemory::new();
        assert_eq!(memory.mapped_bytes(), 0);
        let page = 4096;
        let mut bufs: Vec<StagedBuf> = (0..1024).map(|_| memory.alloc(page).expect("map")).collect();
        for (i, buf) in bufs.iter_mut().enumerate() {
            buf.as_mut_slice().fill(i as u8);
        }
        assert!(bufs.iter().enumerate().all(|(i, b)| b.as_slice().iter().all(|&x| x == i as u8)), "disjoint");
        assert_eq!(memory.mapped_bytes(), 2 * STAGING_CHUNK_BYTES as u64, "1024 pages in two chunks");
        // Draining the first chunk's runs unmaps it.
        bufs.drain(..512);
        assert_eq!(memory.mapped_bytes(), STAGING_CHUNK_BYTES as u64);
        bufs.clear();
        assert_eq!(memory.mapped_bytes(), STAGING_CHUNK_BYTES as u64, "the current chunk stays for reuse");
        memory.release_current();
        assert_eq!(memory.mapped_bytes(), 0);
        assert_eq!(memory.mapped_peak_bytes(), 2 * STAGING_CHUNK_BYTES as u64);
        // A run larger than a chunk gets a chunk of its own.
        let big = memory.alloc(3 * STAGING_CHUNK_BYTES).expect("map");
        assert_eq!(big.as_slice().len(), 3 * STAGING_CHUNK_BYTES);
    }
}
