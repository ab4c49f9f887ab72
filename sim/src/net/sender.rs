//! The snapshotting host: writers, the engine (qemu model: the saving thread writes each
//! page to the stream, then unprotects it) and the TCP stream with explicit flow control.

use super::receiver::{ACK_PROGRESS, ACK_VERIFIED};
use super::{NetScenario, PORT, RECEIVER, page_bytes};
use crate::sim::sub_seed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout};
use turmoil::net::TcpStream;
use wpsnap_core::{Action, Engine, EngineConfig, Lane, Nanos, PageIndex, PolicyConfig, ServiceModel};
use wpsnap_format::{Header, SnapshotWriter};
use wpsnap_workload::{PageSampler, Pattern, WriteTiming};

const PAGE_SIZE: usize = 4096;

/// What the sender saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SenderResult {
    /// `None` when the receiver confirmed a verified file.
    pub error: Option<String>,
    pub pages_saved: u64,
    pub faults: u64,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    /// Writers still blocked when the sender finished (must be 0).
    pub writers_blocked_at_end: u32,
    pub fault_wait_max_ms: u64,
}

/// The format writer's output: a buffer the async side drains into the socket.
#[derive(Clone, Default)]
struct Outbox(Arc<Mutex<Vec<u8>>>);

impl Write for Outbox {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = self.0.lock().map_err(|_| std::io::Error::other("outbox lock poisoned"))?;
        out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Outbox {
    fn take(&self) -> Vec<u8> {
        self.0.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default()
    }
}

struct SimWriter {
    sampler: PageSampler,
    rng: ChaCha8Rng,
    next_at: Nanos,
    blocked: Option<(u64, Nanos)>,
}

struct Host {
    versions: Vec<u32>,
    protected: Vec<bool>,
    writers: Vec<SimWriter>,
    timing: WriteTiming,
    engine: Engine,
    start: Instant,
    result: SenderResult,
}

impl Host {
    fn now(&self) -> Nanos {
        Nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// Writers whose time has come write; a write to a protected page blocks its writer
    /// and becomes a fault event for the engine.
    fn run_writers(&mut self) {
        let now = self.now();
        for w in 0..self.writers.len() {
            let writer = &mut self.writers[w];
            if writer.blocked.is_some() || writer.next_at > now {
                continue;
            }
            let page = writer.sampler.next_page(&mut writer.rng);
            if self.protected[page as usize] {
                writer.blocked = Some((page, now));
                self.result.faults += 1;
                // The queue holds one fault per writer at most, so it cannot be full.
                if let Err(e) = self.engine.handle_fault(now, PageIndex(page)) {
                    self.result.error.get_or_insert(format!("fault on page {page}: {e}"));
                }
                self.drain();
            } else {
                self.versions[page as usize] += 1;
                writer.next_at = now + Nanos(self.timing.next_gap_ns(now.as_ns(), &mut writer.rng));
            }
        }
    }

    fn wake(&mut self, matches: impl Fn(u64) -> bool) {
        let now = self.now();
        let mut waits = Vec::new();
        for writer in &mut self.writers {
            if let Some((page, since)) = writer.blocked
                && matches(page)
            {
                // The write that faulted now completes.
                self.versions[page as usize] += 1;
                writer.blocked = None;
                writer.next_at = now + Nanos(self.timing.next_gap_ns(now.as_ns(), &mut writer.rng));
                waits.push(now.saturating_since(since));
            }
        }
        for wait in waits {
            self.result.fault_wait_max_ms = self.result.fault_wait_max_ms.max(wait.as_ns() / 1_000_000);
            self.engine.handle_fault_wait(now, wait);
        }
    }

    fn drain(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Unprotect(run) => {
                    for p in run.pages() {
                        self.protected[p.0 as usize] = false;
                    }
                    self.wake(|page| run.contains(PageIndex(page)));
                }
                Action::Wake(page) => self.wake(|p| p == page.0),
                Action::UnprotectAll => {
                    self.protected.fill(false);
                    self.wake(|_| true);
                }
                Action::IterationEnd(_) | Action::Complete => {}
            }
        }
    }

    /// Stops the snapshot: everything unprotected, every writer woken.
    fn cancel(&mut self, reason: &str) {
        let now = self.now();
        self.engine.cancel(now, reason);
        self.drain();
        self.result.error.get_or_insert(reason.to_string());
    }

    fn blocked_writers(&self) -> u32 {
        self.writers.iter().filter(|w| w.blocked.is_some()).count() as u32
    }
}

struct Link {
    stream: TcpStream,
    sent: u64,
    acked: u64,
    verified: bool,
    io_timeout: Duration,
    window_bytes: u64,
}

impl Link {
    async fn read_ack(&mut self) -> Result<(), String> {
        let mut msg = [0u8; 9];
        match timeout(self.io_timeout, self.stream.read_exact(&mut msg)).await {
            Err(_) => Err(format!(
                "no acknowledgement from {RECEIVER} within {} ms ({} bytes sent, {} acknowledged): link down?",
                self.io_timeout.as_millis(),
                self.sent,
                self.acked
            )),
            Ok(Err(e)) => Err(format!("reading from {RECEIVER}: {e}")),
            Ok(Ok(_)) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&msg[1..]);
                self.acked = self.acked.max(u64::from_le_bytes(bytes));
                match msg[0] {
                    ACK_PROGRESS => Ok(()),
                    ACK_VERIFIED => {
                        self.verified = true;
                        Ok(())
                    }
                    _ => Err(format!("{RECEIVER} rejected the snapshot file")),
                }
            }
        }
    }

    /// Sends `data`, first waiting until the window has room.
    async fn send(&mut self, data: &[u8]) -> Result<(), String> {
        while self.sent - self.acked + data.len() as u64 > self.window_bytes.max(data.len() as u64) {
            self.read_ack().await?;
        }
        match timeout(self.io_timeout, self.stream.write_all(data)).await {
            Err(_) => Err(format!("writing to {RECEIVER}: no progress within {} ms", self.io_timeout.as_millis())),
            Ok(Err(e)) => Err(format!("writing to {RECEIVER}: {e}")),
            Ok(Ok(())) => {
                self.sent += data.len() as u64;
                Ok(())
            }
        }
    }
}

