//! Aligned buffering for `O_DIRECT`: the kernel wants the buffer address, the length and the
//! file offset of every write aligned to the logical block size.

use std::fs::File;
use std::io::{self, Write};

/// Alignment of buffer address, write length and file offset under `O_DIRECT`.
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;
/// Size of the aligned staging buffer (a multiple of the alignment).
pub const DIRECT_BUFFER_BYTES: usize = 1 << 20;

/// An `O_DIRECT` file plus an aligned staging buffer. Only whole buffers are written until
/// [`DirectFile::finish_and_sync`] pads the tail to the alignment, writes it and truncates the
/// file back to its true length.
#[derive(Debug)]
pub struct DirectFile {
    file: File,
    /// Over-allocated by one alignment unit; `start` is the first aligned byte.
    storage: Vec<u8>,
    start: usize,
    /// Bytes staged in `storage[start..start + filled]`.
    filled: usize,
    /// Bytes handed to the kernel so far (a multiple of the alignment until finished).
    written: u64,
    /// Set by `finish_and_sync`: the file has its final length and takes no more writes.
    finished: bool,
}

impl DirectFile {
    pub(crate) fn new(file: File) -> Self {
        let storage = vec![0u8; DIRECT_BUFFER_BYTES + DIRECT_IO_ALIGN_BYTES];
        // align_offset is safe and exact for byte pointers; the slack above guarantees room.
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGN_BYTES).min(DIRECT_IO_ALIGN_BYTES);
        DirectFile { file, storage, start, filled: 0, written: 0, finished: false }
    }

    fn write_out(&mut self, len: usize) -> io::Result<()> {
        let (start, file) = (self.start, &mut self.file);
        file.write_all(&self.storage[start..start + len])?;
        self.written += len as u64;
        Ok(())
    }

    /// Writes the staged tail padded with zeros to the alignment, truncates the file to the
    /// bytes actually given, and fsyncs.
    pub(crate) fn finish_and_sync(&mut self) -> io::Result<()> {
        if self.finished {
            return self.file.sync_all();
        }
        let true_len = self.written + self.filled as u64;
        if self.filled > 0 {
            let padded = self.filled.next_multiple_of(DIRECT_IO_ALIGN_BYTES);
            let (s, f) = (self.start, self.filled);
            self.storage[s + f..s + padded].fill(0);
            self.write_out(padded)?;
            self.filled = 0;
        }
        self.file.set_len(true_len)?;
        self.written = true_len;
        self.finished = true;
        self.file.sync_all()
    }
}

impl Write for DirectFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.finished {
            return Err(io::Error::other("O_DIRECT file already finished; no more writes"));
        }
        let room = DIRECT_BUFFER_BYTES - self.filled;
        let n = room.min(buf.len());
        let at = self.start + self.filled;
        self.storage[at..at + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        if self.filled == DIRECT_BUFFER_BYTES {
            self.write_out(DIRECT_BUFFER_BYTES)?;
            self.filled = 0;
        }
        Ok(n)
    }

    /// Writes only whole aligned blocks; a tail shorter than the alignment stays staged until
    /// `finish_and_sync`, since `O_DIRECT` cannot write it alone.
    fn flush(&mut self) -> io::Result<()> {
        let whole = self.filled - self.filled % DIRECT_IO_ALIGN_BYTES;
        if whole > 0 {
            self.write_out(whole)?;
            let (s, f) = (self.start, self.filled);
            self.storage.copy_within(s + whole..s + f, s);
            self.filled -= whole;
        }
        Ok(())
    }
}
