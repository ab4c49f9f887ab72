//! `wpsnap-vmm`: the smallest KVM VMM that runs the wpsnap test guest (`guest/`) and snapshots
//! it live through `wpsnap-linux`'s session API.
//!
//! What it does: maps guest memory (one region, optionally transparent huge pages), loads a
//! multiboot v1 ELF32 ([`loader`]), runs one thread per vCPU that handles the guest's port I/O
//! (serial output, an exit port) and parks on request ([`Vm::pause`], bounded), captures and
//! restores vCPU registers ([`state`]), takes a live snapshot of guest memory with the same
//! engine, policies and service models as `wpsnap run` ([`snapshot`]), and boots a new VM from
//! a snapshot ([`snapshot::restore`]).
//!
//! What it deliberately does not do: interrupts (no irqchip, no timer: the guest polls), devices
//! beyond a write-only serial port, MMIO, more than one memory slot, migration of anything but
//! the registers the guest uses. It is not a general VMM.
//!
//! `unsafe` is confined to: registering guest memory with KVM and describing it as a snapshot
//! region ([`vm`], [`memory`]), `madvise` ([`memory`]) and the vCPU kick signal handler
//! ([`vcpu`](crate::vcpu)), each with a `// SAFETY:` comment.

pub mod error;
pub mod guest;
pub mod impact;
pub mod layout;
pub mod loader;
pub mod memory;
pub mod serial;
pub mod snapshot;
pub mod state;
mod vcpu;
pub mod vm;

pub use error::{GuestStop, LoadError, VmError, VmSnapshotError};
pub use guest::{GuestConfig, GuestPattern};
pub use serial::GuestLine;
pub use vcpu::SerialHook;
pub use vm::{Paused, Vm, VmConfig, host_tsc_khz};

/// The test guest, built from `guest/` by this crate's build script.
pub static GUEST_ELF: &[u8] = include_bytes!(env!("WPSNAP_GUEST_ELF"));
