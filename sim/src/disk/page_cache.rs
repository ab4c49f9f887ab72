//! `write(2)` to a file: the page cache, writeback and the device, evaluated lazily.

use super::DiskParams;
use super::transfer_ns;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use wpsnap_core::Nanos;

/// Competing bytes one of our requests may have to wait for at most (a bound, so a long
/// idle gap does not turn into one enormous request).
const COMPETING_BYTES_PER_REQUEST_MAX: u64 = 64 << 20;

/// What the file-write path did, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    pub write_calls: u64,
    pub bytes_written: u64,
    pub dirty_peak_bytes: u64,
    /// `balance_dirty_pages`-like pauses between the freerun ceiling and the limit.
    pub throttle_pauses: u64,
    pub throttle_pause_ns: u64,
    /// Writes blocked outright at the dirty limit until writeback made room.
    pub limit_blocks: u64,
    pub limit_block_ns: u64,
    pub device_requests: u64,
    pub device_stalls: u64,
    pub device_stall_ns: u64,
    pub write_stalls: u64,
    pub write_stall_ns: u64,
}

/// The file side of the stream: every `write(2)` of the producer or of the dump tool.
#[derive(Debug)]
pub struct PageCache {
    params: DiskParams,
    rng: ChaCha8Rng,
    /// Dirty bytes, including those of the request in flight.
    dirty: u64,
    in_flight: Option<(Nanos, u64)>,
    device_free_at: Nanos,
    last_request_start: Option<Nanos>,
    dirtied_since_pause: u64,
    stats: CacheStats,
}

