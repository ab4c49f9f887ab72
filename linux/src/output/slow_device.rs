//! An EMULATED slow storage device for experiments: a bandwidth cap plus stalls drawn from a
//! seeded heavy-tailed distribution, applied by sleeping inside `write`.
//!
//! This is emulation, not a device: the bytes go to the wrapped writer at its own speed and
//! are delayed here to imitate a slower one. It models a device with no queue (each write
//! completes before the next starts, like the seed's dump tool without AIO); it does not model
//! a page cache, writeback or competing I/O (the simulator's disk model does). Results
//! measured with it must say "emulated", which [`SlowDeviceReport::emulation`] does.
//!
//! The pacing itself is [`DevicePacer`], which the fork backend's child also uses to apply
//! the same emulation to its raw writes.
//!
//! Each stall source's stalls arrive as a Poisson process over bytes written (mean gap
//! `every_bytes_mean`), each source with its own seeded stream, so the stalls do not depend
//! on how the caller sizes its writes. The presets are the disk presets the simulator runs
//! ([`wpsnap_workload::disk::DiskPreset`]), translated by [`SlowDeviceProfile::from_disk`],
//! and Pareto stall lengths come from the same sampler; unlike the simulator, no page cache sits
//! between the writer and the device here, so every device stall reaches the writer, as with
//! O_DIRECT or a page cache already at its dirty limit.

use super::{Output, OutputError, OutputSummary};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::{Duration, Instant};
use wpsnap_workload::disk::{DiskParams, DiskPreset, StallParams, pareto_ns, transfer_ns};

/// Largest piece one `write` call passes on (and charges) at a time, so a huge buffer does not
/// turn into one long sleep with no partial progress.
const WRITE_CHUNK_BYTES_MAX: usize = 1024 * 1024;
const NS_PER_SEC: u128 = 1_000_000_000;

/// Length distribution of one stall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StallLength {
    /// exp(N(ln median, sigma^2)): most stalls near the median, a long right tail.
    LogNormal { median_us: u64, sigma: f64 },
    /// Pareto with minimum `scale_us` and tail index `shape` (smaller shape, heavier tail).
    Pareto { scale_us: u64, shape: f64 },
}

/// One independent source of stalls: they arrive as a Poisson process over bytes written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StallSource {
    /// What it stands for ("device: seek to journal/metadata", "write(2): journal commit").
    pub what: String,
    /// Mean bytes between two stalls; 0 turns the source off.
    pub every_bytes_mean: u64,
    pub length: StallLength,
    /// Longest single stall (draws above are clamped).
    pub us_max: u64,
}

/// Parameters of an emulated device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowDeviceProfile {
    /// Preset name or "custom".
    pub name: String,
    /// Sequential write bandwidth cap; 0 means no cap.
    pub bandwidth_bytes_per_sec: u64,
    /// Independent stall sources, at most [`STALL_SOURCES_MAX`].
    pub stalls: Vec<StallSource>,
    /// Seed of the stall draws (each source gets its own stream derived from it): the same
    /// seed gives the same stalls at the same byte offsets.
    pub seed: u64,
}

/// Most stall sources a profile may have; further ones are ignored.
pub const STALL_SOURCES_MAX: usize = 4;

impl StallSource {
    /// A source whose stalls hit `per_operation_bytes`-sized operations as `stall` says.
    fn from_disk(what: &str, per_operation_bytes: u64, stall: &StallParams) -> StallSource {
        StallSource {
            what: what.to_string(),
            every_bytes_mean: per_operation_bytes.saturating_mul(1_000_000) / u64::from(stall.per_million.max(1)),
            length: StallLength::Pareto { scale_us: stall.scale_ns / 1_000, shape: stall.shape },
            us_max: stall.ns_max / 1_000,
        }
    }

    /// The length of one stall of this source, in nanoseconds, clamped to `us_max`.
    pub fn length_ns<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        draw_stall_ns(rng, &self.length, self.us_max)
    }
}

/// Bytes per `write(2)` assumed when converting the simulator's per-call stall probability
/// into bytes between stalls (the producer writes one 4 KiB page per call).
const SIM_WRITE_CALL_BYTES: u64 = 4096;

