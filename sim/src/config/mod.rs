//! A simulation's configuration: region and engine, writers, disk, handler costs, bounds.
//!
//! Config files are JSON with unknown fields rejected; every bound is checked by
//! [`SimConfig::validate`], whose error names the field.

mod swarm;

pub use swarm::swarm_config;

use crate::disk::{DiskParams, DiskPreset};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use wpsnap_core::{EngineConfig, PolicyConfig, ServiceModel};
use wpsnap_workload::{Pattern, WriteTiming};

/// Longest virtual time a run may last (one hour); a run that reaches it cancels its
/// snapshot, unblocks its writers and says so.
pub const SIM_TIME_NS_MAX: u64 = 3_600_000_000_000;
/// Most simulated writer threads.
pub const WRITERS_MAX: u32 = 256;
/// Regions up to this many pages keep a full version per page, so the image can be
/// compared with memory at the snapshot instant (4 bytes per page; 16 MiB at the bound).
pub const VERSIONED_PAGES_MAX: u64 = 1 << 22;
/// Most pages the decoupled model's sink writes in one call.
pub const SINK_BATCH_PAGES_MAX: u64 = 4096;
/// Bytes a page takes in the stream besides its data (QEMU: an 8-byte offset+flags word).
pub const STREAM_PAGE_HEADER_BYTES: u64 = 8;

/// A configuration value out of bounds; names the field.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct ConfigFieldError {
    pub field: String,
    pub reason: String,
}

impl ConfigFieldError {
    /// An error for `field` (a dotted path such as `disk.request_bytes`).
    pub fn new(field: &str, reason: String) -> ConfigFieldError {
        ConfigFieldError { field: field.to_string(), reason }
    }
}

/// The simulated writer threads (vCPUs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritersConfig {
    pub count: u32,
    pub pattern: Pattern,
    /// Each writer's mean write rate (the inverse of its mean think time).
    pub writes_per_sec: f64,
    /// Open loop (the default, as wpsnap's real writers, `linux/src/writers`): each writer
    /// keeps a Poisson schedule of due times and, after a blocked write, writes back to back
    /// (one `store_ns` apart) until it has caught up. Closed loop (`false`): the next think
    /// time is drawn from the end of each write, so a block delays every later write.
    #[serde(default = "default_true")]
    pub open_loop: bool,
    /// The shortest time between two writes of one writer (one store and its bookkeeping):
    /// the pace of an open-loop writer catching up.
    #[serde(default = "default_store_ns")]
    pub store_ns: u64,
    /// The time from a writer's wake-up (its page unprotected) to the writer running again,
    /// drawn per wake-up from this table of `[cumulative probability, ns]` points (linear in
    /// between): CPU contention on a loaded machine. Measured with
    /// `cargo run --release -p wpsnap-sim --example wake_latency -- HOGS SAMPLES`
    /// (`docs/research/wake-latency/`). Empty: every wake-up takes `handler.wake_ns`.
    #[serde(default)]
    pub wake_latency: Vec<[f64; 2]>,
}

/// Most points a wake-latency table may have.
pub const WAKE_LATENCY_POINTS_MAX: usize = 1_000;

/// Costs of the kernel and handler steps around a fault. Defaults from
/// shared/notes/physical-limits.md: a uffd-wp round trip is 4.74 us on bare metal (2.43
/// delivery + 1.16 unprotect + 1.15 resume) and 8 us p50 in this project's VM; the
/// defaults split the VM figure in the bare-metal proportions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerCosts {
    /// From the faulting write to the event being readable by the handler.
    pub fault_delivery_ns: u64,
    /// One `UFFDIO_WRITEPROTECT` (unprotect) call.
    pub unprotect_ns: u64,
    /// From the unprotect to the writer running again.
    pub wake_ns: u64,
    /// Per-page cost of the saving thread (read the page, build its header, copy it).
    pub capture_overhead_ns: u64,
    /// A lane's work after each capture's unprotect, however many pages it had, before it
    /// reads fault events or takes its next capture (engine turn, digests, staging hand-off,
    /// the loop back to the event read; `linux/src/snapshot/lanes.rs`). A writer woken by the
    /// unprotect whose next fault arrives within this time is read before the next scan
    /// batch starts.
    #[serde(default)]
    pub capture_fixed_ns: u64,
    /// The share of a CPU (percent) the background scan gets: its per-page cost is
    /// `capture_overhead_ns * 100 / scan_cpu_percent`. A thread that is always runnable gets
    /// its fair share on a loaded machine, while a thread woken from sleep (a fault capture)
    /// runs at once; on the 2-core VM at load 9-12 the real decoupled scan captured about one
    /// page per 22 us (`pages_by_scan` over the protection window in the held-out reports).
    #[serde(default = "default_percent_100")]
    pub scan_cpu_percent: u8,
    /// Write-protecting the region at the start, writers paused (16-22 ms/GiB measured
    /// with 4 KiB pages).
    pub protect_ns_per_gib: u64,
}

