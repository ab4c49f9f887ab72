//! The producer's side of the stream: either straight into the file, or into a pipe that a
//! dump tool drains into the file (read, then write, never both at once).

use super::page_cache::{CacheStats, PageCache};
use super::transfer_ns;
use super::{DiskParams, MeterParams, PipeParams};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use wpsnap_core::Nanos;

#[derive(Debug)]
struct DumpTool {
    params: PipeParams,
    /// Writes in the pipe, oldest first: (when they entered, bytes). At most
    /// `capacity_bytes / smallest message` entries.
    queued: VecDeque<(Nanos, u64)>,
    queued_bytes: u64,
    /// When the tool is next free to read.
    free_at: Nanos,
    /// A metered consumer's state (`pv -L`): the slice the allowance was last topped up in
    /// and the bytes it may still read.
    slice_index: u64,
    allowance_bytes: u64,
}

/// Where the producer's writes go. Calls must come in non-decreasing time order.
#[derive(Debug)]
pub struct StreamPath {
    cache: PageCache,
    tool: Option<DumpTool>,
    syscall_ns: u64,
    copy_bytes_per_sec: u64,
    bytes_submitted: u64,
    /// The producer's user-space buffer (a `BufWriter`): its capacity and the bytes in it.
    user_buffer_bytes: u64,
    buffered_bytes: u64,
}

impl StreamPath {
    /// A stream path for these disk parameters; stalls draw from `rng`.
    pub fn new(params: &DiskParams, rng: ChaCha8Rng) -> StreamPath {
        let tool = params.pipe.map(|p| DumpTool {
            params: p,
            queued: VecDeque::new(),
            queued_bytes: 0,
            free_at: Nanos::ZERO,
            slice_index: 0,
            // The allowance starts full, as pv's does (its first burst).
            allowance_bytes: p.meter.map_or(0, |m| m.slice_bytes() * u64::from(m.burst_slices)),
        });
        StreamPath {
            cache: PageCache::new(params.clone(), rng),
            tool,
            syscall_ns: params.syscall_ns,
            copy_bytes_per_sec: params.copy_bytes_per_sec,
            bytes_submitted: 0,
            user_buffer_bytes: params.user_buffer_bytes,
            buffered_bytes: 0,
        }
    }

    /// The file side's counters.
    pub fn cache_stats(&self) -> &CacheStats {
        self.cache.stats()
    }

    /// Bytes the producer has written so far.
    pub fn bytes_submitted(&self) -> u64 {
        self.bytes_submitted
    }

    /// The producer writes `bytes` at `now` and flushes its buffer: one `write(2)` of what was
    /// buffered and these bytes; returns when it returns. The qemu model's thread does this
    /// for every capture (`linux/src/snapshot/lanes.rs` `qemu_lane`, as QEMU's `qemu_fflush`
    /// before each unprotect), so a page is in the stream before its writer is woken.
    pub fn submit_flushed(&mut self, now: Nanos, bytes: u64) -> Nanos {
        self.bytes_submitted += bytes;
        let pending = self.buffered_bytes + bytes;
        self.buffered_bytes = 0;
        self.write_call(now, pending)
    }

    /// The producer writes `bytes` at `now`; returns when its write returns. With a
    /// user-space buffer, as `BufWriter` does: a write that does not fit flushes the buffer
    /// first (one `write(2)`), a write as large as the buffer goes straight through, others
    /// are a memory copy into the buffer.
    pub fn submit(&mut self, now: Nanos, bytes: u64) -> Nanos {
        self.bytes_submitted += bytes;
        if self.user_buffer_bytes == 0 {
            return self.write_call(now, bytes);
        }
        let mut t = now;
        if self.buffered_bytes + bytes > self.user_buffer_bytes && self.buffered_bytes > 0 {
            t = self.write_call(t, self.buffered_bytes);
            self.buffered_bytes = 0;
        }
        if bytes >= self.user_buffer_bytes {
            return self.write_call(t, bytes);
        }
        self.buffered_bytes += bytes;
        t + Nanos(transfer_ns(bytes, self.copy_bytes_per_sec))
    }

    /// One `write(2)` of `bytes` at `now` into the pipe or the file; returns when it returns.
    fn write_call(&mut self, now: Nanos, bytes: u64) -> Nanos {
        let own_cost = Nanos(self.syscall_ns + transfer_ns(bytes, self.copy_bytes_per_sec));
        let Some(tool) = self.tool.as_mut() else {
            return self.cache.write(now, bytes);
        };
        tool.run_until(now, &mut self.cache, self.syscall_ns, self.copy_bytes_per_sec);
        let mut t = now;
        // A write larger than the pipe goes in as it drains: model it as fitting once the
        // pipe is empty.
        let room_needed = bytes.min(tool.params.capacity_bytes);
        while tool.queued_bytes + room_needed > tool.params.capacity_bytes {
            let Some(read_at) = tool.step(&mut self.cache, self.syscall_ns, self.copy_bytes_per_sec) else { break };
            t = t.max(read_at + Nanos(tool.params.wake_ns));
        }
        tool.queued.push_back((t, bytes));
        tool.queued_bytes += bytes;
        t + own_cost
    }

