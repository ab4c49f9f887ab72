//! Where writes go: the pattern names and their text form.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Smallest zipf exponent accepted (0 would be uniform; use `uniform` for that).
pub const ZIPF_THETA_MIN: f64 = 0.01;
/// Largest zipf exponent accepted: beyond this nearly every write hits one page.
pub const ZIPF_THETA_MAX: f64 = 10.0;
/// Percentages are at most this.
pub const HOT_PERCENT_MAX: u8 = 100;

/// Which pages a writer writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Pattern {
    /// Every page equally likely.
    Uniform,
    /// Page popularity follows a zipf law with exponent `theta` (0.99 is the YCSB default).
    /// Popular pages are scattered over the region, not packed at its start.
    Zipf { theta: f64 },
    /// `hot_write_percent` of the writes go to `hot_page_percent` of the pages.
    HotSet { hot_write_percent: u8, hot_page_percent: u8 },
    /// Each writer sweeps the region page by page from its own starting point.
    Sequential,
    /// Like a guest playing video (the seed author's Windows test): most writes sweep a
    /// per-writer frame buffer, the rest land anywhere; [`crate::WriteTiming::for_pattern`]
    /// makes them come in bursts, one per frame.
    Video,
}

/// A pattern that cannot be built; the text says what is wrong.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum PatternError {
    #[error("unknown pattern `{0}`: expected uniform, zipf:THETA, hot-set:WRITE%/PAGE%, sequential or video")]
    Unknown(String),
    #[error("zipf theta `{0}` is not a number in {ZIPF_THETA_MIN}..={ZIPF_THETA_MAX} (example: zipf:0.99)")]
    ZipfTheta(String),
    #[error("hot-set `{0}` must be WRITE%/PAGE% with both in 1..=100 (example: hot-set:90/10)")]
    HotSet(String),
    #[error("a region of 0 pages has nothing to write")]
    EmptyRegion,
}

impl Pattern {
    /// Checks the parameters against their bounds.
    pub fn validate(&self) -> Result<(), PatternError> {
        match *self {
            Pattern::Zipf { theta } if !(ZIPF_THETA_MIN..=ZIPF_THETA_MAX).contains(&theta) => {
                Err(PatternError::ZipfTheta(theta.to_string()))
            }
            Pattern::HotSet { hot_write_percent: w, hot_page_percent: p }
                if w == 0 || p == 0 || w > HOT_PERCENT_MAX || p > HOT_PERCENT_MAX =>
            {
                Err(PatternError::HotSet(format!("{w}/{p}")))
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Pattern, PatternError> {
        let text = text.trim();
        let (name, arg) = match text.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (text, None),
        };
        let pattern = match (name, arg) {
            ("uniform", None) => Pattern::Uniform,
            ("sequential", None) => Pattern::Sequential,
            ("video", None) => Pattern::Video,
            ("zipf", Some(arg)) => {
                let theta = arg.parse::<f64>().map_err(|_| PatternError::ZipfTheta(arg.to_string()))?;
                Pattern::Zipf { theta }
            }
            ("hot-set", Some(arg)) => {
                let bad = || PatternError::HotSet(arg.to_string());
                let (w, p) = arg.split_once('/').ok_or_else(bad)?;
                let w = w.trim().trim_end_matches('%').parse::<u8>().map_err(|_| bad())?;
                let p = p.trim().trim_end_matches('%').parse::<u8>().map_err(|_| bad())?;
                Pattern::HotSet { hot_write_percent: w, hot_page_percent: p }
            }
            _ => return Err(PatternError::Unknown(text.to_string())),
        };
        pattern.validate()?;
        Ok(pattern)
    }
}

impl fmt::Display for Pattern {
    /// The text form [`Pattern::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Uniform => write!(f, "uniform"),
            Pattern::Zipf { theta } => write!(f, "zipf:{theta}"),
            Pattern::HotSet { hot_write_percent, hot_page_percent } => {
                write!(f, "hot-set:{hot_write_percent}/{hot_page_percent}")
            }
            Pattern::Sequential => write!(f, "sequential"),
            Pattern::Video => write!(f, "video"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse_and_round_trip() {
        for text in ["uniform", "zipf:0.99", "hot-set:90/10", "sequential", "video"] {
            let pattern: Pattern = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(pattern.to_string(), text);
        }
        assert_eq!(
            "hot-set:90%/10%".parse::<Pattern>(),
            Ok(Pattern::HotSet { hot_write_percent: 90, hot_page_percent: 10 })
        );
    }

    #[test]
    fn bad_text_gets_an_error_that_says_what_is_expected() {
        let err = "zipf".parse::<Pattern>().expect_err("must be rejected");
        assert!(err.to_string().contains("zipf:THETA"), "{err}");
        let err = "zipf:abc".parse::<Pattern>().expect_err("must be rejected");
        assert!(err.to_string().contains("example: zipf:0.99"), "{err}");
        assert!(matches!("zipf:0".parse::<Pattern>(), Err(PatternError::ZipfTheta(_))));
        assert!(matches!("hot-set:90".parse::<Pattern>(), Err(PatternError::HotSet(_))));
        assert!(matches!("hot-set:0/10".parse::<Pattern>(), Err(PatternError::HotSet(_))));
        assert!(matches!("hot-set:90/101".parse::<Pattern>(), Err(PatternError::HotSet(_))));
        assert!(matches!("random".parse::<Pattern>(), Err(PatternError::Unknown(_))));
    }

    #[test]
    fn serde_uses_a_kind_tag() {
        let json = serde_json::to_string(&Pattern::Zipf { theta: 0.5 }).unwrap_or_default();
        assert_eq!(json, r#"{"kind":"zipf","theta":0.5}"#);
        let back: Pattern = serde_json::from_str(r#"{"kind":"hot-set","hot_write_percent":80,"hot_page_percent":20}"#)
            .unwrap_or(Pattern::Uniform);
        assert_eq!(back, Pattern::HotSet { hot_write_percent: 80, hot_page_percent: 20 });
        assert!(serde_json::from_str::<Pattern>(r#"{"kind":"zipf","theta":1.0,"extra":1}"#).is_err());
    }
}
