//! The test guest's settings, as the multiboot command line it parses (the same text works for
//! QEMU's `-append`).

use serde::{Deserialize, Serialize};

/// Which pages the guest stores to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestPattern {
    /// A uniformly random page per store.
    Uniform,
    /// Zipf-like (theta about 1): a log-uniform rank scattered over the region by a hash.
    Zipf,
    /// Page after page, wrapping around.
    Sequential,
    /// Uniform stores for `burst_on_ms`, then idle for `burst_off_ms`, repeated.
    Burst,
}

impl GuestPattern {
    /// The name on the guest's command line.
    pub fn name(self) -> &'static str {
        match self {
            GuestPattern::Uniform => "uniform",
            GuestPattern::Zipf => "zipf",
            GuestPattern::Sequential => "sequential",
            GuestPattern::Burst => "burst",
        }
    }
}

impl std::str::FromStr for GuestPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [GuestPattern::Uniform, GuestPattern::Zipf, GuestPattern::Sequential, GuestPattern::Burst]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown guest pattern {s}: expected uniform, zipf, sequential or burst"))
    }
}

/// What the guest does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    pub pattern: GuestPattern,
    /// Store region in MiB (0: all memory above the layout's region start).
    pub region_mb: u64,
    pub seed: u64,
    /// TSC frequency the guest converts cycles with (the host's, from KVM_GET_TSC_KHZ).
    pub tsc_khz: u64,
    /// Stats line period.
    pub report_ms: u64,
    /// Verify the self-check records at every report, not only when asked.
    pub check_every: bool,
    pub burst_on_ms: u64,
    pub burst_off_ms: u64,
    /// Test hook: execute an invalid instruction after this long (0: never).
    pub fault_after_ms: u64,
    /// Test hook: exit through port 0x501 after this long (0: never).
    pub exit_after_ms: u64,
}

impl Default for GuestConfig {
    fn default() -> Self {
        GuestConfig {
            pattern: GuestPattern::Uniform,
            region_mb: 0,
            seed: 1,
            tsc_khz: 0,
            report_ms: 500,
            check_every: false,
            burst_on_ms: 100,
            burst_off_ms: 100,
            fault_after_ms: 0,
            exit_after_ms: 0,
        }
    }
}

impl GuestConfig {
    /// The command line for `vcpus` vCPUs.
    pub fn cmdline(&self, vcpus: u32) -> String {
        let mut s = format!(
            "pattern={} seed={} tsc_khz={} report_ms={} cpus={vcpus} check_every={} burst_on_ms={} burst_off_ms={}",
            self.pattern.name(),
            self.seed,
            self.tsc_khz,
            self.report_ms,
            u8::from(self.check_every),
            self.burst_on_ms,
            self.burst_off_ms
        );
        if self.region_mb > 0 {
            s += &format!(" region_mb={}", self.region_mb);
        }
        if self.fault_after_ms > 0 {
            s += &format!(" fault_after_ms={}", self.fault_after_ms);
        }
        if self.exit_after_ms > 0 {
            s += &format!(" exit_after_ms={}", self.exit_after_ms);
        }
        s
    }
}
