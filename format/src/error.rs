//! The one error type of the crate. Every variant found while reading names the byte offset in
//! the stream where the problem was detected, so a damaged file can be looked at with a hex dump.

use std::path::PathBuf;

/// Everything that can go wrong while writing, reading, verifying or restoring a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// An operating-system I/O error (open, write, fsync, rename, read of a source).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path when there is one.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file system refused `O_DIRECT` (tmpfs does, for example).
    #[error(
        "{path}: the file system refused O_DIRECT ({source}); write without direct I/O or choose another file system"
    )]
    DirectIoUnsupported {
        /// The file that was being opened.
        path: PathBuf,
        /// The error the kernel returned.
        #[source]
        source: std::io::Error,
    },
    /// The stream ended before a complete snapshot was read: the file is incomplete
    /// (for example a `.partial` file left by an interrupted or crashed writer).
    #[error("incomplete snapshot: the data ends at byte {offset} while reading {what}")]
    Truncated {
        /// Byte offset at which the data ended.
        offset: u64,
        /// The field or record that was being read.
        what: &'static str,
    },
    /// The first bytes are not the snapshot magic: this is not a wpsnap snapshot file.
    #[error("not a wpsnap snapshot: bad magic {found:02x?} at byte {offset}")]
    BadMagic {
        /// Byte offset of the magic (0).
        offset: u64,
        /// The bytes found.
        found: [u8; 8],
    },
    /// The file uses a format version this reader does not understand.
    #[error("unsupported format version {found} at byte {offset} (this reader supports version {supported})")]
    UnsupportedVersion {
        /// Byte offset of the version field.
        offset: u64,
        /// The version in the file.
        found: u32,
        /// The version this crate reads and writes.
        supported: u32,
    },
    /// A header field holds a value outside what the format allows.
    #[error("invalid header field {field} = {value} at byte {offset}: {reason}")]
    BadHeaderField {
        /// Byte offset of the field.
        offset: u64,
        /// Field name as in docs/format.md.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Which rule it breaks.
        reason: String,
    },
    /// A length field is larger than its named maximum: nothing is allocated for it.
    #[error("length field {field} = {len} at byte {offset} exceeds its maximum {max}")]
    LengthTooLarge {
        /// Byte offset of the length field.
        offset: u64,
        /// Field name as in docs/format.md.
        field: &'static str,
        /// The length found (or given to the writer).
        len: u64,
        /// The named maximum.
        max: u64,
    },
    /// A text field is not valid UTF-8.
    #[error("text field {field} starting at byte {offset} is not valid UTF-8")]
    NotUtf8 {
        /// Byte offset where the text starts.
        offset: u64,
        /// Field name.
        field: &'static str,
    },
    /// A stored checksum does not match the bytes it covers.
    #[error("{what} checksum mismatch at byte {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Byte offset of the stored checksum.
        offset: u64,
        /// Which checksum ("header", "page record 17", "trailer", "records").
        what: String,
        /// Value in the file.
        stored: u32,
        /// Value computed from the bytes read.
        computed: u32,
    },
    /// A record starts with an unknown tag (corruption, or a stream that is not a snapshot).
    #[error("unknown record tag {tag:#010x} at byte {offset}")]
    UnknownRecordTag {
        /// Byte offset of the record.
        offset: u64,
        /// The tag found.
        tag: u32,
    },
    /// Reserved flag bits are set.
    #[error("reserved flag bits {flags:#010x} set in {what} at byte {offset}")]
    BadFlags {
        /// Byte offset of the flags field.
        offset: u64,
        /// Where ("header", "page record", "trailer").
        what: &'static str,
        /// The flags found.
        flags: u32,
    },
    /// A page index is not below the page count.
    #[error("page index {index} at byte {offset} is out of range (page count {page_count})")]
    PageIndexOutOfRange {
        /// Byte offset of the record (for the writer: bytes written so far).
        offset: u64,
        /// The index.
        index: u64,
        /// The page count of the snapshot.
        page_count: u64,
    },
    /// A page appears a second time.
    #[error("page {index} appears twice (second record at byte {offset})")]
    DuplicatePage {
        /// Byte offset of the second record (for the writer: bytes written so far).
        offset: u64,
        /// The page index.
        index: u64,
    },
    /// The writer was given a page of the wrong length.
    #[error("page {index} has {len} bytes, the page size is {page_size}")]
    WrongPageLength {
        /// The page index.
        index: u64,
        /// Bytes given.
        len: u64,
        /// Expected bytes.
        page_size: u64,
    },
    /// A [`crate::PageDigest`] computed for one page was given for another.
    #[error("digest of page {digest_index} given for page {index}")]
    DigestMismatch {
        /// The page being written.
        index: u64,
        /// The page the digest was computed for.
        digest_index: u64,
    },
    /// Pages were never written (writer `finish`) or the trailer arrived before all pages were read.
    #[error("{missing} page(s) missing at byte {offset}, the first is page {first_missing}")]
    MissingPages {
        /// Byte offset of the trailer (for the writer: bytes written so far).
        offset: u64,
        /// How many pages are missing.
        missing: u64,
        /// The lowest missing page index.
        first_missing: u64,
    },
    /// A count in the trailer disagrees with the records actually read.
    #[error("trailer {field} = {stored} at byte {offset}, but {counted} were read")]
    CountMismatch {
        /// Byte offset of the count field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// Value in the trailer.
        stored: u64,
        /// Value counted while reading.
        counted: u64,
    },
    /// The completion marker at the very end is wrong.
    #[error("bad completion marker {found:02x?} at byte {offset}")]
    BadCompletionMarker {
        /// Byte offset of the marker.
        offset: u64,
        /// The bytes found.
        found: [u8; 8],
    },
    /// Bytes follow the completion marker.
    #[error("unexpected bytes after the completion marker at byte {offset}")]
    TrailingBytes {
        /// Byte offset of the first extra byte.
        offset: u64,
    },
    /// The header given to the writer is not valid (the reason says which rule).
    #[error("invalid snapshot header: {reason}")]
    InvalidHeader {
        /// Which rule it breaks.
        reason: String,
    },
    /// A writer or reader is used again after it returned an error.
    #[error("the {what} already failed and cannot be used any more")]
    Poisoned {
        /// "writer" or "reader".
        what: &'static str,
    },
    /// The raw image compared by `verify --against` has a different size than the region.
    #[error("raw image {path} has {raw_len} bytes, the snapshot region has {region_len}")]
    RawSizeMismatch {
        /// The raw image.
        path: PathBuf,
        /// Its length.
        raw_len: u64,
        /// The snapshot's region length.
        region_len: u64,
    },
    /// Pages of the snapshot differ from the raw image.
    #[error("{differing_pages} page(s) differ from the raw image, the first: {first_differing:?}")]
    RawMismatch {
        /// How many pages differ.
        differing_pages: u64,
        /// The lowest differing page indices (at most [`crate::DIFFERING_PAGES_LISTED_MAX`]).
        first_differing: Vec<u64>,
    },
    /// The caller's region for `load_into` has the wrong length.
    #[error("target region has {len} bytes, the snapshot region has {region_len}")]
    RegionSizeMismatch {
        /// The caller's region length.
        len: u64,
        /// The snapshot's region length.
        region_len: u64,
    },
}

impl FormatError {
    /// True when the error means "the snapshot ends early": the signature of a `.partial` file.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, FormatError::Truncated { .. })
    }

    /// The operating-system error number behind an I/O failure (`libc::ENOSPC` for a full
    /// disk, `libc::EPIPE` for a closed pipe), if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FormatError::Io { source, .. } | FormatError::DirectIoUnsupported { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        FormatError::Io { context: context.into(), source }
    }
}