/// Takes one snapshot and streams it; never returns with a writer blocked.
pub(super) async fn snapshot(scenario: &NetScenario, instant_versions: Rc<RefCell<Vec<u32>>>) -> SenderResult {
    let pages = scenario.pages;
    let timing = match WriteTiming::steady(scenario.writes_per_sec) {
        Ok(t) => t,
        Err(e) => return SenderResult { error: Some(format!("writers: {e}")), ..SenderResult::default() },
    };
    let mut writers = Vec::new();
    for w in 0..scenario.writers {
        let Ok(sampler) = PageSampler::new(&Pattern::Zipf { theta: 0.9 }, pages, w) else {
            return SenderResult { error: Some("writers: bad pattern".into()), ..SenderResult::default() };
        };
        let rng = ChaCha8Rng::seed_from_u64(sub_seed(scenario.seed, 1_000 + w as u64));
        writers.push(SimWriter { sampler, rng, next_at: Nanos::ZERO, blocked: None });
    }
    let config = EngineConfig::new(PAGE_SIZE as u64, pages, ServiceModel::Qemu, PolicyConfig::None);
    let start = Instant::now();
    let engine = match Engine::new(config.clone(), Nanos::ZERO) {
        Ok(e) => e,
        Err(e) => return SenderResult { error: Some(format!("engine: {e}")), ..SenderResult::default() },
    };
    // Writers ran before (versions 0); the snapshot instant is now: protect everything.
    let mut host = Host {
        versions: vec![0; pages as usize],
        protected: vec![true; pages as usize],
        writers,
        timing,
        engine,
        start,
        result: SenderResult::default(),
    };
    *instant_versions.borrow_mut() = host.versions.clone();
    let result = stream_snapshot(&mut host, scenario, &config).await;
    if let Err(reason) = result {
        host.cancel(&reason);
    }
    host.result.pages_saved = host.engine.stats().pages_saved();
    host.result.writers_blocked_at_end = host.blocked_writers();
    host.result
}

async fn stream_snapshot(host: &mut Host, scenario: &NetScenario, config: &EngineConfig) -> Result<(), String> {
    let io_timeout = Duration::from_millis(scenario.io_timeout_ms);
    let stream = match timeout(io_timeout, TcpStream::connect((RECEIVER, PORT))).await {
        Err(_) => return Err(format!("connecting to {RECEIVER}: no answer within {} ms", scenario.io_timeout_ms)),
        Ok(Err(e)) => return Err(format!("connecting to {RECEIVER}: {e}")),
        Ok(Ok(s)) => s,
    };
    let mut link = Link { stream, sent: 0, acked: 0, verified: false, io_timeout, window_bytes: scenario.window_bytes };
    let outbox = Outbox::default();
    let header = Header::single(
        PAGE_SIZE as u64,
        scenario.pages,
        "wpsnap-sim network scenario",
        0,
        serde_json::to_string(config).unwrap_or_default(),
    );
    let mut writer = SnapshotWriter::new(outbox.clone(), &header).map_err(|e| format!("snapshot writer: {e}"))?;
    let deadline = Duration::from_millis(scenario.duration_ms_max);
    while !host.engine.is_complete() {
        if host.start.elapsed() > deadline {
            return Err(format!("snapshot not complete after {} ms", deadline.as_millis()));
        }
        host.run_writers();
        let mut saved_this_tick = 0;
        while saved_this_tick < scenario.scan_pages_per_ms {
            let now = host.now();
            let Some(capture) = host.engine.poll_capture(now, Lane::Single) else { break };
            // The page is still write-protected: its content is the snapshot instant's.
            for p in capture.run().pages() {
                let data = page_bytes(p.0, host.versions[p.0 as usize], PAGE_SIZE);
                writer.write_page(p.0, &data).map_err(|e| format!("snapshot writer: {e}"))?;
            }
            // QEMU's model: the page is in the stream before it is unprotected.
            let sent = link.send(&outbox.take()).await;
            (host.result.bytes_sent, host.result.bytes_acked) = (link.sent, link.acked);
            sent?;
            let now = host.now();
            host.engine.handle_captured(now, capture).map_err(|e| format!("engine: {e}"))?;
            host.drain();
            saved_this_tick += 1;
            host.run_writers();
        }
        if !host.engine.is_complete() {
            sleep(Duration::from_millis(1)).await;
        }
    }
    let report = serde_json::to_string(&host.engine.report()).unwrap_or_default();
    writer.finish(&report).map_err(|e| format!("snapshot writer: {e}"))?;
    link.send(&outbox.take()).await?;
    while !link.verified {
        link.read_ack().await?;
    }
    host.result.bytes_sent = link.sent;
    host.result.bytes_acked = link.acked;
    Ok(())
}
