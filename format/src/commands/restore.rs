//! `restore`: a snapshot back into a raw image file, or into a caller's memory region.

use super::open_snapshot;
use crate::durable::{StdFs, SyncFs, partial_path_for};
use crate::error::FormatError;
use serde::Serialize;
use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Result of [`restore_raw`] and [`load_into`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Where the image went (`None` for a memory region).
    pub out_path: Option<PathBuf>,
    /// Bytes of the region restored.
    pub region_len: u64,
    /// Pages restored.
    pub pages: u64,
    /// Of those, zero pages (left as holes in a raw file, zero-filled in memory).
    pub zero_pages: u64,
}

/// Writes the raw image of the snapshot at `path` to `out_raw` (the regions one after the
/// other, in table order), atomically: the image is built
/// in `out_raw.partial` (zero pages stay sparse holes), fsynced, then renamed. If the snapshot
/// turns out damaged, `out_raw` is not created or replaced and the `.partial` is removed.
pub fn restore_raw(path: &Path, out_raw: &Path) -> Result<RestoreReport, FormatError> {
    let mut reader = open_snapshot(path)?;
    let h = reader.header().clone();
    let partial = partial_path_for(out_raw);
    let ctx = |what: &str| format!("{}: {what}", partial.display());
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)
        .map_err(|e| FormatError::io(ctx("create"), e))?;
    let result = (|| {
        file.set_len(h.region_len()).map_err(|e| FormatError::io(ctx("set length"), e))?;
        while let Some(page) = reader.next_page()? {
            if let Some(data) = page.data {
                file.write_all_at(data, page.location.image_offset)
                    .map_err(|e| FormatError::io(ctx(&format!("write page {}", page.index)), e))?;
            }
        }
        file.sync_all().map_err(|e| FormatError::io(ctx("fsync"), e))
    })();
    if let Err(e) = result {
        drop(file);
        // Best effort: the error that matters is `e`; a leftover .partial is harmless.
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    drop(file);
    let trailer = reader.trailer().ok_or(FormatError::Poisoned { what: "reader" })?;
    let report = RestoreReport {
        out_path: Some(out_raw.to_path_buf()),
        region_len: h.region_len(),
        pages: trailer.page_records,
        zero_pages: trailer.zero_pages,
    };
    StdFs.rename(&partial, out_raw).map_err(|e| FormatError::io(ctx("rename"), e))?;
    let dir = match out_raw.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    StdFs.sync_dir(&dir).map_err(|e| FormatError::io(format!("{}: fsync of the directory", dir.display()), e))?;
    Ok(report)
}

/// Loads the snapshot at `path` into `region`, which must be exactly the regions' total length
/// (they are laid out one after the other, in table order). On error the region holds an
/// unspecified mix of old and restored pages.
pub fn load_into(path: &Path, region: &mut [u8]) -> Result<RestoreReport, FormatError> {
    let mut reader = open_snapshot(path)?;
    let region_len = reader.header().region_len();
    if region.len() as u64 != region_len {
        return Err(FormatError::RegionSizeMismatch { len: region.len() as u64, region_len });
    }
    while let Some(page) = reader.next_page()? {
        // The reader located the page inside the layout, whose length is the buffer's.
        let start = page.location.image_offset as usize;
        let dst = &mut region[start..start + page.location.page_size as usize];
        match page.data {
            Some(data) => dst.copy_from_slice(data),
            None => dst.fill(0),
        }
    }
    let trailer = reader.trailer().ok_or(FormatError::Poisoned { what: "reader" })?;
    Ok(RestoreReport { out_path: None, region_len, pages: trailer.page_records, zero_pages: trailer.zero_pages })
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.out_path {
            Some(p) => write!(f, "restored to {}: ", p.display())?,
            None => write!(f, "loaded into memory: ")?,
        }
        write!(f, "{} B, {} pages ({} zero pages)", self.region_len, self.pages, self.zero_pages)
    }
}