impl Default for HandlerCosts {
    fn default() -> Self {
        HandlerCosts {
            fault_delivery_ns: 4_000,
            unprotect_ns: 2_000,
            wake_ns: 2_000,
            capture_overhead_ns: 300,
            capture_fixed_ns: 0,
            scan_cpu_percent: 100,
            protect_ns_per_gib: 19_000_000,
        }
    }
}

/// Everything one run needs besides its seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Region geometry, service model, policy and the engine's bounds.
    pub engine: EngineConfig,
    pub writers: WritersConfig,
    /// The disk preset; its parameters are used unless `disk` gives them all.
    #[serde(default = "default_preset")]
    pub disk_preset: DiskPreset,
    #[serde(default)]
    pub disk: Option<DiskParams>,
    #[serde(default)]
    pub handler: HandlerCosts,
    /// Share of pages that are all zero at the snapshot instant; QEMU sends those as a
    /// header only (the seed's 16 GB guest made a ~3 GB file).
    #[serde(default)]
    pub zero_page_percent: u8,
    /// Writers run this long before the snapshot starts.
    #[serde(default = "default_warmup")]
    pub warmup_ns: u64,
    /// Pages the decoupled model's sink writes per call.
    #[serde(default = "default_sink_batch")]
    pub sink_batch_pages: u64,
    /// Bound on virtual time.
    #[serde(default = "default_time_max")]
    pub sim_time_ns_max: u64,
    /// Also run the same seed without a snapshot, to measure writer throughput lost.
    #[serde(default = "default_true")]
    pub baseline: bool,
}

fn default_preset() -> DiskPreset {
    DiskPreset::Hdd7200
}
fn default_warmup() -> u64 {
    10_000_000
}
fn default_sink_batch() -> u64 {
    64
}
fn default_time_max() -> u64 {
    SIM_TIME_NS_MAX
}
fn default_true() -> bool {
    true
}
fn default_percent_100() -> u8 {
    100
}
fn default_store_ns() -> u64 {
    300
}

impl SimConfig {
    /// The documented default scenario (`wpsnap-sim run --seed N`): the seed author's test
    /// bed scaled to 4 GiB: 4 KiB pages, qemu model, no limiter, 6 vCPUs playing video,
    /// 80% zero pages, the `hdd-7200` disk.
    pub fn default_scenario() -> SimConfig {
        SimConfig::new(4 << 30, ServiceModel::Qemu, PolicyConfig::None, DiskPreset::Hdd7200)
    }

    /// A config with the default writers (6 video writers at 20 000 writes/s each) and
    /// 80% zero pages for a region of `region_bytes` in 4 KiB pages.
    pub fn new(region_bytes: u64, model: ServiceModel, policy: PolicyConfig, disk: DiskPreset) -> SimConfig {
        SimConfig {
            engine: EngineConfig::new(4096, (region_bytes / 4096).max(1), model, policy),
            writers: WritersConfig {
                count: 6,
                pattern: Pattern::Video,
                writes_per_sec: 20_000.0,
                open_loop: true,
                store_ns: default_store_ns(),
                wake_latency: Vec::new(),
            },
            disk_preset: disk,
            disk: None,
            handler: HandlerCosts::default(),
            zero_page_percent: 80,
            warmup_ns: default_warmup(),
            sink_batch_pages: default_sink_batch(),
            sim_time_ns_max: SIM_TIME_NS_MAX,
            baseline: true,
        }
    }

    /// The disk parameters in force.
    pub fn disk_params(&self) -> DiskParams {
        self.disk.clone().unwrap_or_else(|| self.disk_preset.params())
    }

