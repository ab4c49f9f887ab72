//! Throttle policies: when may the background scan capture its next page?
//!
//! A policy sees what the engine sees (fault events read, captures completed, fault waits
//! reported) and answers one question through [`ThrottlePolicy::scan_gate`]. Faults are never
//! throttled: the engine serves them before asking a policy anything.

mod bandwidth;
mod latency_target;
mod limit_scan_rate;
mod text;
mod token_bucket;

pub use bandwidth::BandwidthPolicy;
pub use latency_target::LatencyTargetPolicy;
pub use limit_scan_rate::{LatencySource, LimitScanRatePolicy};
pub use text::PolicyParseError;
pub use token_bucket::TokenBucket;

use crate::config::{ConfigError, IterationMode, ServiceModel};
use crate::time::Nanos;
use serde::{Deserialize, Serialize};

/// Why a page was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// A writer faulted on it.
    Fault,
    /// The linear scan reached it.
    Scan,
}

/// What happened, as a policy is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A fault event was read from the fault source.
    FaultRead,
    /// A capture completed. `seed_latency` is the seed's measure (from the last fault event
    /// read to this capture), present on the first capture after a fault was read.
    Captured { cause: Cause, pages: u64, seed_latency: Option<Nanos> },
    /// The engine's own measure of one fault: event read to unprotect issued.
    ServiceLatency(Nanos),
    /// A writer's real wait, from its faulting write to its wake-up, as the driver reports it.
    FaultWait(Nanos),
    /// The scan started a capture of `pages` pages.
    ScanStarted { pages: u64 },
    /// `bytes` went into the snapshot stream (page records: a zero page costs its header).
    StreamBytes { bytes: u64 },
    /// The oldest fault still queued (not yet captured: no room, or its lane busy) has waited
    /// this long since its event was read: a writer is blocked at least that long. The
    /// driver's own measure of a wait still in progress, observed whenever a lane polls.
    FaultQueueAge(Nanos),
}

/// Which measure of fault latency drove a policy's decisions, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyMeasure {
    /// The writers' own waits, reported by the driver's writers (`FaultWait`).
    WriterReported,
    /// What the driver measures itself: event read to unprotect (`ServiceLatency`) and the
    /// age of queued faults (`FaultQueueAge`), because no writer reported a wait.
    DriverMeasured,
}

/// A policy's answer to "may the scan capture now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Yes, up to `pages_max` pages.
    Open { pages_max: u64 },
    /// No; ask again at `until`, or after the next observation if `None`.
    Closed { until: Option<Nanos> },
}

/// The one trait every policy implements.
pub trait ThrottlePolicy: std::fmt::Debug + Send {
    /// Learns of an event. Called by the engine only.
    fn observe(&mut self, now: Nanos, observation: Observation);
    /// May the scan capture now, and how much?
    fn scan_gate(&mut self, now: Nanos) -> Gate;
    /// The latency measure that drove the decisions so far; `None` for a policy that uses
    /// no latency, or before any was seen.
    fn latency_measure(&self) -> Option<LatencyMeasure> {
        None
    }
    /// How often the policy slowed the scan down because of latency.
    fn slowdowns(&self) -> u64 {
        0
    }
    /// QEMU's rate limit: `Some(until)` while the stream has used up its bandwidth for now.
    /// In the qemu model that ends the iteration and the one thread sleeps until then, reading
    /// no fault (`migration_rate_limit`). Only `bandwidth` limits the rate.
    fn rate_limited_until(&mut self, now: Nanos) -> Option<Nanos> {
        let _ = now;
        None
    }
}

/// Policy selection and parameters, as they appear in config files and reports.
///
/// Its text form (`FromStr`/`Display`, in `policy/text.rs`) is the one both command lines
/// read: `none`, `limit-scan-rate`, `bandwidth:256M`, `latency-target:1ms`; see
/// docs/policies.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// No limiter: what QEMU merged.
    None,
    /// The 2020 patch's `limit_scan_rate()`, fed with the patch's own latency measure.
    /// Configs written before the rename say `"seed"`, still accepted.
    #[serde(alias = "seed")]
    LimitScanRate(LimitScanRateParams),
    /// The same rule fed with the writers' real fault waits (formerly `seed-true-latency`).
    #[serde(alias = "seed-true-latency")]
    LimitScanRateTrueLatency(LimitScanRateParams),
    /// QEMU's max-bandwidth: stream bytes per time slice; the scan waits for the next slice
    /// once a slice's bytes are used up (faults are never held back by the gate, but their
    /// bytes count, and in the qemu model the thread sleeps out the slice).
    Bandwidth(BandwidthParams),
    /// Paces the scan to keep the fault-wait p99 under a target.
    LatencyTarget(LatencyTargetParams),
}

