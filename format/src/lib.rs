//! `wpsnap-format`: the wpsnap snapshot file format (version 2 written, versions 1 and 2 read;
//! see docs/format.md).
//!
//! What it does:
//! - [`SnapshotWriter`] writes a header (a table of one or more regions, each with its address,
//!   length, page size and backing; page indices run over them in order), page records in any order (all-zero pages without
//!   data, every record with a crc32c) and a trailer (counts, a checksum over the records, the
//!   stored JSON report, a completion marker) to any [`std::io::Write`]; [`PageDigest`] lets
//!   the checksum and zero test of a page be computed off the sink thread;
//! - [`read_snapshot`] / [`SnapshotReader`] read it back strictly forward (files, pipes,
//!   sockets), trusting nothing: every malformed input is a [`FormatError`] naming the byte
//!   offset, never a panic, and nothing is allocated from an unchecked length;
//! - [`DurableFile`] publishes a file atomically (`NAME.partial`, fsync, rename, fsync of the
//!   directory), optionally with `O_DIRECT`; the protocol is generic over [`SyncFs`] so it is
//!   crash-tested on a simulated file system;
//! - [`verify_file`], [`inspect_file`], [`restore_raw`] and [`load_into`] are the operations
//!   behind `wpsnap verify | inspect | restore`.
//!
//! What it deliberately does not do: take snapshots (that is `wpsnap-linux`), interpret the
//! engine configuration or the report (stored as opaque JSON text), compress, encrypt, or seek.
#![forbid(unsafe_code)]

mod commands;
mod durable;
mod error;
#[doc(hidden)]
pub mod fuzz_support;
mod header;
mod layout;
mod page_set;
mod reader;
mod writer;
mod zero;

pub use commands::{
    InspectReport, RestoreReport, StreamSummary, VerifyReport, inspect_file, load_into, restore_raw, verify_file,
    verify_stream,
};
pub use durable::{
    DIRECT_BUFFER_BYTES, DIRECT_IO_ALIGN_BYTES, DurableFile, DurableWriter, StdFile, StdFs, SyncFs, partial_path_for,
};
pub use error::FormatError;
pub use header::{Header, PageLayout, PageLocation, RegionEntry};
pub use layout::*;
pub use reader::{PageRecord, SnapshotReader, Trailer, read_snapshot};
pub use writer::{DigestedRun, PageDigest, SnapshotWriter};
pub use zero::is_all_zero;
