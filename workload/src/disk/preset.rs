//! Disk parameters and the presets, with where their figures come from.

use super::stall::StallParams;
use super::{DiskParamsError, UnknownDiskPreset};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const MB: u64 = 1_000_000;
const MIB: u64 = 1 << 20;

/// Everything the stream path is made of. `bandwidth_bytes_per_sec == 0` means no device
/// (tmpfs: the data stays in memory).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskParams {
    /// Sequential write bandwidth of the device; 0 for no device.
    pub bandwidth_bytes_per_sec: u64,
    /// Bytes per writeback (or direct) request.
    pub request_bytes: u64,
    /// Fixed cost of each request (command overhead, track switch).
    pub request_latency_ns: u64,
    /// Stalls of device requests (seeks to the journal or metadata, garbage collection).
    pub device_stall: StallParams,
    /// Stalls of the `write(2)` call itself (journal commit, waiting on pages under
    /// writeback), independent of the dirty limits.
    pub write_stall: StallParams,
    /// Memory copy bandwidth, for pipe reads/writes and page-cache copies.
    pub copy_bytes_per_sec: u64,
    /// Cost of one system call.
    pub syscall_ns: u64,
    /// The page cache between `write(2)` and the device; `None` writes directly (O_DIRECT).
    pub page_cache: Option<PageCacheParams>,
    /// A pipe to a separate dump tool (`migrate exec:`); `None` when the producer writes
    /// the file itself (`migrate file:`).
    pub pipe: Option<PipeParams>,
    /// Another stream of writes on the same device.
    #[serde(default)]
    pub competing: Option<CompetingIo>,
    /// The device's request rate cap (a blkio `write_iops_device` throttle, or a disk's
    /// seek-bound rate); 0 for none. A request takes at least `1 / iops_max` seconds.
    #[serde(default)]
    pub iops_max: u64,
    /// The producer's own user-space buffer in front of its `write(2)` calls (wpsnap's
    /// outputs: a `BufWriter` of 256 KiB for pipes and commands, 1 MiB for files); 0 for
    /// none (QEMU's `exec:` stream writes each page record through a small buffer).
    #[serde(default)]
    pub user_buffer_bytes: u64,
}

/// Dirty-page accounting and `balance_dirty_pages`-like throttling.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageCacheParams {
    /// Background writeback runs while dirty bytes exceed this (`vm.dirty_background_bytes`).
    pub dirty_background_bytes: u64,
    /// A writer blocks outright above this (`vm.dirty_bytes`).
    pub dirty_limit_bytes: u64,
    /// Bytes a throttled writer may dirty between two pauses, expressed as the pause it
    /// aims at at the writeback bandwidth.
    pub pause_target_ns: u64,
    /// Longest single pause (`MAX_PAUSE`, 200 ms in Linux).
    pub pause_ns_max: u64,
}

/// The `exec:` path: the producer writes into a pipe, a dump tool reads it and writes the
/// file, without overlapping the two (as the seed author's tool did).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipeParams {
    /// Pipe buffer size (Linux default: 16 pages, 64 KiB).
    pub capacity_bytes: u64,
    /// Time for a blocked reader or writer to be woken and scheduled.
    pub wake_ns: u64,
    /// The dump tool's read buffer: it reads at most this much, then writes it to the file.
    pub read_bytes_max: u64,
    /// A rate-metered consumer (`pv -L`, a paced reader); `None` reads as fast as the
    /// file takes the data.
    #[serde(default)]
    pub meter: Option<MeterParams>,
}

/// A consumer that meters its reads in slices, as `pv -L RATE` does: each slice of
/// `slice_ns` adds `rate * slice` bytes to an allowance (capped at `burst_slices` slices'
/// worth); the consumer reads as fast as it can while the allowance lasts, then sleeps to
/// the next slice. `pv` uses 100 ms slices and a 5-slice burst window (its
/// `RATE_GRANULARITY` and `RATE_BURST_WINDOW`; the probe in
/// docs/results/ground-truth-2026-11-30 sees writes block 90-180 ms). A smooth reader is
/// the same with a slice of one read (16 KiB at 50 MB/s: 328 us) and a burst of 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterParams {
    /// The consumer's average rate.
    pub rate_bytes_per_sec: u64,
    /// The metering slice.
    pub slice_ns: u64,
    /// Slices of allowance the consumer may save up while the pipe is empty (>= 1); the
    /// allowance starts full.
    pub burst_slices: u32,
}

/// Competing writes on the same device: each of our requests first waits for the
/// competing bytes that arrived since the previous one, plus a switch cost (a seek on a
/// disk with heads).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompetingIo {
    /// The competing stream's write rate.
    pub bytes_per_sec: u64,
    /// Cost of switching between the two streams (a seek on a disk with heads).
    pub switch_ns: u64,
}

