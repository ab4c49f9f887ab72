//! The text form of policies: every spelling both command lines accept, old and new, and
//! `Display` reading back to the same config.

use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams, LimitScanRateParams, PolicyParseError};
use wpsnap_core::{PolicyConfig, ServiceModel};

fn parse(text: &str) -> PolicyConfig {
    text.parse().unwrap_or_else(|e| panic!("`{text}` does not parse: {e}"))
}

fn all_kinds() -> Vec<PolicyConfig> {
    let limit = LimitScanRateParams { slow_fault_ns: 2_500_000, poll_timeout_ns: 1_000, throttle_pages: 7 };
    let target =
        LatencyTargetParams { target_p99_ns: 750_000, window_ns: 5_000_000, rate_min_pages_per_sec: 9, burst_pages: 3 };
    vec![
        PolicyConfig::None,
        PolicyConfig::limit_scan_rate(),
        PolicyConfig::LimitScanRate(limit),
        PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()),
        PolicyConfig::LimitScanRateTrueLatency(limit),
        PolicyConfig::Bandwidth(BandwidthParams::default()),
        PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 100_000_000, burst_bytes: 4096 }),
        PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 123_457, burst_bytes: 1 << 30 }),
        PolicyConfig::LatencyTarget(LatencyTargetParams::default()),
        PolicyConfig::LatencyTarget(target),
        PolicyConfig::LatencyTarget(LatencyTargetParams { target_p99_ns: 1_001, ..LatencyTargetParams::default() }),
    ]
}

#[test]
fn display_reads_back_to_the_same_config() {
    for policy in all_kinds() {
        assert_eq!(policy.validate(), Ok(()), "{policy}");
        let text = policy.to_string();
        assert_eq!(parse(&text), policy, "{text}");
        assert!(text.starts_with(policy.name()), "{text}");
    }
}

#[test]
fn display_is_short_for_defaults() {
    assert_eq!(PolicyConfig::limit_scan_rate().to_string(), "limit-scan-rate");
    assert_eq!(PolicyConfig::Bandwidth(BandwidthParams::default()).to_string(), "bandwidth:256M");
    assert_eq!(PolicyConfig::LatencyTarget(LatencyTargetParams::default()).to_string(), "latency-target:1ms");
}

#[test]
fn old_spellings_still_work() {
    // wpsnap-sim's `bandwidth:MBPS` and `latency-target:P99_US`, and the patch's old name.
    assert_eq!(parse("seed"), PolicyConfig::limit_scan_rate());
    assert_eq!(parse("seed-true-latency"), PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()));
    assert_eq!(
        parse("bandwidth:100"),
        PolicyConfig::Bandwidth(BandwidthParams { bytes_per_sec: 100_000_000, burst_bytes: 64 * 4096 })
    );
    assert_eq!(
        parse("latency-target:2000"),
        PolicyConfig::LatencyTarget(LatencyTargetParams { target_p99_ns: 2_000_000, ..LatencyTargetParams::default() })
    );
    // wpsnap's `--policy bandwidth` (with the rate it defaulted to).
    assert_eq!(parse("bandwidth"), PolicyConfig::Bandwidth(BandwidthParams::default()));
    assert_eq!(parse("bandwidth:256M"), parse("bandwidth:rate=256MiB"));
    assert_eq!(parse(" latency-target : p99=2ms , window=40ms "), parse("latency-target:2ms,window=40ms"));
}

#[test]
fn knobs_of_another_policy_are_errors_that_say_what_fits() {
    for (text, knob) in [
        ("latency-target:burst=1M", "burst"),
        ("bandwidth:p99=1ms", "p99"),
        ("limit-scan-rate:5ms", "5ms"),
        ("none:1", "1"),
        ("bandwidth:256M,512M", "512M"),
    ] {
        match text.parse::<PolicyConfig>() {
            Err(PolicyParseError::Knob { knob: k, takes, .. }) => {
                assert_eq!(k, knob, "{text}");
                assert!(!takes.is_empty());
            }
            other => panic!("`{text}`: expected a knob error, got {other:?}"),
        }
    }
    assert!(matches!("bandwidth:256M,rate=1G".parse::<PolicyConfig>(), Err(PolicyParseError::Twice { .. })));
    assert!(matches!(
        "latency-target:window=1ms,window=2ms".parse::<PolicyConfig>(),
        Err(PolicyParseError::Twice { .. })
    ));
}

#[test]
fn bad_values_and_names_are_errors() {
    for text in ["fast", "bandwidth:lots", "latency-target:5min", "limit-scan-rate:throttle-pages=-1", "bandwidth:1K"] {
        assert!(text.parse::<PolicyConfig>().is_err(), "`{text}` parsed");
    }
    // Out of bounds is checked too (the field is named).
    match "bandwidth:1K".parse::<PolicyConfig>() {
        Err(PolicyParseError::Bounds(e)) => assert_eq!(e.field, "policy.bytes_per_sec"),
        other => panic!("expected a bounds error, got {other:?}"),
    }
}

#[test]
fn old_config_files_say_seed_and_still_load() {
    let old: PolicyConfig = serde_json::from_str(
        r#"{"kind":"seed","slow_fault_ns":5000000,"poll_timeout_ns":5000000,"throttle_pages":200}"#,
    )
    .expect("alias");
    assert_eq!(old, PolicyConfig::limit_scan_rate());
    let old: PolicyConfig = serde_json::from_str(
        r#"{"kind":"seed-true-latency","slow_fault_ns":5000000,"poll_timeout_ns":5000000,"throttle_pages":200}"#,
    )
    .expect("alias");
    assert_eq!(old, PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default()));
    let json = serde_json::to_string(&PolicyConfig::limit_scan_rate()).expect("serialises");
    assert!(json.contains(r#""kind":"limit-scan-rate""#), "{json}");
}

#[test]
fn service_models_read_and_print_their_names() {
    assert_eq!("qemu".parse::<ServiceModel>(), Ok(ServiceModel::Qemu));
    assert_eq!(ServiceModel::Decoupled.to_string(), "decoupled");
}
