//! A [`PageSink`] that writes the wpsnap file format to an [`Output`] (file, stdout, TCP,
//! optionally through the slow-device emulation).

use super::sink::{PageSink, SinkError};
use crate::output::{Output, OutputSummary};
use crate::region::{Region, Regions};
use crate::sync::shim::{Arc, Mutex, lock};
use std::io::{BufWriter, Write};
use wpsnap_format::{PageDigest, SnapshotWriter};

/// Output buffer: big enough to batch page records into large writes, small enough to keep
/// the sink's latency per flush low.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;

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
    writer: SnapshotWriter<BufWriter<AbortOnDrop>>,
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
        let writer =
            SnapshotWriter::new(BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, AbortOnDrop(Some(output))), &header)
                .map_err(SinkError::Format)?;
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
        let mut output = buffered
            .into_inner()
            .map_err(|e| SinkError::Io { context: "flushing the output", source: e.into_error() })?;
        let output = output.0.take().ok_or(SinkError::AlreadyFinished)?;
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

/// Owns the output until commit; aborts it if dropped before.
struct AbortOnDrop(Option<Box<dyn Output>>);

impl Write for AbortOnDrop {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(output) => output.write(buf),
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
