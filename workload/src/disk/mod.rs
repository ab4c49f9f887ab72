//! The disk both drivers write to: named presets with their sources, the parameters they
//! stand for, and the one heavy-tailed stall sampler.
//!
//! The simulator (`wpsnap-sim`) models the whole stream path from these parameters (pipe,
//! page cache, writeback, device); the Linux backend's slow-device emulation
//! (`wpsnap_linux::output::SlowDevice`) translates the same presets into a bandwidth cap
//! and stall sources and draws stall lengths through the same [`pareto_ns`]. Neither keeps
//! a copy of the figures.
//!
//! Pure values and functions: no clock, no I/O; randomness only from the caller's [`rand::Rng`].

mod preset;
mod stall;

pub use preset::{CompetingIo, DiskParams, DiskPreset, MeterParams, PageCacheParams, PipeParams};
pub use stall::{StallParams, pareto_ns};

use thiserror::Error;

/// Longest single stall any parameter set may ask for: one hour.
pub const STALL_NS_MAX: u64 = 3_600_000_000_000;

/// A disk parameter out of bounds; `field` is its path inside [`DiskParams`]
/// (`request_bytes`, `page_cache.dirty_limit_bytes`, `device_stall`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("disk parameter `{field}`: {reason}")]
pub struct DiskParamsError {
    /// The field, relative to [`DiskParams`].
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl DiskParamsError {
    fn new(field: &'static str, reason: String) -> DiskParamsError {
        DiskParamsError { field, reason }
    }
}

/// A disk preset name that is not one of [`DiskPreset::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown disk preset `{0}`: expected hdd-7200, sata-ssd, nvme or tmpfs")]
pub struct UnknownDiskPreset(pub String);

/// Nanoseconds to move `bytes` at `per_sec` bytes per second; zero when `per_sec` is 0 (no
/// device: nothing to wait for).
pub fn transfer_ns(bytes: u64, per_sec: u64) -> u64 {
    match (per_sec, bytes.checked_mul(1_000_000_000)) {
        (0, _) => 0,
        // The simulator calls this per capture: a 64-bit division when the product fits
        // (any transfer under 18 GB), the exact 128-bit one otherwise; both floor alike.
        (_, Some(product)) => product / per_sec,
        (_, None) => (bytes as u128 * 1_000_000_000 / per_sec as u128) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::transfer_ns;

    #[test]
    fn the_64_bit_path_floors_like_the_128_bit_one() {
        let exact = |bytes: u64, per_sec: u64| (bytes as u128 * 1_000_000_000 / per_sec as u128) as u64;
        let edge = u64::MAX / 1_000_000_000;
        for bytes in [0, 1, 4096, 4097, 1 << 20, edge - 1, edge, edge + 1, u64::MAX / 2] {
            for per_sec in [1, 3, 1_000_000, 550_000_000, 3_000_000_000, u64::MAX] {
                assert_eq!(transfer_ns(bytes, per_sec), exact(bytes, per_sec), "{bytes} B at {per_sec} B/s");
            }
        }
        assert_eq!(transfer_ns(4096, 0), 0);
    }
}