impl MeterParams {
    /// Bytes one slice allows (at least one, so a tiny rate still makes progress).
    pub fn slice_bytes(&self) -> u64 {
        ((u128::from(self.rate_bytes_per_sec) * u128::from(self.slice_ns) / 1_000_000_000) as u64).max(1)
    }
}

/// Named disk configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskPreset {
    /// The seed's test bed: an old 7200 rpm SATA disk (Seagate Barracuda 7200.11, 1.5 TB),
    /// a file on ext4, written by a dump tool reading a pipe without overlap.
    Hdd7200,
    /// A SATA SSD, file written directly by the producer through the page cache.
    SataSsd,
    /// An NVMe SSD, file written directly through the page cache.
    Nvme,
    /// tmpfs: a memory copy, no device, no dirty throttling.
    Tmpfs,
}

impl DiskPreset {
    /// Every preset.
    pub const ALL: [DiskPreset; 4] = [DiskPreset::Hdd7200, DiskPreset::SataSsd, DiskPreset::Nvme, DiskPreset::Tmpfs];

    /// The name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            DiskPreset::Hdd7200 => "hdd-7200",
            DiskPreset::SataSsd => "sata-ssd",
            DiskPreset::Nvme => "nvme",
            DiskPreset::Tmpfs => "tmpfs",
        }
    }

    /// The preset's parameters. Sources are in docs/simulator.md; in short:
    /// device figures from datasheets and this project's measurements
    /// (shared/notes/physical-limits.md), stall figures chosen to give the seed author's
    /// published tail, page-cache limits assumed (the seed host's memory is not known).
    pub fn params(self) -> DiskParams {
        // A host with ~5 GiB free for the page cache at 5%/10% ratios; small enough that a
        // multi-GiB snapshot is disk-bound, as the seed's ~3 GB in ~30 s was.
        let cache = PageCacheParams {
            dirty_background_bytes: 256 * MIB,
            dirty_limit_bytes: 512 * MIB,
            pause_target_ns: 20_000_000,
            pause_ns_max: 200_000_000,
        };
        let copy_bytes_per_sec = 4_000 * MB;
        let syscall_ns = 1_000;
        match self {
            DiskPreset::Hdd7200 => DiskParams {
                // Datasheet: up to 120 MB/s sustained on outer tracks; an old, partly
                // filled disk through ext4 does less.
                bandwidth_bytes_per_sec: 100 * MB,
                request_bytes: MIB,
                request_latency_ns: 300_000,
                // 1% of requests seek away (journal, metadata): 8.5 ms average seek +
                // 4.16 ms rotation, with a heavy tail.
                device_stall: StallParams {
                    per_million: 10_000,
                    scale_ns: 12_000_000,
                    shape: 1.3,
                    ns_max: 500_000_000,
                },
                // ext4/jbd2 commits every 5 s; a write(2) that meets one blocks.
                write_stall: StallParams { per_million: 100, scale_ns: 20_000_000, shape: 2.0, ns_max: 300_000_000 },
                copy_bytes_per_sec,
                syscall_ns,
                page_cache: Some(cache),
                pipe: Some(PipeParams {
                    capacity_bytes: 64 * 1024,
                    wake_ns: 20_000,
                    read_bytes_max: 4096,
                    meter: None,
                }),
                competing: None,
                iops_max: 0,
                user_buffer_bytes: 0,
            },
            DiskPreset::SataSsd => DiskParams {
                // SATA 6 Gb/s carries ~550 MB/s after 8b/10b; drives sustain ~520 MB/s.
                bandwidth_bytes_per_sec: 520 * MB,
                request_bytes: MIB,
                request_latency_ns: 60_000,
                device_stall: StallParams { per_million: 1_000, scale_ns: 2_000_000, shape: 1.5, ns_max: 50_000_000 },
                write_stall: StallParams { per_million: 500, scale_ns: 2_000_000, shape: 2.0, ns_max: 50_000_000 },
                copy_bytes_per_sec,
                syscall_ns,
                page_cache: Some(cache),
                pipe: None,
                competing: None,
                iops_max: 0,
                user_buffer_bytes: 0,
            },
            DiskPreset::Nvme => DiskParams {
                // Measured on this project's VM: 2 GiB sequential O_DIRECT write, 2.2 GB/s.
                bandwidth_bytes_per_sec: 2_200 * MB,
                request_bytes: MIB,
                request_latency_ns: 20_000,
                device_stall: StallParams { per_million: 100, scale_ns: 1_000_000, shape: 2.0, ns_max: 20_000_000 },
                write_stall: StallParams { per_million: 100, scale_ns: 500_000, shape: 2.0, ns_max: 10_000_000 },
                copy_bytes_per_sec,
                syscall_ns,
                page_cache: Some(cache),
                pipe: None,
                competing: None,
                iops_max: 0,
                user_buffer_bytes: 0,
            },
            DiskPreset::Tmpfs => DiskParams {
                bandwidth_bytes_per_sec: 0,
                request_bytes: MIB,
                request_latency_ns: 0,
                device_stall: StallParams::NONE,
                write_stall: StallParams::NONE,
                copy_bytes_per_sec,
                syscall_ns,
                page_cache: None,
                pipe: None,
                competing: None,
                iops_max: 0,
                user_buffer_bytes: 0,
            },
        }
    }
}

