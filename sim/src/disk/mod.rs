//! Where the snapshot stream goes: a pipe to a dump tool (optional), the page cache with its
//! dirty limits and writeback, and the device with bandwidth, per-request latency,
//! heavy-tailed stalls and an optional competing I/O stream.
//!
//! The parameters, the presets and the stall sampler live in [`wpsnap_workload::disk`],
//! shared with the Linux backend's slow-device emulation; this module is the model that
//! runs them.
//!
//! The model is evaluated lazily: nothing here schedules events. The producer (the qemu
//! model's single thread, or the decoupled model's sink) calls [`StreamPath::submit`] with
//! its virtual time, in non-decreasing order, and gets back when its write returns. The
//! dump tool, writeback and the device are advanced to that time on the way, each step
//! costing O(1), so the per-page cost does not grow with the region.

mod page_cache;
mod pipe;

pub use page_cache::{CacheStats, PageCache};
pub use pipe::StreamPath;
pub use wpsnap_workload::disk::{
    CompetingIo, DiskParams, DiskPreset, MeterParams, PageCacheParams, PipeParams, StallParams,
};

/// Nanoseconds to move `bytes` at `per_sec` bytes per second (see
/// [`wpsnap_workload::disk::transfer_ns`]). Copy rates are validated to be at least 1 MB/s.
pub(crate) use wpsnap_workload::disk::transfer_ns;