    /// The writers' timing.
    pub fn timing(&self) -> Result<WriteTiming, ConfigFieldError> {
        WriteTiming::for_pattern(&self.writers.pattern, self.writers.writes_per_sec)
            .map_err(|e| ConfigFieldError::new("writers.writes_per_sec", e.to_string()))
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigFieldError> {
        self.engine.validate().map_err(|e| ConfigFieldError::new(&format!("engine.{}", e.field), e.reason))?;
        if self.writers.count > WRITERS_MAX {
            return Err(ConfigFieldError::new(
                "writers.count",
                format!("{} is above {WRITERS_MAX}", self.writers.count),
            ));
        }
        self.writers.pattern.validate().map_err(|e| ConfigFieldError::new("writers.pattern", e.to_string()))?;
        self.timing()?;
        self.validate_wake_latency()?;
        if self.writers.store_ns > 1_000_000 {
            return Err(ConfigFieldError::new("writers.store_ns", "above 1 ms".into()));
        }
        self.disk_params().validate().map_err(|e| ConfigFieldError::new(&format!("disk.{}", e.field), e.reason))?;
        let h = &self.handler;
        for (field, v) in [
            ("handler.fault_delivery_ns", h.fault_delivery_ns),
            ("handler.unprotect_ns", h.unprotect_ns),
            ("handler.wake_ns", h.wake_ns),
            ("handler.capture_overhead_ns", h.capture_overhead_ns),
            ("handler.capture_fixed_ns", h.capture_fixed_ns),
        ] {
            if v > 1_000_000_000 {
                return Err(ConfigFieldError::new(field, format!("{v} is above one second")));
            }
        }
        if h.protect_ns_per_gib > 10_000_000_000 {
            return Err(ConfigFieldError::new("handler.protect_ns_per_gib", "above 10 s per GiB".into()));
        }
        if h.scan_cpu_percent == 0 || h.scan_cpu_percent > 100 {
            return Err(ConfigFieldError::new("handler.scan_cpu_percent", "outside 1..=100".into()));
        }
        if self.zero_page_percent > 100 {
            return Err(ConfigFieldError::new("zero_page_percent", format!("{} is above 100", self.zero_page_percent)));
        }
        if self.sink_batch_pages == 0 || self.sink_batch_pages > SINK_BATCH_PAGES_MAX {
            return Err(ConfigFieldError::new(
                "sink_batch_pages",
                format!("{} is outside 1..={SINK_BATCH_PAGES_MAX}", self.sink_batch_pages),
            ));
        }
        if self.sim_time_ns_max == 0 || self.sim_time_ns_max > SIM_TIME_NS_MAX {
            return Err(ConfigFieldError::new("sim_time_ns_max", format!("outside 1..={SIM_TIME_NS_MAX}")));
        }
        if self.warmup_ns >= self.sim_time_ns_max {
            return Err(ConfigFieldError::new("warmup_ns", "must be below sim_time_ns_max".into()));
        }
        Ok(())
    }

    /// The wake-latency table: probabilities rising from 0 to 1, delays not falling, each
    /// below one second.
    fn validate_wake_latency(&self) -> Result<(), ConfigFieldError> {
        let table = &self.writers.wake_latency;
        if table.is_empty() {
            return Ok(());
        }
        let bad = |reason: &str| Err(ConfigFieldError::new("writers.wake_latency", reason.to_string()));
        if table.len() < 2 || table.len() > WAKE_LATENCY_POINTS_MAX {
            return bad(&format!("needs 2..={WAKE_LATENCY_POINTS_MAX} points"));
        }
        if table[0][0] != 0.0 || table[table.len() - 1][0] != 1.0 {
            return bad("the probabilities must start at 0 and end at 1");
        }
        for pair in table.windows(2) {
            if !(pair[1][0] >= pair[0][0] && pair[1][1] >= pair[0][1]) {
                return bad("probabilities and delays must not fall");
            }
        }
        if table.iter().any(|p| !(p[1] >= 0.0 && p[1] < 1e9)) {
            return bad("delays must be within 0 ns and one second");
        }
        Ok(())
    }

    /// Reads a JSON config, naming the bad field on error.
    pub fn from_json(text: &str) -> Result<SimConfig, ConfigFieldError> {
        let config: SimConfig =
            serde_json::from_str(text).map_err(|e| ConfigFieldError::new("(config file)", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_is_valid_and_round_trips() {
        let c = SimConfig::default_scenario();
        assert_eq!(c.validate(), Ok(()));
        let json = serde_json::to_string(&c).expect("serialises");
        assert_eq!(SimConfig::from_json(&json), Ok(c));
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = SimConfig::default_scenario();
        c.writers.count = 10_000;
        assert_eq!(c.validate().map_err(|e| e.field), Err("writers.count".to_string()));
        let mut c = SimConfig::default_scenario();
        c.engine.scan_batch_pages = 0;
        assert_eq!(c.validate().map_err(|e| e.field), Err("engine.scan_batch_pages".to_string()));
        let mut c = SimConfig::default_scenario();
        let mut disk = c.disk_params();
        disk.request_bytes = 1;
        c.disk = Some(disk);
        assert_eq!(c.validate().map_err(|e| e.field), Err("disk.request_bytes".to_string()));
    }

    #[test]
    fn a_wake_latency_table_must_rise_from_0_to_1() {
        let mut c = SimConfig::default_scenario();
        c.writers.wake_latency = vec![[0.0, 1_000.0], [1.0, 5_000.0]];
        assert_eq!(c.validate(), Ok(()));
        for bad in [vec![[0.0, 1_000.0]], vec![[0.1, 1_000.0], [1.0, 5_000.0]], vec![[0.0, 5_000.0], [1.0, 1_000.0]]] {
            c.writers.wake_latency = bad;
            assert_eq!(c.validate().map_err(|e| e.field), Err("writers.wake_latency".to_string()));
        }
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let mut v = serde_json::to_value(SimConfig::default_scenario()).expect("serialises");
        v["writers"]["speed"] = serde_json::json!(3);
        let err = SimConfig::from_json(&v.to_string()).expect_err("unknown field");
        assert!(err.reason.contains("speed"), "{err}");
    }
}
