//! The text form of a [`PolicyConfig`]: what both command lines (`wpsnap run --policy`,
//! `wpsnap-sim --policy`) read, and what reports print.
//!
//! ```text
//! none
//! limit-scan-rate[:slow-fault=DUR,poll-timeout=DUR,throttle-pages=N]        (alias: seed)
//! limit-scan-rate-true-latency[:...the same...]          (alias: seed-true-latency)
//! bandwidth[:RATE][,burst=SIZE]                     RATE per second; default 256M
//! latency-target[:P99][,window=DUR,rate-min=N,burst-pages=N]        default P99 1ms
//! ```
//!
//! Sizes are binary with a suffix (`256M`, `64K`, `1G`), bytes with `B` (`5000B`), or a bare
//! number of decimal megabytes (`bandwidth:100` is 100 MB/s, the simulator's old spelling).
//! Durations take a unit (`5ms`, `250us`, `2s`, `7ns`); a bare number is microseconds
//! (`latency-target:1000`, the old spelling). A knob that does not belong to the policy is an
//! error that lists the ones that do; so is a value out of its bound ([`PolicyConfig::validate`]).
//!
//! `Display` prints the name, the main knob and every knob that differs from its default,
//! exactly, so printing and reading back gives the same config.

use super::{BandwidthParams, LatencyTargetParams, LimitScanRateParams, PolicyConfig};
use crate::config::ConfigError;
use crate::text::{UnitError, exact_bytes, exact_ns, parse_bytes, parse_duration_ns};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A bare number in a policy duration is this many nanoseconds (microseconds).
const BARE_DURATION_NS: u64 = 1_000;

const LIMIT_SCAN_RATE_KNOBS: &str = "slow-fault=DUR, poll-timeout=DUR, throttle-pages=N";
const BANDWIDTH_KNOBS: &str = "a rate first (or rate=SIZE), burst=SIZE";
const LATENCY_TARGET_KNOBS: &str = "a p99 first (or p99=DUR), window=DUR, rate-min=N, burst-pages=N";

/// Why a policy text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PolicyParseError {
    #[error(
        "unknown policy `{0}`: expected none, limit-scan-rate (or seed), limit-scan-rate-true-latency \
         (or seed-true-latency), bandwidth[:RATE] or latency-target[:P99]"
    )]
    Unknown(String),
    #[error("`{knob}` does not apply to policy {policy}; it takes {takes}")]
    Knob { policy: &'static str, knob: String, takes: &'static str },
    #[error("policy {policy}: `{knob}` is given twice")]
    Twice { policy: &'static str, knob: String },
    #[error("policy {policy}, `{knob}`")]
    Value {
        policy: &'static str,
        knob: &'static str,
        #[source]
        source: UnitError,
    },
    #[error("policy {policy}, `{knob}`: `{value}` is not a whole number")]
    Count { policy: &'static str, knob: &'static str, value: String },
    #[error("policy out of bounds")]
    Bounds(#[source] ConfigError),
}

/// One `key=value` (or, first only, a bare value) after the policy name.
struct Knob<'a> {
    key: Option<&'a str>,
    value: &'a str,
}

/// The knobs of one policy text, checked off as they are used.
struct Knobs<'a> {
    policy: &'static str,
    takes: &'static str,
    items: Vec<Knob<'a>>,
}

impl<'a> Knobs<'a> {
    fn new(policy: &'static str, takes: &'static str, text: Option<&'a str>) -> Result<Knobs<'a>, PolicyParseError> {
        let mut items: Vec<Knob<'a>> = Vec::new();
        for (i, part) in text.into_iter().flat_map(|t| t.split(',')).map(str::trim).enumerate() {
            let knob = match part.split_once('=') {
                Some((key, value)) => Knob { key: Some(key.trim()), value: value.trim() },
                // Only the first item may leave out its key (the policy's main knob).
                None if i == 0 => Knob { key: None, value: part },
                None => return Err(PolicyParseError::Knob { policy, knob: part.to_string(), takes }),
            };
            if knob.key.is_some() && items.iter().any(|k| k.key == knob.key) {
                return Err(PolicyParseError::Twice { policy, knob: part.to_string() });
            }
            items.push(knob);
        }
        Ok(Knobs { policy, takes, items })
    }

    /// Each knob under its key (`main` for the bare first one), or an error naming a key the
    /// policy does not have.
    fn each(
        &self,
        main: Option<&'static str>,
        mut apply: impl FnMut(&str, &str) -> Option<Result<(), PolicyParseError>>,
    ) -> Result<(), PolicyParseError> {
        for knob in &self.items {
            let Some(key) = knob.key.or(main) else {
                return Err(self.not_mine(knob.value));
            };
            if knob.key.is_some() && main == Some(key) && self.items.iter().any(|k| k.key.is_none()) {
                return Err(PolicyParseError::Twice { policy: self.policy, knob: key.to_string() });
            }
            apply(key, knob.value).unwrap_or_else(|| Err(self.not_mine(key)))?;
        }
        Ok(())
    }

    fn not_mine(&self, knob: &str) -> PolicyParseError {
        PolicyParseError::Knob { policy: self.policy, knob: knob.to_string(), takes: self.takes }
    }

    fn duration(&self, knob: &'static str, value: &str) -> Result<u64, PolicyParseError> {
        parse_duration_ns(value, Some(BARE_DURATION_NS)).map_err(|source| PolicyParseError::Value {
            policy: self.policy,
            knob,
            source,
        })
    }

    fn bytes(&self, knob: &'static str, value: &str) -> Result<u64, PolicyParseError> {
        parse_bytes(value).map_err(|source| PolicyParseError::Value { policy: self.policy, knob, source })
    }

    fn count<T: FromStr>(&self, knob: &'static str, value: &str) -> Result<T, PolicyParseError> {
        value.parse().map_err(|_| PolicyParseError::Count { policy: self.policy, knob, value: value.to_string() })
    }
}

fn limit_scan_rate(knobs: &Knobs<'_>) -> Result<LimitScanRateParams, PolicyParseError> {
    let mut p = LimitScanRateParams::default();
    knobs.each(None, |key, value| {
        Some(match key {
            "slow-fault" => knobs.duration("slow-fault", value).map(|v| p.slow_fault_ns = v),
            "poll-timeout" => knobs.duration("poll-timeout", value).map(|v| p.poll_timeout_ns = v),
            "throttle-pages" => knobs.count("throttle-pages", value).map(|v| p.throttle_pages = v),
            _ => return None,
        })
    })?;
    Ok(p)
}

fn bandwidth(knobs: &Knobs<'_>) -> Result<BandwidthParams, PolicyParseError> {
    let mut p = BandwidthParams::default();
    knobs.each(Some("rate"), |key, value| {
        Some(match key {
            "rate" => knobs.bytes("rate", value).map(|v| p.bytes_per_sec = v),
            "burst" => knobs.bytes("burst", value).map(|v| p.burst_bytes = v),
            _ => return None,
        })
    })?;
    Ok(p)
}

fn latency_target(knobs: &Knobs<'_>) -> Result<LatencyTargetParams, PolicyParseError> {
    let mut p = LatencyTargetParams::default();
    knobs.each(Some("p99"), |key, value| {
        Some(match key {
            "p99" => knobs.duration("p99", value).map(|v| p.target_p99_ns = v),
            "window" => knobs.duration("window", value).map(|v| p.window_ns = v),
            "rate-min" => knobs.count("rate-min", value).map(|v| p.rate_min_pages_per_sec = v),
            "burst-pages" => knobs.count("burst-pages", value).map(|v| p.burst_pages = v),
            _ => return None,
        })
    })?;
    Ok(p)
}

impl FromStr for PolicyConfig {
    type Err = PolicyParseError;

