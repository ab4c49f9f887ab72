//! Where the snapshot stream goes: a pipe to a dump tool (optional), the page cache with its
//! dirty limits and writeback, and the device with bandwidth, per-request latency,
//! heavy-tailed stalls and an optional competing I/O stream.
//!
//! The model is evaluated lazily: nothing here schedules events. The producer (the qemu
//! model's single thread, or the decoupled model's sink) calls [`StreamPath::submit`] with
//! its virtual time, in non-decreasing order, and gets back when its write returns. The
//! dump tool, writeback and the device are advanced to that time on the way, each step
//! costing O(1), so the per-page cost does not grow with the region.

mod page_cache;
mod params;
mod pipe;
mod stall;

pub use page_cache::{CacheStats, PageCache};
pub use params::{CompetingIo, DiskParams, DiskPreset, PageCacheParams, PipeParams};
pub use pipe::StreamPath;
pub use stall::StallParams;

/// Nanoseconds to move `bytes` at `per_sec` bytes per second; zero when `per_sec` is 0 (no
/// device: nothing to wait for). Copy rates are validated to be at least 1 MB/s.
pub(crate) fn transfer_ns(bytes: u64, per_sec: u64) -> u64 {
    if per_sec == 0 { 0 } else { (bytes as u128 * 1_000_000_000 / per_sec as u128) as u64 }
}
