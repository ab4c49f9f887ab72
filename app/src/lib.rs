//! `wpsnap`, the application: the `wpsnap` command ([`cli`]), the benchmark that compares
//! the library against same-run floors ([`bench`], [`baseline`]). Its charts and tables come
//! from `wpsnap-plot`, which the simulator uses too.
//!
//! What it deliberately does not do: take snapshots itself. Every snapshot, fork snapshot,
//! output and writer comes from the `wpsnap-linux` library through its public API, the same
//! one an embedding program uses; this crate only chooses, runs, measures and presents.
//!
//! `unsafe` here is confined to the benchmark floors' own test mappings ([`baseline`],
//! [`bench`]) and the signal handler ([`cli`]), each with a `// SAFETY:` comment.

pub mod baseline;
pub mod bench;
pub mod cli;