impl SlowDeviceProfile {
    /// Names accepted by [`SlowDeviceProfile::preset`]: the disk presets of
    /// [`wpsnap_workload::disk::DiskPreset`], which the simulator runs too.
    pub const PRESET_NAMES: [&'static str; 4] = ["hdd-7200", "sata-ssd", "nvme", "tmpfs"];

    /// A named preset (seed 0): [`SlowDeviceProfile::from_disk`] of the shared disk preset of
    /// the same name (figures and sources in `workload/src/disk/preset.rs` and
    /// docs/simulator.md). `None` for a name that is not a preset.
    pub fn preset(name: &str) -> Option<SlowDeviceProfile> {
        let preset: DiskPreset = name.parse().ok()?;
        Some(SlowDeviceProfile::from_disk(preset.name(), &preset.params()))
    }

    /// The emulation of a disk the simulator models with `disk`:
    /// - bandwidth: the device bandwidth with the per-request latency folded in
    ///   (`request / (request / bandwidth + request latency)`); none without a device;
    /// - a device stall source: the per-request stall probability turned into mean bytes
    ///   between stalls, with the same Pareto length and cap;
    /// - a write(2) stall source: the per-call probability, at one 4 KiB page per call, with
    ///   the same Pareto length and cap.
    ///
    /// Not translated (see the module doc): the page cache and its dirty throttling, the
    /// dump-tool pipe, competing I/O. Stall lengths keep microsecond resolution (every
    /// preset's figures are whole microseconds).
    pub fn from_disk(name: &str, disk: &DiskParams) -> SlowDeviceProfile {
        let mut stalls = Vec::new();
        let has_device = disk.bandwidth_bytes_per_sec > 0;
        if has_device && disk.device_stall.per_million > 0 {
            stalls.push(StallSource::from_disk(
                "device: seek to journal or metadata, garbage collection",
                disk.request_bytes,
                &disk.device_stall,
            ));
        }
        if disk.write_stall.per_million > 0 {
            stalls.push(StallSource::from_disk(
                "write(2): journal commit, pages under writeback",
                SIM_WRITE_CALL_BYTES,
                &disk.write_stall,
            ));
        }
        let bandwidth_bytes_per_sec = if has_device {
            let request_ns = transfer_ns(disk.request_bytes, disk.bandwidth_bytes_per_sec) + disk.request_latency_ns;
            (u128::from(disk.request_bytes) * NS_PER_SEC / u128::from(request_ns.max(1))) as u64
        } else {
            0
        };
        SlowDeviceProfile { name: name.to_string(), bandwidth_bytes_per_sec, stalls, seed: 0 }
    }

    /// The same profile with another seed for the stall draws.
    pub fn with_seed(mut self, seed: u64) -> SlowDeviceProfile {
        self.seed = seed;
        self
    }
}

/// What the emulation did. `emulation` is always true: it is there so a JSON report read
/// out of context still says the device was emulated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowDeviceReport {
    pub emulation: bool,
    pub note: String,
    pub profile: SlowDeviceProfile,
    pub bytes: u64,
    pub stalls: u64,
    pub stall_ns_total: u64,
    pub stall_ns_max: u64,
    /// Time spent sleeping in `write` (bandwidth cap and stalls together).
    pub sleep_ns_total: u64,
    /// Sleeps taken (waits under [`SLEEP_NS_MIN`] are owed, not slept); `None` where not
    /// counted (the fork child reports only the totals above).
    #[serde(default)]
    pub sleeps: Option<u64>,
}

/// The emulated device's clock and stall draws, without a writer: [`SlowDevice`] uses it, and
/// so does the fork backend's child (it allocates nothing after [`DevicePacer::new`]).
pub struct DevicePacer {
    profile: SlowDeviceProfile,
    /// Per stall source: its random stream and the bytes left until its next stall.
    sources: Vec<(ChaCha8Rng, u64)>,
    /// When the emulated device finishes what it has been given so far.
    device_free_at: Option<Instant>,
    report: SlowDeviceReport,
}

