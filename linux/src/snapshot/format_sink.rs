//! A [`PageSink`] that writes the wpsnap file format to an [`Output`] (file, stdout, TCP,
//! optionally through the slow-device emulation).

use super::sink::{PageSink, SinkError};
use crate::output::{Output, OutputSummary};
use crate::region::{Region, Regions};
use crate::sync::shim::{Arc, Mutex, lock};
use std::io::{IoSlice, Write};
use wpsnap_format::{DigestedRun, PageDigest, SnapshotWriter};

/// Output buffer for the small writes (header, single pages, trailer). Runs of pages of at
/// least this size skip it: [`PageSink::write_runs`] writes them with vectored writes straight
/// from staging memory.
const OUTPUT_BUFFER_BYTES: usize = 64 << 10;

/// What the snapshot file's region table is made of: a [`Region`] or [`Regions`].
pub trait RegionTable {
    /// The table's entries, in page order.
    fn region_table(&self) -> Vec<wpsnap_format::RegionEntry>;
}

impl RegionTable for Region<'_> {
    fn region_table(&self) -> Vec<wpsnap_format::RegionEntry> {
        vec![self.table_entry()]
    }
}

impl RegionTable for Regions<'_> {
    fn region_table(&self) -> Vec<wpsnap_format::RegionEntry> {
        self.table()
    }
}

/// Receives the output's summary when a [`FormatSink`] is finished.
pub type SummarySlot = Arc<Mutex<Option<OutputSummary>>>;

/// Writes pages as wpsnap records; `finish` writes the trailer and commits the output.
pub struct FormatSink {
    writer: SnapshotWriter<SmallWriteBuffer>,
    summary: SummarySlot,
}

impl std::fmt::Debug for FormatSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatSink").field("bytes", &self.writer.bytes_written()).finish_non_exhaustive()
    }
}

impl FormatSink {
    /// Writes the header for `region` to `output`. The returned slot receives the output's
    /// summary when the sink is finished.
    pub fn new(
        output: Box<dyn Output>,
        regions: &impl RegionTable,
        config_json: String,
    ) -> Result<(FormatSink, SummarySlot), SinkError> {
        let header = wpsnap_format::Header {
            regions: regions.region_table(),
            created_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            config_json,
        };
        let out = SmallWriteBuffer { out: AbortOnDrop(Some(output)), buf: Vec::with_capacity(OUTPUT_BUFFER_BYTES) };
        let writer = SnapshotWriter::new(out, &header).map_err(SinkError::Format)?;
        let summary = Arc::new(Mutex::new(None));
        Ok((FormatSink { writer, summary: summary.clone() }, summary))
    }
}

impl FormatSink {
    /// Writes the header for `region` to `output`, storing the session's configuration
    /// (typed, serialized as JSON) so `inspect` shows how the snapshot was taken.
    pub fn for_config(
        output: Box<dyn Output>,
        regions: &impl RegionTable,
        config: &super::SnapshotConfig,
    ) -> Result<(FormatSink, SummarySlot), SinkError> {
        let json = serde_json::to_string(config).map_err(SinkError::Config)?;
        FormatSink::new(output, regions, json)
    }
}

impl PageSink for FormatSink {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        self.writer.write_page(index, data).map_err(SinkError::Format)
    }
    fn write_page_digested(&mut self, index: u64, data: &[u8], digest: &PageDigest) -> Result<(), SinkError> {
        self.writer.write_page_digested(index, data, digest).map_err(SinkError::Format)
    }
    fn write_runs(&mut self, runs: &[DigestedRun<'_>]) -> Result<(), SinkError> {
        self.writer.write_runs_digested(runs).map_err(SinkError::Format)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.writer.flush().map_err(SinkError::Format)
    }
    fn bytes_written(&self) -> u64 {
        self.writer.bytes_written()
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        let FormatSink { writer, summary } = *self;
        let mut buffered = writer.finish(report_json).map_err(SinkError::Format)?;
        buffered.flush().map_err(|source| SinkError::Io { context: "flushing the output", source })?;
        let output = buffered.out.0.take().ok_or(SinkError::AlreadyFinished)?;
        let done = output.commit()?;
        let destination = done.destination.clone();
        *lock(&summary) = Some(done);
        Ok(destination)
    }
    fn abort(self: Box<Self>) {
        let FormatSink { writer, .. } = *self;
        // AbortOnDrop aborts the output: NAME.partial is left (file), the stream is closed
        // without a trailer (pipe, TCP).
        drop(writer);
    }
}

/// A write buffer that, unlike `std::io::BufWriter`, hands large vectored writes to the output
/// as they are: `BufWriter` copies them unless the inner writer says it is vectored, which
/// only standard-library types can say (`is_write_vectored` is unstable).
struct SmallWriteBuffer {
    out: AbortOnDrop,
    /// Bytes not yet written; never more than [`OUTPUT_BUFFER_BYTES`].
    buf: Vec<u8>,
}

impl SmallWriteBuffer {
    fn flush_buf(&mut self) -> std::io::Result<()> {
        let result = self.out.write_all(&self.buf);
        self.buf.clear();
        result
    }
}

impl Write for SmallWriteBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[IoSlice::new(data)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.buf.len() + total > OUTPUT_BUFFER_BYTES {
            self.flush_buf()?;
        }
        if total >= OUTPUT_BUFFER_BYTES {
            return self.out.write_vectored(bufs);
        }
        for b in bufs {
            self.buf.extend_from_slice(b);
        }
        Ok(total)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_buf()?;
        self.out.flush()
    }
}

/// Owns the output until commit; aborts it if dropped before.
struct AbortOnDrop(Option<Box<dyn Output>>);

impl Write for AbortOnDrop {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(output) => output.write(buf),
            None => Err(std::io::Error::other("output already finished")),
        }
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(output) => output.write_vectored(bufs),
            None => Err(std::io::Error::other("output already finished")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Some(output) => output.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(output) = self.0.take() {
            output.abort();
        }
    }
}