    /// When everything submitted so far has been handed to the file (the dump tool's last
    /// write returned). Consumes the pipe, so call it once, at the end.
    pub fn finish(&mut self, now: Nanos) -> Nanos {
        let now = if self.buffered_bytes > 0 {
            let bytes = std::mem::take(&mut self.buffered_bytes);
            self.write_call(now, bytes)
        } else {
            now
        };
        let Some(tool) = self.tool.as_mut() else { return now };
        let mut done = now;
        while tool.step(&mut self.cache, self.syscall_ns, self.copy_bytes_per_sec).is_some() {
            done = done.max(tool.free_at);
        }
        done.max(tool.free_at)
    }
}

impl DumpTool {
    /// When the tool's next read happens, given what is in the pipe.
    fn next_read_at(&self) -> Option<Nanos> {
        let &(arrived, _) = self.queued.front()?;
        // An idle tool sleeps in read(2) and needs waking.
        Some(if self.free_at >= arrived { self.free_at } else { arrived + Nanos(self.params.wake_ns) })
    }

    /// A metered consumer's allowance at `at` after topping it up for the slices passed,
    /// and that slice's index.
    fn allowance_at(&self, m: &MeterParams, at: Nanos) -> (u64, u64) {
        let cap = m.slice_bytes() * u64::from(m.burst_slices);
        let index = at.as_ns() / m.slice_ns;
        let passed = index.saturating_sub(self.slice_index);
        let allowance = self.allowance_bytes.saturating_add(passed.saturating_mul(m.slice_bytes())).min(cap);
        (allowance, index.max(self.slice_index))
    }

    /// When a read the tool would start at `at` happens: a metered consumer whose
    /// allowance is used up sleeps to the next slice.
    fn read_time(&self, at: Nanos) -> Nanos {
        let Some(m) = self.params.meter else { return at };
        match self.allowance_at(&m, at) {
            (0, index) => Nanos((index + 1) * m.slice_ns),
            _ => at,
        }
    }

    /// The read time and byte limit of a read the tool would start at `at`, with the
    /// allowance updated to that time. Unmetered: `at` and the read buffer.
    fn metered_read(&mut self, at: Nanos) -> (Nanos, u64) {
        let Some(m) = self.params.meter else { return (at, self.params.read_bytes_max) };
        let at = self.read_time(at);
        let (allowance, index) = self.allowance_at(&m, at);
        self.allowance_bytes = allowance;
        self.slice_index = index;
        (at, self.params.read_bytes_max.min(allowance))
    }

    /// One read + write cycle; returns when the read took the bytes out of the pipe.
    fn step(&mut self, cache: &mut PageCache, syscall_ns: u64, copy_bytes_per_sec: u64) -> Option<Nanos> {
        let (read_at, read_bytes_max) = self.metered_read(self.next_read_at()?);
        let mut bytes = 0;
        while let Some(&mut (arrived, ref mut b)) = self.queued.front_mut() {
            if arrived > read_at || bytes >= read_bytes_max {
                break;
            }
            // A read takes what fits in the tool's buffer; the rest of a write stays queued.
            let take = (*b).min(read_bytes_max - bytes);
            bytes += take;
            *b -= take;
            if *b == 0 {
                self.queued.pop_front();
            }
        }
        self.queued_bytes -= bytes;
        self.allowance_bytes = self.allowance_bytes.saturating_sub(bytes);
        let read_done = read_at + Nanos(syscall_ns + transfer_ns(bytes, copy_bytes_per_sec));
        self.free_at = cache.write(read_done, bytes);
        Some(read_at)
    }

