//! `wpsnap-workload`: the environment both drivers share, modelled once: what the writers do
//! and what the disk does. The simulator (`wpsnap-sim`) and the Linux backend
//! (`wpsnap-linux`: its synthetic writers and its slow-device emulation) both read it, so the
//! two cannot drift apart.
//!
//! Writers: a [`Pattern`] names *where* writes go (uniform, zipf, hot set, sequential sweep,
//! or a bursty video-like mix); a [`PageSampler`] draws page indices from it in O(1) time with
//! no per-page memory, so it works for regions of any size. A [`WriteTiming`] draws the gaps
//! between one writer's writes (its think time), with the bursts of the video pattern.
//!
//! The disk ([`disk`]): the named presets (`hdd-7200`, `sata-ssd`, `nvme`, `tmpfs`) with the
//! sources of their figures, the parameters they stand for, and the heavy-tailed stall
//! sampler.
//!
//! It deliberately does not own a random number generator, a clock or any memory: callers
//! pass their own seeded [`rand::Rng`] and their own notion of time (nanoseconds), so a
//! simulator run replays exactly and a real writer thread pays nothing it does not use. It
//! does not run a disk model either: the simulator's lives in `wpsnap-sim`, the emulation
//! that sleeps in `write` in `wpsnap-linux`.

pub mod disk;
mod pattern;
mod sampler;
mod scatter;
mod timing;
mod zipf;

pub use pattern::{HOT_PERCENT_MAX, Pattern, PatternError, ZIPF_THETA_MAX, ZIPF_THETA_MIN};
pub use sampler::{PageSampler, VIDEO_FRAME_PAGES_MAX, VIDEO_FRAME_WRITE_PERCENT};
pub use timing::{Burst, TimingError, WRITES_PER_SEC_MAX, WriteTiming};
pub use zipf::ZipfSampler;