impl PageCache {
    /// An empty cache and idle device; stalls draw from `rng`.
    pub fn new(params: DiskParams, rng: ChaCha8Rng) -> PageCache {
        PageCache {
            params,
            rng,
            dirty: 0,
            in_flight: None,
            device_free_at: Nanos::ZERO,
            last_request_start: None,
            dirtied_since_pause: 0,
            stats: CacheStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Dirty bytes not yet written back.
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty
    }

    /// Service time of one device request of `bytes` starting at `start`.
    fn request_ns(&mut self, start: Nanos, bytes: u64) -> u64 {
        let mut ns = self.params.request_latency_ns + transfer_ns(bytes, self.params.bandwidth_bytes_per_sec);
        // A throttled device admits one request per 1/iops; bandwidth and IOPS caps both
        // hold (blkio checks both before dispatching a bio). 0 is no cap.
        if let Some(interval_ns) = 1_000_000_000u64.checked_div(self.params.iops_max) {
            ns = ns.max(interval_ns);
        }
        let stall = self.params.device_stall.draw(&mut self.rng);
        if stall > 0 {
            self.stats.device_stalls += 1;
            self.stats.device_stall_ns += stall;
            ns += stall;
        }
        if let (Some(c), Some(last)) = (self.params.competing, self.last_request_start) {
            let gap_ns = start.saturating_since(last).as_ns();
            let arrived = ((gap_ns as u128 * c.bytes_per_sec as u128 / 1_000_000_000) as u64)
                .min(COMPETING_BYTES_PER_REQUEST_MAX);
            if arrived > 0 {
                ns += c.switch_ns + transfer_ns(arrived, self.params.bandwidth_bytes_per_sec);
            }
        }
        self.last_request_start = Some(start);
        self.stats.device_requests += 1;
        ns
    }

    fn start_writeback(&mut self, at: Nanos) {
        let Some(cache) = self.params.page_cache else { return };
        if self.in_flight.is_none() && self.dirty > cache.dirty_background_bytes {
            let bytes = self.dirty.min(self.params.request_bytes);
            let ns = self.request_ns(at, bytes);
            self.in_flight = Some((at + Nanos(ns), bytes));
        }
    }

    /// Completes writeback requests up to `t`. Each step retires one request, and each
    /// request retires `request_bytes`, so the loop is bounded by the dirty bytes.
    fn advance(&mut self, t: Nanos) {
        while let Some((done, bytes)) = self.in_flight {
            if done > t {
                break;
            }
            self.dirty -= bytes;
            self.in_flight = None;
            self.start_writeback(done);
        }
    }

    /// Advances writeback until at most `target` bytes are dirty; returns when.
    fn wait_until_dirty_at_most(&mut self, mut t: Nanos, target: u64) -> Nanos {
        self.advance(t);
        while self.dirty > target {
            self.start_writeback(t);
            let Some((done, _)) = self.in_flight else { break };
            t = t.max(done);
            self.advance(t);
        }
        t
    }

    /// A `write(2)` of `bytes` issued at `t`; returns when it returns.
    pub fn write(&mut self, t: Nanos, bytes: u64) -> Nanos {
        self.stats.write_calls += 1;
        self.stats.bytes_written += bytes;
        let mut t = t + Nanos(self.params.syscall_ns + transfer_ns(bytes, self.params.copy_bytes_per_sec));
        let stall = self.params.write_stall.draw(&mut self.rng);
        if stall > 0 {
            self.stats.write_stalls += 1;
            self.stats.write_stall_ns += stall;
            t = t + Nanos(stall);
        }
        if self.params.bandwidth_bytes_per_sec == 0 {
            return t;
        }
        let Some(cache) = self.params.page_cache else {
            // Direct I/O: the call returns when the device has written the data.
            let start = t.max(self.device_free_at);
            let ns = self.request_ns(start, bytes);
            self.device_free_at = start + Nanos(ns);
            return self.device_free_at;
        };
        self.advance(t);
        if self.dirty + bytes > cache.dirty_limit_bytes {
            let blocked_at = t;
            t = self.wait_until_dirty_at_most(t, cache.dirty_limit_bytes.saturating_sub(bytes));
            self.stats.limit_blocks += 1;
            self.stats.limit_block_ns += t.saturating_since(blocked_at).as_ns();
        }
        self.dirty += bytes;
        self.stats.dirty_peak_bytes = self.stats.dirty_peak_bytes.max(self.dirty);
        self.start_writeback(t);
        let (bg, limit) = (cache.dirty_background_bytes, cache.dirty_limit_bytes);
        let freerun = bg + (limit - bg) / 2;
        if self.dirty <= freerun {
            self.dirtied_since_pause = 0;
            return t;
        }
        // Above the freerun ceiling the writer is paced at the writeback bandwidth, scaled by
        // how far dirty is from the setpoint, in pauses of about `pause_target_ns`.
        self.dirtied_since_pause += bytes;
        let bw = self.params.bandwidth_bytes_per_sec;
        let pause_bytes = ((bw as u128 * cache.pause_target_ns as u128 / 1_000_000_000) as u64).max(1);
        if self.dirtied_since_pause < pause_bytes {
            return t;
        }
        let setpoint = freerun + (limit - freerun) / 2;
        let position = 1.0 + (setpoint as f64 - self.dirty as f64) / (limit - freerun).max(1) as f64;
        let rate = bw as f64 * position.clamp(0.25, 2.0);
        let pause = ((self.dirtied_since_pause as f64 / rate * 1e9) as u64).min(cache.pause_ns_max);
        self.dirtied_since_pause = 0;
        self.stats.throttle_pauses += 1;
        self.stats.throttle_pause_ns += pause;
        t + Nanos(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DiskPreset;
    use rand::SeedableRng;

    fn write_all(preset: DiskPreset, total: u64, chunk: u64) -> (Nanos, CacheStats) {
        let mut cache = PageCache::new(preset.params(), ChaCha8Rng::seed_from_u64(1));
        let mut t = Nanos::ZERO;
        for _ in 0..total / chunk {
            t = cache.write(t, chunk);
        }
        (t, cache.stats().clone())
    }

    #[test]
    fn a_long_write_runs_at_the_device_bandwidth_once_the_cache_is_full() {
        let total = 2u64 << 30;
        let (t, stats) = write_all(DiskPreset::Hdd7200, total, 64 << 10);
        let rate = total as f64 / t.as_secs_f64();
        // 2 GiB through a 100 MB/s disk with ~400 MiB absorbed by the cache, with stalls.
        assert!(rate > 60e6 && rate < 130e6, "rate {rate}");
        assert!(stats.throttle_pauses > 0);
        assert!(stats.dirty_peak_bytes <= DiskPreset::Hdd7200.params().page_cache.map_or(0, |c| c.dirty_limit_bytes));
    }

    #[test]
    fn tmpfs_is_a_memory_copy() {
        let (t, stats) = write_all(DiskPreset::Tmpfs, 1 << 30, 1 << 20);
        let rate = (1u64 << 30) as f64 / t.as_secs_f64();
        assert!(rate > 3e9, "rate {rate}");
        assert_eq!(stats.throttle_pauses + stats.limit_blocks + stats.device_requests, 0);
    }

    #[test]
    fn a_small_write_fits_in_the_cache_without_throttling() {
        let (t, stats) = write_all(DiskPreset::Nvme, 64 << 20, 64 << 10);
        assert_eq!(stats.throttle_pauses, 0);
        assert!(t < Nanos::from_ms(100), "{t}");
    }
}