impl DevicePacer {
    /// A pacer for `profile`, idle, with its random stream seeded (allocates; do it before a fork).
    pub fn new(profile: SlowDeviceProfile) -> DevicePacer {
        let sources = profile
            .stalls
            .iter()
            .take(STALL_SOURCES_MAX)
            .enumerate()
            .map(|(i, source)| {
                // One stream per source, so sources do not shift each other's draws.
                let mut rng = ChaCha8Rng::seed_from_u64(profile.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let gap = next_stall_gap(&mut rng, source.every_bytes_mean);
                (rng, gap)
            })
            .collect();
        let report = SlowDeviceReport {
            emulation: true,
            note: format!(
                "EMULATED slow device '{}': bandwidth cap and injected stalls, not a real disk",
                profile.name
            ),
            profile: profile.clone(),
            bytes: 0,
            stalls: 0,
            stall_ns_total: 0,
            stall_ns_max: 0,
            sleep_ns_total: 0,
            sleeps: Some(0),
        };
        DevicePacer { profile, sources, device_free_at: None, report }
    }

    /// The emulation's report so far.
    pub fn report(&self) -> &SlowDeviceReport {
        &self.report
    }

    /// The final report.
    pub fn into_report(self) -> SlowDeviceReport {
        self.report
    }

    /// Charges `bytes` just written and sleeps until the emulated device would be done, once
    /// that is at least [`SLEEP_NS_MIN`] away (shorter waits are owed and paid with a later one).
    pub fn pace(&mut self, bytes: u64) {
        let wait = self.charge(bytes, Instant::now());
        if wait.as_nanos() >= u128::from(SLEEP_NS_MIN) {
            std::thread::sleep(wait);
            self.report.sleeps = self.report.sleeps.map(|n| n + 1);
            self.report.sleep_ns_total = self.report.sleep_ns_total.saturating_add(wait.as_nanos() as u64);
        }
    }

    /// Charges `bytes` to the emulated device and returns how long the caller must wait.
    fn charge(&mut self, bytes: u64, now: Instant) -> Duration {
        let transfer_ns = transfer_ns(bytes, self.profile.bandwidth_bytes_per_sec);
        let mut stall_ns: u64 = 0;
        for (source, (rng, bytes_until_stall)) in self.profile.stalls.iter().zip(self.sources.iter_mut()) {
            if source.every_bytes_mean == 0 {
                continue;
            }
            let mut left = bytes;
            // Several stalls can fall inside one large write.
            while left >= *bytes_until_stall {
                left -= *bytes_until_stall;
                let stall = source.length_ns(rng);
                stall_ns = stall_ns.saturating_add(stall);
                self.report.stalls += 1;
                self.report.stall_ns_total = self.report.stall_ns_total.saturating_add(stall);
                self.report.stall_ns_max = self.report.stall_ns_max.max(stall);
                *bytes_until_stall = next_stall_gap(rng, source.every_bytes_mean);
            }
            *bytes_until_stall -= left;
        }
        self.report.bytes += bytes;
        let start = self.device_free_at.map_or(now, |free| free.max(now));
        let free_at = start + Duration::from_nanos(transfer_ns.saturating_add(stall_ns));
        self.device_free_at = Some(free_at);
        free_at.saturating_duration_since(now)
    }
}

/// Shortest sleep the pacer takes. `thread::sleep` overshoots by about 50 us (the kernel's
/// default timer slack), so sleeping after every 4 KiB write would cap an emulated fast device
/// at ~20k writes/s whatever its bandwidth. Shorter waits accumulate on the device timeline
/// (`device_free_at`) and are paid by the first write that brings them to this: the average
/// bandwidth stays exact; single small writes are up to this much early.
pub const SLEEP_NS_MIN: u64 = 200_000;

/// Wraps a writer and slows it down to an emulated device's speed. See the module doc.
pub struct SlowDevice<W: Write> {
    inner: W,
    pacer: DevicePacer,
}

impl<W: Write> SlowDevice<W> {
    /// Wraps `inner`; the emulated device starts idle.
    pub fn new(inner: W, profile: SlowDeviceProfile) -> SlowDevice<W> {
        SlowDevice { inner, pacer: DevicePacer::new(profile) }
    }

    /// The emulation's report so far.
    pub fn report(&self) -> &SlowDeviceReport {
        self.pacer.report()
    }

    /// The emulated device's parameters.
    pub fn profile(&self) -> &SlowDeviceProfile {
        &self.pacer.profile
    }

