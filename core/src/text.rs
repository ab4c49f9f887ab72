//! Text forms both command lines read and every report prints: durations, byte rates and the
//! service model. Pure string work, no I/O.
//!
//! Durations print with three significant digits in the largest unit that keeps the number
//! at least 1 ("850 ns", "12.3 µs", "4.56 ms", "1.20 s"): that is [`Nanos`]'s `Display`, the
//! one duration formatter of the project. Parameters print exactly instead ([`exact_ns`],
//! [`exact_bytes`]), so a config printed and read back is the same config.

use crate::config::ServiceModel;
use crate::time::Nanos;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

impl fmt::Display for Nanos {
    /// Three significant digits in a readable unit: "850 ns", "12.3 µs", "4.56 ms", "123 ms",
    /// "1.20 s". For exact values see [`exact_ns`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let (value, unit) = if ns < NS_PER_US {
            return write!(f, "{ns} ns");
        } else if ns < NS_PER_MS {
            (ns as f64 / NS_PER_US as f64, "µs")
        } else if ns < NS_PER_S {
            (ns as f64 / NS_PER_MS as f64, "ms")
        } else {
            (ns as f64 / NS_PER_S as f64, "s")
        };
        if value < 10.0 {
            write!(f, "{value:.2} {unit}")
        } else if value < 100.0 {
            write!(f, "{value:.1} {unit}")
        } else {
            write!(f, "{value:.0} {unit}")
        }
    }
}

/// `ns` in the largest unit that divides it exactly ("5ms", "1500us", "7ns"), as
/// [`parse_duration_ns`] reads it back.
pub fn exact_ns(ns: u64) -> String {
    for (unit, per) in [("s", NS_PER_S), ("ms", NS_PER_MS), ("us", NS_PER_US)] {
        if ns != 0 && ns.is_multiple_of(per) {
            return format!("{}{unit}", ns / per);
        }
    }
    format!("{ns}ns")
}

/// Reads "5ms", "1500us", "1500µs", "2s", "7ns". A bare number is `bare_unit_ns`
/// nanoseconds each (the old spellings gave microseconds), or an error when that is `None`.
pub fn parse_duration_ns(text: &str, bare_unit_ns: Option<u64>) -> Result<u64, UnitError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let per = match unit.trim() {
        "" => bare_unit_ns.ok_or_else(|| UnitError::Duration(text.to_string()))?,
        "ns" => 1,
        "us" | "µs" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        _ => return Err(UnitError::Duration(text.to_string())),
    };
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(per)).ok_or_else(|| UnitError::Duration(text.to_string()))
}

const BINARY_UNITS: [(&str, u32); 4] = [("T", 40), ("G", 30), ("M", 20), ("K", 10)];
const BYTES_PER_MB: u64 = 1_000_000;

/// `bytes` exactly, as [`parse_bytes`] reads it back: with a binary suffix ("256M") where one
/// divides it, else in decimal megabytes as a bare number ("100" is 100 MB), else with a `B`
/// ("5000B").
pub fn exact_bytes(bytes: u64) -> String {
    for (unit, shift) in BINARY_UNITS {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    if bytes != 0 && bytes.is_multiple_of(BYTES_PER_MB) {
        return format!("{}", bytes / BYTES_PER_MB);
    }
    format!("{bytes}B")
}

/// Reads a byte count: "256M", "256MiB", "4K", "1G" (binary, as `--size` reads them),
/// "5000B" (bytes), or a bare number of decimal megabytes ("100": the old `bandwidth:MBPS`).
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let factor: u64 = match unit {
        "" => BYTES_PER_MB,
        "B" => 1,
        _ => {
            let letter = unit.strip_suffix("iB").or_else(|| unit.strip_suffix('B')).unwrap_or(unit);
            let shift = BINARY_UNITS
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(letter))
                .map(|&(_, shift)| shift)
                .ok_or_else(|| UnitError::Bytes(text.to_string()))?;
            1 << shift
        }
    };
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)).ok_or_else(|| UnitError::Bytes(text.to_string()))
}

/// A number with a unit that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UnitError {
    #[error("`{0}` is not a duration like 5ms, 1500us, 2s or 7ns")]
    Duration(String),
    #[error("`{0}` is not a size like 256M, 64K, 1G, 5000B (or a bare number of MB)")]
    Bytes(String),
}

/// A service model name that is neither `qemu` nor `decoupled`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown service model `{0}`: expected qemu or decoupled")]
pub struct UnknownServiceModel(pub String);

impl ServiceModel {
    /// Every model.
    pub const ALL: [ServiceModel; 2] = [ServiceModel::Qemu, ServiceModel::Decoupled];

    /// The name in config files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServiceModel::Qemu => "qemu",
            ServiceModel::Decoupled => "decoupled",
        }
    }
}

impl fmt::Display for ServiceModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServiceModel {
    type Err = UnknownServiceModel;
    fn from_str(s: &str) -> Result<ServiceModel, UnknownServiceModel> {
        ServiceModel::ALL.into_iter().find(|m| m.name() == s.trim()).ok_or_else(|| UnknownServiceModel(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_keeps_three_significant_digits() {
        assert_eq!(Nanos(0).to_string(), "0 ns");
        assert_eq!(Nanos(850).to_string(), "850 ns");
        assert_eq!(Nanos(12_345).to_string(), "12.3 µs");
        assert_eq!(Nanos::from_us(15).to_string(), "15.0 µs");
        assert_eq!(Nanos(4_560_000).to_string(), "4.56 ms");
        assert_eq!(Nanos::from_ms(123).to_string(), "123 ms");
        assert_eq!(Nanos(1_200_000_000).to_string(), "1.20 s");
    }

    #[test]
    fn exact_forms_read_back() {
        for ns in [1, 999, 1_000, 1_500, 5_000_000, 1_000_000_000, 1_234_567_891] {
            assert_eq!(parse_duration_ns(&exact_ns(ns), None), Ok(ns), "{}", exact_ns(ns));
        }
        assert_eq!(exact_ns(5_000_000), "5ms");
        for bytes in [4096, 5000, 100_000_000, 256 << 20, 1 << 40, 1_024_000_000] {
            assert_eq!(parse_bytes(&exact_bytes(bytes)), Ok(bytes), "{}", exact_bytes(bytes));
        }
        assert_eq!(exact_bytes(256 << 20), "256M");
        assert_eq!(exact_bytes(100_000_000), "100");
    }

    #[test]
    fn old_spellings_and_junk() {
        assert_eq!(parse_bytes("256M"), Ok(256 << 20));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("100"), Ok(100_000_000));
        assert_eq!(parse_duration_ns("1000", Some(NS_PER_US)), Ok(1_000_000));
        assert_eq!(parse_duration_ns("250µs", None), Ok(250_000));
        for bad in ["", "M", "12X", "-5M", "99999999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        for bad in ["", "5", "5 min", "ms", "1.5ms"] {
            assert!(parse_duration_ns(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_models_round_trip() {
        for m in ServiceModel::ALL {
            assert_eq!(m.to_string().parse::<ServiceModel>(), Ok(m));
        }
        assert!("fast".parse::<ServiceModel>().is_err());
    }
}