/// The constants of the patch's `limit_scan_rate()`, named as Tiger Style names limits
/// (unit last).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitScanRateParams {
    /// `FAULT_HIGH_LATENCY_NS`: a fault slower than this starts throttling. Patch: 5 ms.
    pub slow_fault_ns: u64,
    /// `SLOW_FAULT_POLL_TMO`: how long the scan waits per page while throttled. Patch: 5 ms.
    pub poll_timeout_ns: u64,
    /// `SLOW_FAULT_SKIP_PAGES`: pages throttled after each slow fault. Patch: 200.
    pub throttle_pages: u32,
}

impl Default for LimitScanRateParams {
    fn default() -> Self {
        LimitScanRateParams { slow_fault_ns: 5_000_000, poll_timeout_ns: 5_000_000, throttle_pages: 200 }
    }
}

/// The `bandwidth` policy's token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthParams {
    /// Stream bytes per second.
    pub bytes_per_sec: u64,
    /// The rate is enforced per slice of this length: each slice may carry
    /// `bytes_per_sec * slice_ns / 10^9` bytes. QEMU: `BUFFER_DELAY`, 100 ms.
    #[serde(default = "default_slice_ns")]
    pub slice_ns: u64,
}

/// QEMU's `BUFFER_DELAY` (the max-bandwidth limit is `max_bandwidth / XFER_LIMIT_RATIO` per
/// 100 ms).
pub const BANDWIDTH_SLICE_NS_DEFAULT: u64 = 100_000_000;

fn default_slice_ns() -> u64 {
    BANDWIDTH_SLICE_NS_DEFAULT
}

impl BandwidthParams {
    /// `bytes_per_sec` in QEMU's 100 ms slices.
    pub fn new(bytes_per_sec: u64) -> BandwidthParams {
        BandwidthParams { bytes_per_sec, slice_ns: BANDWIDTH_SLICE_NS_DEFAULT }
    }
}

impl Default for BandwidthParams {
    /// 256 MiB/s (the `wpsnap` command's long-standing default) in QEMU's 100 ms slices.
    fn default() -> Self {
        BandwidthParams::new(256 << 20)
    }
}

/// The `latency-target` controller's target and pacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTargetParams {
    /// The fault-wait p99 to stay under.
    #[serde(default = "default_target_ns")]
    pub target_p99_ns: u64,
    /// How often the controller judges the waits it saw and adjusts the rate.
    #[serde(default = "default_window_ns")]
    pub window_ns: u64,
    /// The scan never goes slower than this (it must finish).
    #[serde(default = "default_rate_min")]
    pub rate_min_pages_per_sec: u64,
    /// Pages the scan may take at once when paced.
    #[serde(default = "default_burst_pages")]
    pub burst_pages: u64,
}

fn default_target_ns() -> u64 {
    1_000_000
}
fn default_window_ns() -> u64 {
    20_000_000
}
fn default_rate_min() -> u64 {
    256
}
fn default_burst_pages() -> u64 {
    16
}

impl Default for LatencyTargetParams {
    fn default() -> Self {
        LatencyTargetParams {
            target_p99_ns: default_target_ns(),
            window_ns: default_window_ns(),
            rate_min_pages_per_sec: default_rate_min(),
            burst_pages: default_burst_pages(),
        }
    }
}

/// Upper bound on policy delays, so a typo cannot stall a snapshot for a day.
pub const POLICY_DELAY_NS_MAX: u64 = 10_000_000_000;
/// Upper bound on `throttle_pages`.
pub const THROTTLE_PAGES_MAX: u32 = 1 << 20;

impl PolicyConfig {
    /// The policy a session uses when none is asked for, per service model.
    ///
    /// Decoupled: `none`. Its faults never wait for the sink while the memory budget has
    /// room, so a policy can only slow the scan, which lengthens the protection window, and a
    /// store to a page the scan has not reached faults: measured on the real backend,
    /// `latency-target` doubled the window (222-296 ms against 432-614 ms for 256 MiB and a
    /// full-rate writer, 3 rounds each) with 3-7x the faults, and no policy reduced the
    /// writers' long waits on the bursty pipe or the loop disk (docs/research.md, "Policies on
    /// the real backend"). Qemu: `latency-target`, the only policy that removed waits there.
    pub fn default_for(model: ServiceModel) -> PolicyConfig {
        match model {
            ServiceModel::Decoupled => PolicyConfig::None,
            ServiceModel::Qemu => PolicyConfig::LatencyTarget(LatencyTargetParams::default()),
        }
    }

