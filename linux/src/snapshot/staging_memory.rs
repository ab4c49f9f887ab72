//! Staging memory of the decoupled model, allocated on demand in chunks and returned to the
//! system as the sink drains, so the process's RSS follows what is staged, not the budget.
//!
//! Each chunk is its own anonymous mapping (`mmap`). The allocator's heap would not do: glibc
//! keeps freed memory in its arenas (and raises its mmap threshold after a large free), so RSS
//! would stay at the peak. Runs are carved from the current chunk in order; the sink drains
//! them in about that order, so chunks are freed in order too.
//!
//! A drained chunk goes back to a small pool ([`POOL_CHUNKS_MAX`]) instead of being unmapped,
//! and new chunks are mapped with `MAP_POPULATE`: first-touch page faults on fresh staging
//! memory took over half of the scan thread's CPU time (docs/results/2026-11-30-window.md), so
//! a chunk pays its faults and zeroing at most once per snapshot, in one call. RSS stays within
//! the pool's 16 MiB of what is staged.

use crate::sync::shim::{AtomicBool, AtomicU64, Mutex, Ordering, lock};
use rustix::mm::{MapFlags, ProtFlags};
use std::ptr::NonNull;
use std::sync::Arc;
use thiserror::Error;

/// Chunk size: 512 pages of 4 KiB, or one 2 MiB huge page (a larger run gets a chunk of its
/// own size).
pub const STAGING_CHUNK_BYTES: usize = 2 << 20;

/// Most drained chunks kept mapped for reuse (16 MiB): about what the scan stages ahead of a
/// sink that keeps up, so in the common case no chunk is mapped after the first few.
pub const POOL_CHUNKS_MAX: usize = 8;

/// The kernel refused a staging chunk.
#[derive(Debug, Error)]
#[error("mapping {bytes} bytes of staging memory: {source}")]
pub struct StagingMemoryError {
    pub bytes: usize,
    #[source]
    pub source: rustix::io::Errno,
}

/// A mapping's address, owned by whoever holds it (a chunk or the pool).
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain memory; whoever holds the `Mapping` owns the whole range.
unsafe impl Send for Mapping {}

impl Mapping {
    fn map(len: usize) -> Result<Mapping, StagingMemoryError> {
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks. Populated:
        // one call faults in and zeroes every page, instead of one page fault per page on the
        // first copy into it.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }
        .map_err(|source| StagingMemoryError { bytes: len, source })?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or(StagingMemoryError { bytes: len, source: rustix::io::Errno::NOMEM })?;
        Ok(Mapping { ptr, len })
    }

