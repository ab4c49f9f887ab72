//! `wpsnap-sim`: a deterministic simulator of clock, disk and writers that drives the
//! `wpsnap-core` engine, to study throttle policies in seconds and reproducibly.
//!
//! A run is a discrete-event loop over a nanosecond virtual clock. Writers (vCPUs) write
//! pages chosen by a [`wpsnap_workload::Pattern`], block on write-protected pages and
//! report their true waits; the engine decides what is saved when; the stream path (pipe,
//! dump tool, page cache, writeback, device) decides how long saving takes. All randomness
//! comes from one `u64` seed through ChaCha with a sub-seed per component, so the same seed
//! and config give a byte-identical report. The simulator checks the snapshot invariant as
//! it goes (a saved page was not written since the snapshot instant; every page is saved
//! exactly once; no writer is left blocked).
//!
//! It deliberately does not re-implement scan, fault-queue or throttle logic (that is the
//! engine's), touch real memory or files, or read a wall clock; the network scenario
//! ([`net`]) runs on turmoil's simulated time instead of this loop.

pub mod config;
pub mod disk;
pub mod net;
pub mod report;
pub mod sim;
pub mod sweep;

pub use config::{ConfigFieldError, SimConfig};
pub use report::SimReport;
pub use sim::{SimError, run};
