//! `wpsnap-workload`: synthetic write workloads shared by the simulator (`wpsnap-sim`) and the
//! Linux backend's synthetic writers (`wpsnap-linux`).
//!
//! A [`Pattern`] names *where* writes go (uniform, zipf, hot set, sequential sweep, or a
//! bursty video-like mix); a [`PageSampler`] draws page indices from it in O(1) time with no
//! per-page memory, so it works for regions of any size. A [`WriteTiming`] draws the gaps
//! between one writer's writes (its think time), with the bursts of the video pattern.
//!
//! It deliberately does not own a random number generator, a clock or any memory: callers
//! pass their own seeded [`rand::Rng`] and their own notion of time (nanoseconds), so a
//! simulator run replays exactly and a real writer thread pays nothing it does not use.

mod pattern;
mod sampler;
mod scatter;
mod timing;
mod zipf;

pub use pattern::{HOT_PERCENT_MAX, Pattern, PatternError, ZIPF_THETA_MAX, ZIPF_THETA_MIN};
pub use sampler::{PageSampler, VIDEO_FRAME_PAGES_MAX, VIDEO_FRAME_WRITE_PERCENT};
pub use timing::{Burst, TimingError, WRITES_PER_SEC_MAX, WriteTiming};
pub use zipf::ZipfSampler;
