//! Properties 2 and 3 (docs/testing.md): the snapshot invariant and the latency bounds in the
//! simulator, over random configurations.

use proptest::prelude::*;
use wpsnap_core::policy::{BandwidthParams, LatencyTargetParams, LimitScanRateParams};
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_sim::disk::DiskPreset;
use wpsnap_sim::{SimConfig, SimReport};
use wpsnap_workload::Pattern;

fn policy() -> impl Strategy<Value = PolicyConfig> {
    prop_oneof![
        Just(PolicyConfig::None),
        Just(PolicyConfig::limit_scan_rate()),
        Just(PolicyConfig::LimitScanRateTrueLatency(LimitScanRateParams::default())),
        (64u64..4096).prop_map(|pages_per_sec| PolicyConfig::Bandwidth(BandwidthParams {
            bytes_per_sec: pages_per_sec * 4096,
            burst_bytes: 16 * 4096,
        })),
        Just(PolicyConfig::LatencyTarget(LatencyTargetParams::default())),
    ]
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just(Pattern::Uniform),
        (0.5f64..1.5).prop_map(|theta| Pattern::Zipf { theta }),
        (50u8..=99, 1u8..=30).prop_map(|(w, p)| Pattern::HotSet { hot_write_percent: w, hot_page_percent: p }),
        Just(Pattern::Sequential),
        Just(Pattern::Video),
    ]
}

fn disk() -> impl Strategy<Value = DiskPreset> {
    prop_oneof![Just(DiskPreset::Hdd7200), Just(DiskPreset::SataSsd), Just(DiskPreset::Nvme), Just(DiskPreset::Tmpfs)]
}

fn model() -> impl Strategy<Value = ServiceModel> {
    prop_oneof![Just(ServiceModel::Qemu), Just(ServiceModel::Decoupled)]
}

/// Small regions so a case runs in milliseconds; the model and policies do not depend on size.
fn config() -> impl Strategy<Value = SimConfig> {
    (64u64..=2048, model(), policy(), disk(), pattern(), 1u32..=6, 1_000.0f64..50_000.0, 0u8..=90).prop_map(
        |(pages, model, policy, disk, pattern, writers, rate, zero)| {
            let mut c = SimConfig::new(pages * 4096, model, policy, disk);
            c.writers.count = writers;
            c.writers.pattern = pattern;
            c.writers.writes_per_sec = rate;
            c.zero_page_percent = zero;
            c.baseline = false;
            c
        },
    )
}

fn assert_snapshot_invariant(report: &SimReport) {
    let inv = &report.invariants;
    assert_eq!(inv.violations, 0, "{:?}", inv.first_violations);
    assert!(report.driver_errors.is_empty(), "{:?}", report.driver_errors);
    assert_eq!(report.writers.blocked_at_end, 0, "a writer was left blocked");
    let pages = report.config.engine.page_count;
    assert!(report.snapshot.duration_ns.is_some(), "the snapshot did not complete");
    assert_eq!(inv.pages_saved, pages, "every page saved exactly once");
    assert_eq!(report.snapshot.pages_by_scan + report.snapshot.pages_by_fault, pages);
    // Versions are kept for regions this small: the image is memory at the snapshot instant.
    assert_eq!(inv.image_equals_snapshot_instant, Some(true));
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 256, .. ProptestConfig::default() })]

    /// Property 2: the image equals memory at the snapshot instant, no write is lost or left
    /// blocked, and the same seed gives the same report.
    #[test]
    fn snapshot_invariant_holds_and_runs_are_deterministic(config in config(), seed in any::<u64>()) {
        let first = wpsnap_sim::run(seed, &config).expect("valid config");
        assert_snapshot_invariant(&first);
        let second = wpsnap_sim::run(seed, &config).expect("valid config");
        prop_assert_eq!(first.digest(), second.digest(), "seed {} is not deterministic", seed);
    }

    /// Property 3: in the decoupled model, while the staging buffer has room, a fault waits
    /// for fault delivery, the fault lane's copies and unprotects of at most every writer's
    /// fault plus one in flight, and the wake-up — never for a disk write.
    #[test]
    fn decoupled_fault_waits_never_include_a_disk_write(
        config in config().prop_map(|mut c| {
            c.engine.service_model = ServiceModel::Decoupled;
            // More staging than pages: the buffer can never be full.
            c.engine.staging_pages = c.engine.page_count + c.engine.fault_reserve_pages + 1;
            c
        }),
        seed in any::<u64>(),
    ) {
        let report = wpsnap_sim::run(seed, &config).expect("valid config");
        assert_snapshot_invariant(&report);
        let bound = decoupled_bound_ns(&config);
        let engine = report.engine.as_ref().expect("snapshot ran");
        prop_assert!(
            engine.fault_wait.max_ns <= bound,
            "max fault wait {} ns over the decoupled bound {} ns (disk {:?})",
            engine.fault_wait.max_ns, bound, config.disk_preset
        );
    }
}

/// `d + (writers + 1)·(capture overhead + copy + unprotect) + r` (docs/policies.md), plus
/// the histogram's 0.1% rounding.
fn decoupled_bound_ns(config: &SimConfig) -> u64 {
    let h = config.handler;
    let copy_ns = config.engine.page_size * 1_000_000_000 / config.disk_params().copy_bytes_per_sec;
    let per_fault = h.capture_overhead_ns + copy_ns + h.unprotect_ns;
    let bound = h.fault_delivery_ns + (config.writers.count as u64 + 1) * per_fault + h.wake_ns;
    bound + bound / 500 + 1
}

/// The bound above is not vacuous: with the seed's slow disk, the qemu model's waits include
/// stream writes and break it, while the decoupled model's stay under it.
#[test]
fn the_decoupled_bound_separates_the_models_on_a_slow_disk() {
    let mut qemu = SimConfig::new(64 << 20, ServiceModel::Qemu, PolicyConfig::None, DiskPreset::Hdd7200);
    qemu.baseline = false;
    let mut decoupled = qemu.clone();
    decoupled.engine.service_model = ServiceModel::Decoupled;
    decoupled.engine.staging_pages = decoupled.engine.page_count;
    let bound = decoupled_bound_ns(&decoupled);
    let q = wpsnap_sim::run(7, &qemu).expect("valid");
    let d = wpsnap_sim::run(7, &decoupled).expect("valid");
    let q_max = q.engine.as_ref().expect("ran").fault_wait.max_ns;
    let d_max = d.engine.as_ref().expect("ran").fault_wait.max_ns;
    assert!(q_max > bound, "qemu max {q_max} ns should exceed the decoupled bound {bound} ns");
    assert!(d_max <= bound, "decoupled max {d_max} ns over its bound {bound} ns");
}