    /// `limit-scan-rate` with the patch's constants.
    pub fn limit_scan_rate() -> PolicyConfig {
        PolicyConfig::LimitScanRate(LimitScanRateParams::default())
    }

    /// The old name of [`PolicyConfig::limit_scan_rate`], kept for callers written before the
    /// rename (as the `seed` spelling is kept in config files and on command lines).
    pub fn seed() -> PolicyConfig {
        PolicyConfig::limit_scan_rate()
    }

    /// The policy's name, as in config files, reports and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyConfig::None => "none",
            PolicyConfig::LimitScanRate(_) => "limit-scan-rate",
            PolicyConfig::LimitScanRateTrueLatency(_) => "limit-scan-rate-true-latency",
            PolicyConfig::Bandwidth(_) => "bandwidth",
            PolicyConfig::LatencyTarget(_) => "latency-target",
        }
    }

    /// The patch ran in write-tracking mode (1000 ms iterations); the others run as QEMU does
    /// now.
    pub fn default_iteration_mode(&self) -> IterationMode {
        match self {
            PolicyConfig::LimitScanRate(_) | PolicyConfig::LimitScanRateTrueLatency(_) => IterationMode::WriteTracking,
            _ => IterationMode::Ordinary,
        }
    }

    /// Checks every parameter against its bound; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let in_range = |field, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(ConfigError::field(field, format!("{v} is outside {lo}..={hi}")))
            } else {
                Ok(())
            }
        };
        match self {
            PolicyConfig::None => Ok(()),
            PolicyConfig::LimitScanRate(p) | PolicyConfig::LimitScanRateTrueLatency(p) => {
                in_range("policy.slow_fault_ns", p.slow_fault_ns, 1, POLICY_DELAY_NS_MAX)?;
                in_range("policy.poll_timeout_ns", p.poll_timeout_ns, 1, POLICY_DELAY_NS_MAX)?;
                in_range("policy.throttle_pages", p.throttle_pages as u64, 1, THROTTLE_PAGES_MAX as u64)
            }
            PolicyConfig::Bandwidth(p) => {
                in_range("policy.bytes_per_sec", p.bytes_per_sec, 4096, 1 << 40)?;
                in_range("policy.slice_ns", p.slice_ns, 1_000_000, POLICY_DELAY_NS_MAX)
            }
            PolicyConfig::LatencyTarget(p) => {
                in_range("policy.target_p99_ns", p.target_p99_ns, 1_000, POLICY_DELAY_NS_MAX)?;
                in_range("policy.window_ns", p.window_ns, 100_000, POLICY_DELAY_NS_MAX)?;
                in_range("policy.rate_min_pages_per_sec", p.rate_min_pages_per_sec, 1, 1 << 30)?;
                in_range("policy.burst_pages", p.burst_pages, 1, 1 << 16)
            }
        }
    }

    /// Builds the policy for pages of `page_size` bytes.
    pub fn build(&self, page_size: u64) -> Box<dyn ThrottlePolicy> {
        match *self {
            PolicyConfig::None => Box::new(NoPolicy),
            PolicyConfig::LimitScanRate(p) => Box::new(LimitScanRatePolicy::new(p, LatencySource::PatchMeasure)),
            PolicyConfig::LimitScanRateTrueLatency(p) => Box::new(LimitScanRatePolicy::new(p, LatencySource::TrueWait)),
            PolicyConfig::Bandwidth(p) => Box::new(BandwidthPolicy::new(p, page_size)),
            PolicyConfig::LatencyTarget(p) => Box::new(LatencyTargetPolicy::new(p)),
        }
    }
}

/// `none`: the scan is never held back.
#[derive(Debug)]
pub struct NoPolicy;

impl ThrottlePolicy for NoPolicy {
    fn observe(&mut self, _now: Nanos, _observation: Observation) {}
    fn scan_gate(&mut self, _now: Nanos) -> Gate {
        Gate::Open { pages_max: u64::MAX }
    }
}
