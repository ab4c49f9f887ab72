//! Where saved pages go: the [`PageSink`] trait, and an in-memory image for tests and checks.

use crate::sync::shim::{Arc, Mutex, lock};
use thiserror::Error;
use wpsnap_format::{DigestedRun, PageDigest};

/// A sink failed, with the cause kept: [`SinkError::errno`] tells a full disk (`ENOSPC`)
/// from a reader that went away (`EPIPE`).
#[derive(Debug, Error)]
pub enum SinkError {
    /// The snapshot stream could not be written (the format's error names the page or the
    /// trailer, and keeps the I/O error).
    #[error("writing the snapshot stream: {0}")]
    Format(#[source] wpsnap_format::FormatError),
    /// The output could not be flushed or committed.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// An I/O error outside the format writer (flushing the output buffer).
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The configuration stored in the header could not be serialized.
    #[error("serializing the configuration: {0}")]
    Config(#[source] serde_json::Error),
    /// A page given to a sink does not fit it.
    #[error("page {index} of {len} bytes does not fit the sink ({pages} pages of {page_size} bytes)")]
    BadPage { index: u64, len: usize, pages: u64, page_size: usize },
    /// `finish` was reached twice.
    #[error("the output was already finished")]
    AlreadyFinished,
    /// A caller's own sink failed.
    #[error("{0}")]
    Custom(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SinkError {
    /// Wraps an error of a caller's own [`PageSink`].
    pub fn custom(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SinkError {
        SinkError::Custom(error.into())
    }

    /// The errno behind the failure, when the operating system reported one.
    pub fn errno(&self) -> Option<crate::errno::Errno> {
        match self {
            SinkError::Format(e) => e.raw_os_error().map(crate::errno::Errno::from_code),
            SinkError::Output(e) => e.errno(),
            SinkError::Io { source, .. } => crate::errno::Errno::of_io(source),
            SinkError::Custom(e) => e.downcast_ref::<std::io::Error>().and_then(crate::errno::Errno::of_io),
            SinkError::Config(_) | SinkError::BadPage { .. } | SinkError::AlreadyFinished => None,
        }
    }
}

/// Receives each page once, in any order, then a finish with the report.
pub trait PageSink: Send {
    /// Saves page `index` (`data` is exactly one page).
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError>;
    /// Saves page `index` whose record digest another thread already computed (the decoupled
    /// model's copying threads do, to keep that pass over the data off the sink thread).
    fn write_page_digested(&mut self, index: u64, data: &[u8], digest: &PageDigest) -> Result<(), SinkError> {
        let _ = digest;
        self.write_page(index, data)
    }
    /// Saves runs of consecutive pages with their digests (the decoupled model's sink thread
    /// hands over several staged runs at once). The default writes page by page; the format
    /// sink writes them with vectored writes, without copying the pages.
    fn write_runs(&mut self, runs: &[DigestedRun<'_>]) -> Result<(), SinkError> {
        for run in runs {
            let page_size = (run.data.len() / run.digests.len().max(1)).max(1);
            for ((page, index), digest) in run.data.chunks_exact(page_size).zip(run.first..).zip(run.digests) {
                self.write_page_digested(index, page, digest)?;
            }
        }
        Ok(())
    }
    /// Pushes buffered bytes to the output. The qemu model flushes after every capture, as QEMU
    /// flushes its stream after each page before unprotecting it.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Bytes handed to the underlying output so far.
    fn bytes_written(&self) -> u64;
    /// Completes the output (trailer, sync, rename, acknowledgement); returns where it went.
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError>;
    /// Gives up, leaving nothing that looks complete.
    fn abort(self: Box<Self>);
}

/// The pages an [`MemorySink`] received, shared with whoever holds the handle.
#[derive(Debug, Default)]
pub struct MemoryImage {
    pub page_size: usize,
    pub data: Vec<u8>,
    /// How often each page was written (1 each in a correct snapshot).
    pub writes: Vec<u32>,
    pub finished: bool,
    pub report_json: String,
}

/// A sink that keeps the image in memory (tests, and the demo's reference check).
#[derive(Debug)]
pub struct MemorySink {
    image: Arc<Mutex<MemoryImage>>,
    bytes: u64,
}

impl MemorySink {
    /// A sink for `page_count` pages of `page_size` bytes, and a handle to read the image.
    pub fn new(page_size: u64, page_count: u64) -> (MemorySink, Arc<Mutex<MemoryImage>>) {
        let image = Arc::new(Mutex::new(MemoryImage {
            page_size: page_size as usize,
            data: vec![0; (page_size * page_count) as usize],
            writes: vec![0; page_count as usize],
            finished: false,
            report_json: String::new(),
        }));
        (MemorySink { image: image.clone(), bytes: 0 }, image)
    }
}

impl PageSink for MemorySink {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        let mut image = lock(&self.image);
        let size = image.page_size;
        let i = index as usize;
        if data.len() != size || i >= image.writes.len() {
            return Err(SinkError::BadPage {
                index,
                len: data.len(),
                pages: image.writes.len() as u64,
                page_size: size,
            });
        }
        image.data[i * size..(i + 1) * size].copy_from_slice(data);
        image.writes[i] += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }
    fn bytes_written(&self) -> u64 {
        self.bytes
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        let mut image = lock(&self.image);
        image.finished = true;
        image.report_json = report_json.to_string();
        Ok("memory".to_string())
    }
    fn abort(self: Box<Self>) {}
}

/// A sink that sleeps a fixed time before every page it writes: a disk that takes that long per
/// page, for tests and experiments on back-pressure and latency bounds. It emulates no real
/// device (`output::SlowDevice` does that, with bandwidth and seeded stalls).
#[derive(Debug)]
pub struct DelayedSink<S> {
    pub inner: S,
    pub delay_per_page: std::time::Duration,
}

impl<S: PageSink> PageSink for DelayedSink<S> {
    fn write_page(&mut self, index: u64, data: &[u8]) -> Result<(), SinkError> {
        std::thread::sleep(self.delay_per_page);
        self.inner.write_page(index, data)
    }
    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }
    fn finish(self: Box<Self>, report_json: &str) -> Result<String, SinkError> {
        Box::new(self.inner).finish(report_json)
    }
    fn abort(self: Box<Self>) {
        Box::new(self.inner).abort()
    }
}
