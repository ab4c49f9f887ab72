//! The file-level operations behind `wpsnap verify | inspect | restore`.

mod inspect;
mod restore;
mod verify;

pub use inspect::{InspectReport, inspect_file};
pub use restore::{RestoreReport, load_into, restore_raw};
pub use verify::{StreamSummary, VerifyReport, verify_file, verify_stream};

use crate::error::FormatError;
use crate::reader::SnapshotReader;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Read buffer for snapshot files.
const READ_BUFFER_BYTES: usize = 1 << 20;

pub(crate) fn open_snapshot(path: &Path) -> Result<SnapshotReader<BufReader<File>>, FormatError> {
    let file = File::open(path).map_err(|e| FormatError::io(format!("{}: open", path.display()), e))?;
    SnapshotReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
}