    /// Runs every cycle that starts at or before `now`.
    fn run_until(&mut self, now: Nanos, cache: &mut PageCache, syscall_ns: u64, copy_bytes_per_sec: u64) {
        while self.next_read_at().is_some_and(|at| self.read_time(at) <= now) {
            self.step(cache, syscall_ns, copy_bytes_per_sec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DiskPreset;
    use rand::SeedableRng;

    #[test]
    fn the_pipe_paces_the_producer_at_the_disk_rate() {
        let mut path = StreamPath::new(&DiskPreset::Hdd7200.params(), ChaCha8Rng::seed_from_u64(3));
        let mut t = Nanos::ZERO;
        let pages = 400_000u64; // 1.6 GB
        let mut slow_writes = 0;
        for _ in 0..pages {
            let done = path.submit(t, 4104);
            if done.saturating_since(t) > Nanos::from_ms(8) {
                slow_writes += 1;
            }
            t = done;
        }
        let end = path.finish(t);
        let rate = (pages * 4104) as f64 / end.as_secs_f64();
        assert!(rate > 50e6 && rate < 200e6, "rate {rate}");
        // Throttling pauses of the tool reach the producer through the full pipe.
        assert!(slow_writes > 10, "{slow_writes}");
    }

    #[test]
    fn without_a_pipe_the_producer_writes_the_file() {
        let mut path = StreamPath::new(&DiskPreset::Tmpfs.params(), ChaCha8Rng::seed_from_u64(3));
        let done = path.submit(Nanos::ZERO, 4096);
        assert!(done > Nanos::ZERO && done < Nanos::from_us(10), "{done}");
        assert_eq!(path.finish(done), done);
    }

    fn metered(rate_bytes_per_sec: u64, slice_ns: u64, burst_slices: u32) -> DiskParams {
        let mut params = DiskPreset::Tmpfs.params();
        params.pipe = Some(PipeParams {
            capacity_bytes: 64 * 1024,
            wake_ns: 20_000,
            read_bytes_max: 64 * 1024,
            meter: Some(MeterParams { rate_bytes_per_sec, slice_ns, burst_slices }),
        });
        params
    }

    /// 64 KiB writes of a producer that writes as fast as it can: (the write times, the
    /// time the consumer has read everything).
    fn write_through(params: &DiskParams, writes: u64) -> (Vec<u64>, Nanos) {
        let mut path = StreamPath::new(params, ChaCha8Rng::seed_from_u64(1));
        let mut t = Nanos::ZERO;
        let mut blocked = Vec::new();
        for _ in 0..writes {
            let done = path.submit(t, 64 << 10);
            blocked.push(done.saturating_since(t).as_ns());
            t = done;
        }
        (blocked, path.finish(t))
    }

    #[test]
    fn a_pv_like_consumer_blocks_writes_for_most_of_a_slice_and_keeps_its_rate() {
        // pv -L 50m: 100 ms slices, 5 slices of burst; 100 MiB as in the ground-truth probe.
        let (blocked, end) = write_through(&metered(50 << 20, 100_000_000, 5), 1600);
        let rate = (1600u64 << 16) as f64 / end.as_secs_f64();
        // 100 MiB at 52.4 MB/s after a 26 MB first burst: about 1.5 s, 70 MB/s (probe: 65).
        assert!(rate > 60e6 && rate < 75e6, "rate {rate}");
        let long = blocked.iter().filter(|&&ns| ns >= 64_000_000).count();
        let short = blocked.iter().filter(|&&ns| ns < 1_000_000).count();
        // One long block per slice after the burst (probe: 16 of 1600), every other write
        // returns at once.
        assert!((13..=17).contains(&long), "{long} writes blocked >= 64 ms");
        assert_eq!(long + short, blocked.len());
    }

    #[test]
    fn a_smooth_consumer_blocks_every_write_briefly() {
        // 16 KiB reads at 50 MB/s: a 64 KiB write into the full pipe waits ~1.3 ms.
        let (blocked, end) = write_through(&metered(50_000_000, 327_680, 1), 1600);
        let rate = (1600u64 << 16) as f64 / end.as_secs_f64();
        assert!(rate > 48e6 && rate < 52e6, "rate {rate}");
        let mut sorted = blocked.clone();
        sorted.sort_unstable();
        let p50 = sorted[sorted.len() / 2];
        assert!((1_000_000..1_600_000).contains(&p50), "p50 {p50} ns");
        assert!(sorted[sorted.len() - 1] < 2_000_000, "max {} ns", sorted[sorted.len() - 1]);
    }

    #[test]
    fn a_flushed_write_waits_for_the_pipe_a_buffered_one_does_not() {
        // A smooth consumer with the 256 KiB output buffer: 16 KiB writes are memory copies
        // until the buffer is full; the same writes flushed each go through the pipe, which
        // after the first 64 KiB waits for the consumer (16 KiB per 328 us).
        let mut params = metered(50_000_000, 327_680, 1);
        params.user_buffer_bytes = 256 << 10;
        let time_of_ten = |flush: bool| {
            let mut path = StreamPath::new(&params, ChaCha8Rng::seed_from_u64(1));
            let mut t = Nanos::ZERO;
            for _ in 0..10 {
                t = if flush { path.submit_flushed(t, 16 << 10) } else { path.submit(t, 16 << 10) };
            }
            assert_eq!(path.bytes_submitted(), 160 << 10);
            t
        };
        assert!(time_of_ten(false) < Nanos::from_us(100), "buffered: {}", time_of_ten(false));
        assert!(time_of_ten(true) > Nanos::from_us(1_000), "flushed: {}", time_of_ten(true));
    }

    #[test]
    fn an_iops_cap_bounds_small_direct_writes() {
        let mut params = DiskPreset::Tmpfs.params();
        params.bandwidth_bytes_per_sec = 50_000_000;
        params.iops_max = 150;
        let mut path = StreamPath::new(&params, ChaCha8Rng::seed_from_u64(1));
        let mut t = Nanos::ZERO;
        for _ in 0..150 {
            t = path.submit(t, 4096);
        }
        // 150 direct 4 KiB writes at 150 IOPS: one second, not 12 ms of bandwidth.
        assert!(t >= Nanos::from_ms(990) && t <= Nanos::from_ms(1010), "{t}");
    }
}