    fn unmap(self) {
        // SAFETY: unmapping a mapping made in `map`, owned by `self` alone (no `StagedBuf` into
        // it is left: each holds an `Arc` of the chunk that owned it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Bytes mapped now and at most, and the drained chunks kept for reuse; shared by the chunks
/// so each can hand itself back.
#[derive(Debug, Default)]
struct Pool {
    mapped: AtomicU64,
    peak: AtomicU64,
    /// Most chunks mapped at once (pooled ones included).
    chunks_mapped: AtomicU64,
    /// Chunks reused from the pool instead of mapped.
    reuses: AtomicU64,
    /// Set by [`StagingMemory::release_current`]: drained chunks are unmapped from then on.
    closed: AtomicBool,
    free: Mutex<Vec<Mapping>>,
}

impl Pool {
    /// A chunk of `len` bytes: a pooled one if `len` is the chunk size and one is free.
    fn take(&self, len: usize) -> Result<Mapping, StagingMemoryError> {
        if len == STAGING_CHUNK_BYTES
            && let Some(mapping) = lock(&self.free).pop()
        {
            self.reuses.fetch_add(1, Ordering::Relaxed);
            return Ok(mapping);
        }
        let mapping = Mapping::map(len)?;
        let mapped = self.mapped.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        self.peak.fetch_max(mapped, Ordering::Relaxed);
        self.chunks_mapped.fetch_add(1, Ordering::Relaxed);
        Ok(mapping)
    }

    /// Keeps a drained chunk for reuse while the pool has room, else unmaps it.
    fn give_back(&self, mapping: Mapping) {
        let mut free = lock(&self.free);
        if mapping.len == STAGING_CHUNK_BYTES && free.len() < POOL_CHUNKS_MAX && !self.closed.load(Ordering::Relaxed) {
            free.push(mapping);
            return;
        }
        drop(free);
        self.mapped.fetch_sub(mapping.len as u64, Ordering::Relaxed);
        mapping.unmap();
    }

    /// Unmaps every pooled chunk.
    fn clear(&self) {
        let drained: Vec<Mapping> = lock(&self.free).drain(..).collect();
        for mapping in drained {
            self.mapped.fetch_sub(mapping.len as u64, Ordering::Relaxed);
            mapping.unmap();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One chunk in use; handed back to the pool when dropped (when no run in it is left).
#[derive(Debug)]
struct Chunk {
    mapping: Option<Mapping>,
    ptr: NonNull<u8>,
    len: usize,
    pool: Arc<Pool>,
}

// SAFETY: the chunk is plain memory; `StagedBuf` hands out disjoint parts of it to one owner
// each, and which thread hands it back does not matter.
unsafe impl Send for Chunk {}
// SAFETY: as above; shared references only reach disjoint ranges through their `StagedBuf`.
unsafe impl Sync for Chunk {}

impl Chunk {
    fn new(len: usize, pool: Arc<Pool>) -> Result<Chunk, StagingMemoryError> {
        let mapping = pool.take(len)?;
        Ok(Chunk { ptr: mapping.ptr, len: mapping.len, mapping: Some(mapping), pool })
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(mapping) = self.mapping.take() {
            self.pool.give_back(mapping);
        }
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
    pool: Arc<Pool>,
}

impl Default for StagingMemory {
    fn default() -> Self {
        StagingMemory::new()
    }
}

impl StagingMemory {
    pub fn new() -> StagingMemory {
        StagingMemory { current: Mutex::new(Current { chunk: None, used: 0 }), pool: Arc::default() }
    }

    /// A buffer for at most `pages` pages of `page_size` bytes: the rest of the current chunk
    /// when it has room for one page or more, else the start of a new chunk (of one page if a
    /// page is larger than a chunk). It holds fewer pages than asked when the chunk ends there;
    /// the caller asks again for the rest. Runs are split rather than started on a new chunk,
    /// so no chunk is left part-empty while it holds staged pages: with 2 MiB scan runs
    /// beside single fault pages, starting over left up to a chunk per run unused
    /// (docs/results/2026-11-30-scan-batch.md).
    pub fn alloc_pages(&self, pages: u64, page_size: u64) -> Result<StagedBuf, StagingMemoryError> {
        let page = page_size as usize;
        let wanted = (pages as usize).saturating_mul(page);
        let mut current = lock(&self.current);
        if let Some(chunk) = &current.chunk {
            let room = (chunk.len - current.used) / page * page;
            if room > 0 {
                let len = wanted.min(room);
                let buf = StagedBuf { chunk: chunk.clone(), offset: current.used, len };
                current.used += len;
                return Ok(buf);
            }
        }
        // Start a new chunk; the old one lives on until its last run is drained.
        let chunk_len = STAGING_CHUNK_BYTES.max(page);
        let chunk = Arc::new(Chunk::new(chunk_len, self.pool.clone())?);
        let len = wanted.min(chunk_len / page * page);
        current.chunk = Some(chunk.clone());
        current.used = len;
        Ok(StagedBuf { chunk, offset: 0, len })
    }

    /// Staging bytes mapped now.
    #[cfg(test)]
    pub fn mapped_bytes(&self) -> u64 {
        self.pool.mapped.load(Ordering::Relaxed)
    }

    /// Most staging bytes mapped at once: the snapshot's extra memory.
    pub fn mapped_peak_bytes(&self) -> u64 {
        self.pool.peak.load(Ordering::Relaxed)
    }

    /// Chunks mapped in all (a reused chunk counts once).
    pub fn chunks_mapped(&self) -> u64 {
        self.pool.chunks_mapped.load(Ordering::Relaxed)
    }

    /// Chunks taken from the pool instead of mapped.
    pub fn chunk_reuses(&self) -> u64 {
        self.pool.reuses.load(Ordering::Relaxed)
    }

    /// Lets the current chunk go and unmaps the pooled ones: chunks still holding staged runs
    /// are unmapped once those are drained.
    pub fn release_current(&self) {
        let mut current = lock(&self.current);
        current.chunk = None;
        current.used = 0;
        drop(current);
        self.pool.closed.store(true, Ordering::Relaxed);
        self.pool.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_mapped_on_demand_reused_when_drained_and_unmapped_at_release() {
        let memory = StagingMemory::new();
        assert_eq!(memory.mapped_bytes(), 0);
        let page = 4096;
        let chunk_pages = (STAGING_CHUNK_BYTES / page) as u64;
        let mut bufs: Vec<StagedBuf> = (0..1024).map(|_| memory.alloc_pages(1, page as u64).expect("map")).collect();
        for (i, buf) in bufs.iter_mut().enumerate() {
            buf.as_mut_slice().fill(i as u8);
        }
        assert!(bufs.iter().enumerate().all(|(i, b)| b.as_slice().iter().all(|&x| x == i as u8)), "disjoint");
        assert_eq!(memory.mapped_bytes(), 2 * STAGING_CHUNK_BYTES as u64, "1024 pages in two chunks");
        assert_eq!(memory.chunks_mapped(), 2);
        // Draining the first chunk's runs pools it; the next chunk needed is that one again.
        bufs.drain(..512);
        assert_eq!(memory.mapped_bytes(), 2 * STAGING_CHUNK_BYTES as u64, "pooled, still mapped");
        let mut more: Vec<StagedBuf> = (0..512).map(|_| memory.alloc_pages(1, page as u64).expect("reuse")).collect();
        assert_eq!(memory.chunks_mapped(), 2, "no new mapping");
        assert_eq!(memory.chunk_reuses(), 1);
        more[0].as_mut_slice().fill(7);
        assert!(bufs.iter().all(|b| b.as_slice()[0] != 7 || b.as_slice().iter().all(|&x| x == 7)), "disjoint");
        // The pool holds at most its bound; the rest is unmapped when drained.
        let many: Vec<StagedBuf> =
            (0..POOL_CHUNKS_MAX + 2).map(|_| memory.alloc_pages(chunk_pages, page as u64).expect("map")).collect();
        assert!(many.iter().all(|b| b.as_slice().len() == STAGING_CHUNK_BYTES), "whole chunks");
        drop(many);
        // Mapped: the chunks of `bufs` and `more`, the current chunk (the last of `many`) and
        // a full pool; the one drained chunk beyond the pool's bound was unmapped.
        let chunks = 2 + 1 + POOL_CHUNKS_MAX as u64;
        assert_eq!(memory.mapped_bytes(), chunks * STAGING_CHUNK_BYTES as u64);
        bufs.clear();
        more.clear();
        memory.release_current();
        assert_eq!(memory.mapped_bytes(), 0, "release unmaps the pool and the current chunk");
    }

    #[test]
    fn a_run_that_does_not_fit_fills_the_current_chunk_first() {
        let memory = StagingMemory::new();
        let page = 4096u64;
        let chunk_pages = STAGING_CHUNK_BYTES as u64 / page;
        let one = memory.alloc_pages(1, page).expect("map");
        // Asking for a whole chunk's pages gets the rest of the current chunk only...
        let rest = memory.alloc_pages(chunk_pages, page).expect("rest");
        assert_eq!(rest.as_slice().len() as u64, (chunk_pages - 1) * page);
        assert_eq!(memory.chunks_mapped(), 1, "no chunk left part-empty");
        // ...and the next call the one page left over, from a new chunk.
        let last = memory.alloc_pages(1, page).expect("new chunk");
        assert_eq!(last.as_slice().len() as u64, page);
        assert_eq!(memory.chunks_mapped(), 2);
        // A page larger than a chunk gets a chunk of its own size, one page at a time.
        let huge = 2 * STAGING_CHUNK_BYTES as u64;
        let big = memory.alloc_pages(3, huge).expect("map");
        assert_eq!(big.as_slice().len() as u64, huge);
        drop((one, rest, last, big));
        memory.release_current();
        assert_eq!(memory.mapped_bytes(), 0);
    }
}
