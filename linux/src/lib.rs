//! `wpsnap-linux`: live, point-in-time consistent snapshots of a memory region of the calling
//! process, taken with Linux userfaultfd write-protection while the process's threads keep
//! writing. The `wpsnap` command is built on it in the separate `wpsnap` crate (`app/`).
//!
//! What it does: opens a userfaultfd in write-protect mode ([`uffd`]), registers a region the
//! caller owns ([`region`]), protects it with the writers paused, and runs the
//! [`wpsnap_core::Engine`] on real threads ([`snapshot`]): a write to a protected page blocks
//! until the page is saved, the background scan saves the rest at the pace of the chosen
//! policy, and the pages go to a sink (a `wpsnap-format` file, a stream, or memory). It also
//! has synthetic writer threads that measure their own fault waits ([`writers`]), a fork
//! backend for comparison ([`fork`]), outputs ([`output`]) and a look at how much memory is
//! left before mapping a large region ([`system_memory`]).
//!
//! What it deliberately does not do: it never owns or unmaps the caller's memory; it does
//! not snapshot other processes; it does not decide policy (that is `wpsnap-core`); it does
//! not pause the caller's writers itself (the caller's pause closure does, see
//! [`snapshot::Prepared::arm`]); it has no command line, plots, progress bars or benchmarks
//! (those are the app's) and returns typed errors, never `anyhow`.
//!
//! `unsafe` is confined to the functions that touch raw memory, the userfaultfd, fork and
//! signals, each with a `// SAFETY:` comment: [`uffd`] (a raw ioctl), [`region`] (mapping,
//! copying and touching the caller's pages), [`writers`] (the synthetic page stores),
//! [`fork`] (fork, the child's raw writes) and [`output`] (one socket option).

pub mod errno;
pub mod fork;
pub mod output;
pub mod region;
pub mod snapshot;
pub mod sync;
pub mod system_memory;
pub mod uffd;
pub mod writers;
