//! The handoffs the snapshot threads share, and nothing else: a bounded staging queue between
//! the copying threads and the sink (with back-pressure and a close that wakes every waiter),
//! and a change signal that lets the scanner sleep until there is something to do.
//!
//! Built on [`shim`], which is `std::sync` normally and `loom::sync` under `cfg(loom)`, so
//! these interleavings can be model-checked. They hold page indices and buffers, never
//! pointers into the region.

pub mod shim;
mod signal;
mod staging;

pub use signal::ChangeSignal;
pub use staging::{PushError, StagedPages, StagingQueue};