    /// Reads the text form (see the module doc) and checks the bounds.
    fn from_str(text: &str) -> Result<PolicyConfig, PolicyParseError> {
        let (name, rest) = match text.trim().split_once(':') {
            Some((name, rest)) => (name.trim(), Some(rest)),
            None => (text.trim(), None),
        };
        let policy = match name {
            "none" => {
                Knobs::new("none", "no knobs", rest)?.each(None, |_, _| None)?;
                PolicyConfig::None
            }
            "limit-scan-rate" | "seed" => PolicyConfig::LimitScanRate(limit_scan_rate(&Knobs::new(
                "limit-scan-rate",
                LIMIT_SCAN_RATE_KNOBS,
                rest,
            )?)?),
            "limit-scan-rate-true-latency" | "seed-true-latency" => PolicyConfig::LimitScanRateTrueLatency(
                limit_scan_rate(&Knobs::new("limit-scan-rate-true-latency", LIMIT_SCAN_RATE_KNOBS, rest)?)?,
            ),
            "bandwidth" => PolicyConfig::Bandwidth(bandwidth(&Knobs::new("bandwidth", BANDWIDTH_KNOBS, rest)?)?),
            "latency-target" => {
                PolicyConfig::LatencyTarget(latency_target(&Knobs::new("latency-target", LATENCY_TARGET_KNOBS, rest)?)?)
            }
            _ => return Err(PolicyParseError::Unknown(text.to_string())),
        };
        policy.validate().map_err(PolicyParseError::Bounds)?;
        Ok(policy)
    }
}

impl fmt::Display for PolicyConfig {
    /// The text form: the name, the main knob, and every other knob that is not its default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut knobs: Vec<String> = Vec::new();
        match self {
            PolicyConfig::None => {}
            PolicyConfig::LimitScanRate(p) | PolicyConfig::LimitScanRateTrueLatency(p) => {
                let d = LimitScanRateParams::default();
                if p.slow_fault_ns != d.slow_fault_ns {
                    knobs.push(format!("slow-fault={}", exact_ns(p.slow_fault_ns)));
                }
                if p.poll_timeout_ns != d.poll_timeout_ns {
                    knobs.push(format!("poll-timeout={}", exact_ns(p.poll_timeout_ns)));
                }
                if p.throttle_pages != d.throttle_pages {
                    knobs.push(format!("throttle-pages={}", p.throttle_pages));
                }
            }
            PolicyConfig::Bandwidth(p) => {
                knobs.push(exact_bytes(p.bytes_per_sec));
                if p.burst_bytes != BandwidthParams::default().burst_bytes {
                    knobs.push(format!("burst={}", exact_bytes(p.burst_bytes)));
                }
            }
            PolicyConfig::LatencyTarget(p) => {
                let d = LatencyTargetParams::default();
                knobs.push(exact_ns(p.target_p99_ns));
                if p.window_ns != d.window_ns {
                    knobs.push(format!("window={}", exact_ns(p.window_ns)));
                }
                if p.rate_min_pages_per_sec != d.rate_min_pages_per_sec {
                    knobs.push(format!("rate-min={}", p.rate_min_pages_per_sec));
                }
                if p.burst_pages != d.burst_pages {
                    knobs.push(format!("burst-pages={}", p.burst_pages));
                }
            }
        }
        f.write_str(self.name())?;
        if !knobs.is_empty() {
            write!(f, ":{}", knobs.join(","))?;
        }
        Ok(())
    }
}