impl fmt::Display for DiskPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DiskPreset {
    type Err = UnknownDiskPreset;
    fn from_str(s: &str) -> Result<DiskPreset, UnknownDiskPreset> {
        DiskPreset::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| UnknownDiskPreset(s.to_string()))
    }
}

impl DiskParams {
    /// Checks every field against its bound; the error names the field (relative to the
    /// disk parameters: `request_bytes`, `page_cache.dirty_limit_bytes`, ...).
    pub fn validate(&self) -> Result<(), DiskParamsError> {
        let e = DiskParamsError::new;
        if self.bandwidth_bytes_per_sec > 1 << 40 {
            return Err(e("bandwidth_bytes_per_sec", "above 1 TB/s".into()));
        }
        if self.request_bytes < 4096 || self.request_bytes > 1 << 30 {
            return Err(e("request_bytes", format!("{} is outside 4096..=1 GiB", self.request_bytes)));
        }
        if self.request_latency_ns > 1_000_000_000 {
            return Err(e("request_latency_ns", "above one second".into()));
        }
        if self.copy_bytes_per_sec < MB || self.copy_bytes_per_sec > 1 << 40 {
            return Err(e("copy_bytes_per_sec", format!("{} is outside 1 MB/s..=1 TB/s", self.copy_bytes_per_sec)));
        }
        if self.syscall_ns > 1_000_000 {
            return Err(e("syscall_ns", "above one millisecond".into()));
        }
        self.device_stall.validate("device_stall")?;
        self.write_stall.validate("write_stall")?;
        if let Some(c) = &self.page_cache {
            if self.bandwidth_bytes_per_sec == 0 {
                return Err(e("page_cache", "a page cache needs a device (bandwidth_bytes_per_sec > 0)".into()));
            }
            if c.dirty_background_bytes == 0 || c.dirty_background_bytes >= c.dirty_limit_bytes {
                return Err(e("page_cache.dirty_background_bytes", "must be in 1..dirty_limit_bytes".into()));
            }
            if c.dirty_limit_bytes > 1 << 40 {
                return Err(e("page_cache.dirty_limit_bytes", "above 1 TiB".into()));
            }
            if c.pause_ns_max == 0 || c.pause_ns_max > 10_000_000_000 {
                return Err(e("page_cache.pause_ns_max", "outside 1..=10 s".into()));
            }
            if c.pause_target_ns == 0 || c.pause_target_ns > c.pause_ns_max {
                return Err(e("page_cache.pause_target_ns", "must be in 1..=pause_ns_max".into()));
            }
        }
        if let Some(p) = &self.pipe
            && (p.capacity_bytes < 4096 || p.capacity_bytes > 1 << 30)
        {
            return Err(e("pipe.capacity_bytes", format!("{} is outside 4096..=1 GiB", p.capacity_bytes)));
        }
        if let Some(p) = &self.pipe
            && (p.read_bytes_max == 0 || p.read_bytes_max > p.capacity_bytes)
        {
            return Err(e("pipe.read_bytes_max", format!("{} is outside 1..=capacity_bytes", p.read_bytes_max)));
        }
        if let Some(m) = self.pipe.and_then(|p| p.meter) {
            if m.rate_bytes_per_sec < 1_000 || m.rate_bytes_per_sec > 1 << 40 {
                return Err(e("pipe.meter.rate_bytes_per_sec", "outside 1 kB/s..=1 TB/s".into()));
            }
            if m.slice_ns < 1_000 || m.slice_ns > 10_000_000_000 {
                return Err(e("pipe.meter.slice_ns", "outside 1 us..=10 s".into()));
            }
            if m.burst_slices == 0 || m.burst_slices > 1_000 {
                return Err(e("pipe.meter.burst_slices", "outside 1..=1000".into()));
            }
        }
        if self.user_buffer_bytes > 1 << 30 {
            return Err(e("user_buffer_bytes", "above 1 GiB".into()));
        }
        if self.iops_max > 10_000_000 {
            return Err(e("iops_max", "above 10 million".into()));
        }
        if let Some(c) = &self.competing
            && self.bandwidth_bytes_per_sec > 0
            && c.bytes_per_sec >= self.bandwidth_bytes_per_sec
        {
            return Err(e("competing.bytes_per_sec", "must be below the device bandwidth".into()));
        }
        Ok(())
    }
}
