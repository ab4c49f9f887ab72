//! The config files kept in docs/research/ still load, and configs written before the
//! patch's policy was renamed (`"kind": "seed"`) load as `limit-scan-rate`.

use std::path::Path;
use wpsnap_core::PolicyConfig;
use wpsnap_sim::SimConfig;

fn research_configs() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/research");
    let mut configs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("docs/research is readable") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("config-") && name.ends_with(".json") {
            configs.push((name, std::fs::read_to_string(&path).expect("readable config")));
        }
    }
    configs
}

#[test]
fn every_research_config_loads() {
    let configs = research_configs();
    assert!(configs.len() >= 10, "found only {}", configs.len());
    for (name, text) in configs {
        SimConfig::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_config_that_says_seed_loads_as_limit_scan_rate() {
    let (name, text) = research_configs().into_iter().next().expect("a config");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for (old, new) in [
        ("seed", PolicyConfig::limit_scan_rate()),
        ("seed-true-latency", PolicyConfig::LimitScanRateTrueLatency(Default::default())),
    ] {
        json["engine"]["policy"] = serde_json::json!({"kind": old, "slow_fault_ns": 5_000_000, "poll_timeout_ns": 5_000_000, "throttle_pages": 200});
        let config = SimConfig::from_json(&json.to_string()).unwrap_or_else(|e| panic!("{name} with {old}: {e}"));
        assert_eq!(config.engine.policy, new);
    }
}