    /// The inner writer and the emulation's report.
    pub fn into_parts(self) -> (W, SlowDeviceReport) {
        (self.inner, self.pacer.into_report())
    }
}

/// Most slices one vectored write passes on (Linux's IOV_MAX).
const WRITE_SLICES_MAX: usize = 1024;

impl<W: Write> Write for SlowDevice<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let chunk = &buf[..buf.len().min(WRITE_CHUNK_BYTES_MAX)];
        let n = self.inner.write(chunk)?;
        self.pacer.pace(n as u64);
        Ok(n)
    }

    // Paced the same way: at most WRITE_CHUNK_BYTES_MAX per call, the slices' prefix.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let mut room = WRITE_CHUNK_BYTES_MAX;
        let mut prefix = Vec::new();
        for b in bufs.iter().take(WRITE_SLICES_MAX) {
            if room == 0 {
                break;
            }
            let take = b.len().min(room);
            prefix.push(std::io::IoSlice::new(&b[..take]));
            room -= take;
        }
        let n = self.inner.write_vectored(&prefix)?;
        self.pacer.pace(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A slowed output commits like the output it wraps and adds the emulation report.
impl Output for SlowDevice<Box<dyn Output>> {
    fn commit(self: Box<Self>) -> Result<OutputSummary, OutputError> {
        let (inner, report) = self.into_parts();
        let mut summary = inner.commit()?;
        summary.slow_device_emulation = Some(report);
        Ok(summary)
    }

    fn abort(self: Box<Self>) {
        let (inner, _) = self.into_parts();
        inner.abort();
    }

    /// The inner output's descriptor: the fork child applies the emulation itself (see
    /// [`Output::fork_slow_device`]).
    fn fork_fd(&mut self) -> Option<std::os::fd::BorrowedFd<'_>> {
        if self.pacer.report.bytes > 0 {
            return None;
        }
        self.inner.fork_fd()
    }

    fn fork_slow_device(&self) -> Option<SlowDeviceProfile> {
        Some(self.pacer.profile.clone())
    }

    fn add_forked_bytes(&mut self, bytes: u64, emulation: Option<SlowDeviceReport>) {
        self.inner.add_forked_bytes(bytes, None);
        if let Some(report) = emulation {
            self.pacer.report = report;
        }
    }
}

/// Bytes until the next stall: exponential with the given mean (u64::MAX when stalls are off).
fn next_stall_gap(rng: &mut ChaCha8Rng, mean_bytes: u64) -> u64 {
    if mean_bytes == 0 {
        return u64::MAX;
    }
    let u: f64 = rng.random();
    // 1 - u is in (0, 1], so the logarithm is finite.
    let gap = -(mean_bytes as f64) * (1.0 - u).ln();
    (gap as u64).max(1)
}

