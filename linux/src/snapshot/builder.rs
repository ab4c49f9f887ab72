//! One call for the common case: `Snapshot::builder(region).policy(..).to_file(path, pause)`.

use super::config::SnapshotConfig;
use super::format_sink::FormatSink;
use super::pause::PauseGuard;
use super::report::SnapshotReport;
use super::session::{Prepared, Snapshot};
use super::shared::SnapshotError;
use super::thread_priority::ThreadPriority;
use crate::output::{OutputSpec, WriterOutput, open_output};
use crate::region::{Region, Regions};
use std::io::Write;
use std::path::Path;
use wpsnap_core::{PolicyConfig, ServiceModel};

/// Settings for a snapshot of one region, then where it goes. Made by [`Snapshot::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until to_file, to_writer or a prepare_* call"]
pub struct SnapshotBuilder<'a> {
    regions: Regions<'a>,
    config: SnapshotConfig,
    seal: bool,
}

impl Snapshot {
    /// A snapshot of `region` with the default configuration ([`SnapshotConfig::default`]).
    ///
    /// ```no_run
    /// use std::sync::Mutex;
    /// use wpsnap_linux::region::Region;
    /// use wpsnap_linux::snapshot::{Snapshot, SnapshotError};
    ///
    /// /// Saves `len` bytes at `arena` to `path` while the store keeps serving writes.
    /// fn bgsave(arena: *mut u8, len: usize, store_lock: &Mutex<()>, path: &str) -> Result<(), SnapshotError> {
    ///     // SAFETY: the arena stays mapped until this function returns, and nothing else
    ///     // registers it with a userfaultfd (docs/embedding.md, "The contract").
    ///     let region = unsafe { Region::detect(arena, len) }?;
    ///     let report = Snapshot::builder(region)
    ///         // Every writer takes this lock for each write: holding it is the pause.
    ///         .to_file(path, || store_lock.lock())?;
    ///     eprintln!("saved {} bytes; writers paused {} us", report.region_bytes, report.pause_ns / 1000);
    ///     Ok(())
    /// }
    /// ```
    pub fn builder(region: Region<'_>) -> SnapshotBuilder<'_> {
        Snapshot::builder_regions(Regions::from(region))
    }

    /// A snapshot of several regions at one instant (see [`Snapshot::prepare_regions`]).
    pub fn builder_regions(regions: Regions<'_>) -> SnapshotBuilder<'_> {
        SnapshotBuilder { regions, config: SnapshotConfig::default(), seal: false }
    }
}

impl<'a> SnapshotBuilder<'a> {
    /// The throttle policy of the background scan (default: `latency-target`).
    pub fn policy(mut self, policy: PolicyConfig) -> SnapshotBuilder<'a> {
        self.config.policy = policy;
        self
    }

    /// The service model (default: `decoupled`).
    pub fn service_model(mut self, model: ServiceModel) -> SnapshotBuilder<'a> {
        self.config.service_model = model;
        self
    }

    /// How the snapshot's threads are scheduled (default: [`ThreadPriority::default`], the
    /// fault thread ahead of the program's threads and the scan and sink behind them;
    /// [`ThreadPriority::inherit`] to leave them as spawned).
    pub fn thread_priority(mut self, priority: ThreadPriority) -> SnapshotBuilder<'a> {
        self.config.thread_priority = priority;
        self
    }

    /// The fault thread spins this long on the userfaultfd before it sleeps (default: zero;
    /// at most [`FAULT_SPIN_MAX`](super::FAULT_SPIN_MAX)).
    pub fn fault_spin(mut self, spin: std::time::Duration) -> SnapshotBuilder<'a> {
        self.config.fault_spin = spin;
        self
    }

    /// Every setting at once.
    pub fn config(mut self, config: SnapshotConfig) -> SnapshotBuilder<'a> {
        self.config = config;
        self
    }

    /// Seal a shared region's memfd at prepare, **permanently**, so writes that would bypass
    /// the protection fail with `EPERM` instead (see [`Prepared::seal_backing_file`]).
    pub fn seal_shared_file(mut self, seal: bool) -> SnapshotBuilder<'a> {
        self.seal = seal;
        self
    }

    fn prepare_sink(self, sink: FormatSink) -> Result<Prepared<'a>, SnapshotError> {
        let prepared = Snapshot::prepare_regions(self.regions, self.config, Box::new(sink))?;
        if self.seal {
            prepared.seal_backing_file()?;
        }
        Ok(prepared)
    }

    /// Prepares a snapshot to the file `path` (written as `path.partial`, renamed to `path`
    /// only when complete). The configuration is stored in the file's header.
    pub fn prepare_file(self, path: impl AsRef<Path>) -> Result<Prepared<'a>, SnapshotError> {
        let spec = OutputSpec::File { path: path.as_ref().to_path_buf(), direct_io: false };
        let output = open_output(&spec)?;
        let (sink, _summary) = FormatSink::for_config(output, &self.regions, &self.config)?;
        self.prepare_sink(sink)
    }

    /// Prepares a snapshot in the wpsnap format to `writer`; the slot holds the writer again
    /// after a successful `finish`.
    pub fn prepare_writer<W: Write + Send + 'static>(
        self,
        writer: W,
    ) -> Result<(Prepared<'a>, crate::output::WriterSlot<W>), SnapshotError> {
        let (output, slot) = WriterOutput::new(writer);
        let (sink, _summary) = FormatSink::for_config(Box::new(output), &self.regions, &self.config)?;
        Ok((self.prepare_sink(sink)?, slot))
    }

    /// Takes the whole snapshot to the file `path`: prepare, arm with `pause_writers` (see
    /// [`Prepared::arm`]), wait until every page is saved, publish the file.
    pub fn to_file<G: PauseGuard>(
        self,
        path: impl AsRef<Path>,
        pause_writers: impl FnOnce() -> G,
    ) -> Result<SnapshotReport, SnapshotError> {
        self.prepare_file(path)?.arm(pause_writers)?.finish()
    }

    /// Takes the whole snapshot to `writer` and hands the writer back.
    pub fn to_writer<W: Write + Send + 'static, G: PauseGuard>(
        self,
        writer: W,
        pause_writers: impl FnOnce() -> G,
    ) -> Result<(SnapshotReport, W), SnapshotError> {
        let (prepared, slot) = self.prepare_writer(writer)?;
        let report = prepared.arm(pause_writers)?.finish()?;
        let writer = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        writer.map(|w| (report, w)).ok_or(SnapshotError::WriterNotReturned)
    }
}
