//! The simulator and the Linux backend's slow-device emulation read the same disk presets and
//! draw stall lengths through the same sampler: for every preset, the emulation's parameters
//! are the translation of the very parameters a simulation runs with, and for one seed both
//! produce the same sequence of stall lengths.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use wpsnap_core::{PolicyConfig, ServiceModel};
use wpsnap_linux::output::{SlowDeviceProfile, StallLength, StallSource};
use wpsnap_sim::SimConfig;
use wpsnap_sim::disk::{DiskParams, DiskPreset, StallParams};

/// Draws per sequence compared.
const DRAWS: usize = 1_000;

/// The simulation's disk parameters for `preset`, as a run reads them.
fn simulated(preset: DiskPreset) -> DiskParams {
    SimConfig::new(64 << 20, ServiceModel::Qemu, PolicyConfig::None, preset).disk_params()
}

fn emulated(preset: DiskPreset) -> SlowDeviceProfile {
    SlowDeviceProfile::preset(&preset.to_string()).unwrap_or_else(|| panic!("{preset} is an emulation preset"))
}

/// The emulation's source has the simulator's stall length and cap, in microseconds.
fn assert_same_length(source: &StallSource, sim: &StallParams, preset: DiskPreset) {
    assert_eq!(
        source.length,
        StallLength::Pareto { scale_us: sim.scale_ns / 1_000, shape: sim.shape },
        "{preset}: {}",
        source.what
    );
    assert_eq!(source.us_max * 1_000, sim.ns_max, "{preset}: {}", source.what);
    assert_eq!((sim.scale_ns % 1_000, sim.ns_max % 1_000), (0, 0), "{preset}: whole microseconds, nothing lost");
}

#[test]
fn the_emulation_translates_the_parameters_the_simulator_runs() {
    for preset in DiskPreset::ALL {
        let sim = simulated(preset);
        let emu = emulated(preset);
        assert_eq!(sim, preset.params(), "{preset}: the simulator runs the shared preset");
        if sim.bandwidth_bytes_per_sec == 0 {
            assert_eq!(emu.bandwidth_bytes_per_sec, 0, "{preset}: no device, no cap");
            assert!(emu.stalls.is_empty(), "{preset}: no device, no stalls");
            continue;
        }
        // One request of the simulator takes as long as the same bytes at the emulated rate.
        let request_ns =
            sim.request_bytes as f64 * 1e9 / sim.bandwidth_bytes_per_sec as f64 + sim.request_latency_ns as f64;
        let emulated_ns = sim.request_bytes as f64 * 1e9 / emu.bandwidth_bytes_per_sec as f64;
        assert!((emulated_ns - request_ns).abs() < 1e-6 * request_ns, "{preset}: {emulated_ns} vs {request_ns}");
        let [device, write] = &emu.stalls[..] else {
            panic!("{preset}: expected a device and a write(2) stall source, got {:?}", emu.stalls)
        };
        assert_same_length(device, &sim.device_stall, preset);
        assert_same_length(write, &sim.write_stall, preset);
        // Same rate of stalls: one per million/per_million operations of their size.
        assert_eq!(device.every_bytes_mean, sim.request_bytes * 1_000_000 / u64::from(sim.device_stall.per_million));
        assert_eq!(write.every_bytes_mean, 4096 * 1_000_000 / u64::from(sim.write_stall.per_million));
    }
}

#[test]
fn both_draw_the_same_stall_lengths_for_one_seed() {
    for preset in DiskPreset::ALL {
        let sim = simulated(preset);
        let emu = emulated(preset);
        for (source, stall) in emu.stalls.iter().zip([sim.device_stall, sim.write_stall]) {
            for seed in [1_u64, 42] {
                let mut sim_rng = ChaCha8Rng::seed_from_u64(seed);
                let mut emu_rng = ChaCha8Rng::seed_from_u64(seed);
                let from_sim: Vec<u64> = (0..DRAWS).map(|_| stall.length_ns(&mut sim_rng)).collect();
                let from_emu: Vec<u64> = (0..DRAWS).map(|_| source.length_ns(&mut emu_rng)).collect();
                assert_eq!(from_sim, from_emu, "{preset}: {} seed {seed}", source.what);
                // Not a constant: the sequence really is drawn.
                assert!(from_sim.iter().any(|&d| d != from_sim[0]), "{preset}: {}", source.what);
            }
        }
    }
}