/// One stall length in nanoseconds, clamped to `stall_us_max`. Pareto lengths come from the
/// shared [`pareto_ns`], the sampler the simulator's disk uses.
pub(crate) fn draw_stall_ns<R: Rng + ?Sized>(rng: &mut R, stall: &StallLength, stall_us_max: u64) -> u64 {
    const NS_PER_US: u64 = 1_000;
    match *stall {
        StallLength::LogNormal { median_us, sigma } => {
            // Box-Muller: a standard normal from two uniforms.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let us = median_us as f64 * (sigma * z).exp();
            let us = if us.is_finite() { us.clamp(0.0, stall_us_max as f64) } else { stall_us_max as f64 };
            (us * NS_PER_US as f64) as u64
        }
        StallLength::Pareto { scale_us, shape } => {
            pareto_ns(rng, scale_us.saturating_mul(NS_PER_US), shape, stall_us_max.saturating_mul(NS_PER_US))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(bandwidth: u64, every: u64) -> SlowDeviceProfile {
        SlowDeviceProfile {
            name: "test".into(),
            bandwidth_bytes_per_sec: bandwidth,
            stalls: vec![
                StallSource {
                    what: "test".into(),
                    every_bytes_mean: every,
                    length: StallLength::LogNormal { median_us: 1_000, sigma: 0.5 },
                    us_max: 50_000,
                },
                StallSource {
                    what: "test, rarer".into(),
                    every_bytes_mean: every.saturating_mul(3),
                    length: StallLength::Pareto { scale_us: 2_000, shape: 1.5 },
                    us_max: 50_000,
                },
            ],
            seed: 7,
        }
    }

    #[test]
    fn small_writes_are_paced_in_batches_not_one_sleep_each() {
        // 2000 writes of 4 KiB at 1 GB/s: 8.2 ms of device time. One sleep per write would
        // be 2000 sleeps (and ~50 us of timer slack each); owing short waits takes at most
        // device time / SLEEP_NS_MIN + 1 sleeps.
        let mut dev = SlowDevice::new(Vec::new(), profile(1_000_000_000, 0));
        let page = [7u8; 4096];
        for _ in 0..2000 {
            dev.write_all(&page).expect("in-memory write");
        }
        let report = dev.report();
        let device_ns = 2000 * 4096 * 1_000_000_000 / 1_000_000_000u64;
        let sleeps = report.sleeps.expect("counted");
        assert!(sleeps <= device_ns / SLEEP_NS_MIN + 1, "{sleeps} sleeps");
        assert_eq!(report.bytes, 2000 * 4096);
    }

    #[test]
    fn bandwidth_cap_charges_bytes_over_rate_back_to_back() {
        let mut dev = SlowDevice::new(Vec::new(), profile(1_000_000, 0));
        let t0 = Instant::now();
        // 1000 bytes at 1 MB/s is 1 ms; a second write queued behind it ends at 2 ms.
        assert_eq!(dev.pacer.charge(1_000, t0), Duration::from_millis(1));
        assert_eq!(dev.pacer.charge(1_000, t0), Duration::from_millis(2));
        // Later than the device is busy: only its own transfer time.
        assert_eq!(dev.pacer.charge(1_000, t0 + Duration::from_secs(1)), Duration::from_millis(1));
        assert_eq!(dev.report().stalls, 0);
    }

    #[test]
    fn stalls_follow_the_seed_and_not_the_write_sizes() {
        let total: u64 = 64 << 20;
        let run = |piece: u64| {
            let mut dev = SlowDevice::new(Vec::new(), profile(0, 1 << 20));
            let t0 = Instant::now();
            let mut done = 0;
            while done < total {
                dev.pacer.charge(piece, t0);
                done += piece;
            }
            dev.report().clone()
        };
        let small = run(4096);
        let large = run(1 << 20);
        assert_eq!(small.stalls, large.stalls, "same bytes, same seed: same stalls");
        assert_eq!(small.stall_ns_total, large.stall_ns_total);
        // About 64 + 21 stalls expected; a Poisson count this far off is ~impossible.
        assert!((45..=135).contains(&small.stalls), "{}", small.stalls);
        assert!(small.stall_ns_max <= 50_000_000);
    }

    #[test]
    fn stall_draws_respect_the_cap_and_the_median() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut draws: Vec<u64> = (0..2_001)
            .map(|_| draw_stall_ns(&mut rng, &StallLength::LogNormal { median_us: 1_000, sigma: 1.0 }, 20_000))
            .collect();
        draws.sort_unstable();
        let median = draws[1_000];
        assert!((800_000..1_250_000).contains(&median), "median {median} ns");
        assert!(draws.iter().all(|&d| d <= 20_000_000));
        let pareto: Vec<u64> = (0..1_000)
            .map(|_| draw_stall_ns(&mut rng, &StallLength::Pareto { scale_us: 500, shape: 1.5 }, 10_000))
            .collect();
        assert!(pareto.iter().all(|&d| (500_000..=10_000_000).contains(&d)));
    }

    #[test]
    fn writes_pass_through_and_the_report_says_emulation() {
        let mut dev = SlowDevice::new(Vec::new(), SlowDeviceProfile::preset("nvme").unwrap_or_else(|| profile(0, 0)));
        dev.write_all(&[7_u8; 10_000]).ok();
        let (bytes, report) = dev.into_parts();
        assert_eq!(bytes, vec![7_u8; 10_000]);
        assert!(report.emulation);
        assert!(report.note.contains("EMULATED"));
        assert_eq!(report.bytes, 10_000);
        let hdd = SlowDeviceProfile::preset("hdd-7200").unwrap_or_else(|| profile(0, 0));
        // 1 MiB at 100 MB/s plus 0.3 ms per request: about 97 MB/s.
        assert!((96_000_000..98_000_000).contains(&hdd.bandwidth_bytes_per_sec), "{}", hdd.bandwidth_bytes_per_sec);
        // 1% of 1 MiB requests and 1e-4 of 4 KiB writes stall.
        assert_eq!(hdd.stalls[0].every_bytes_mean, 100 << 20);
        assert_eq!(hdd.stalls[1].every_bytes_mean, 40_960_000);
        for name in SlowDeviceProfile::PRESET_NAMES {
            assert!(SlowDeviceProfile::preset(name).is_some(), "{name}");
        }
        assert!(SlowDeviceProfile::preset("floppy").is_none());
    }
}
