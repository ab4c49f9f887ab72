//! The network scenario, on turmoil: the snapshot stream goes over simulated TCP to a
//! receiver host that writes it to its disk (like QEMU's `migrate tcp:`), across a link
//! with latency, random loss and partitions that heal or do not.
//!
//! Time here is turmoil's (1 ms ticks), not the nanosecond event loop of [`crate::sim`]:
//! this scenario checks correctness and liveness (the snapshot completes and the received
//! image equals memory at the snapshot instant, or it fails with a clear error after its
//! timeout; writers are never left blocked), not latency figures.
//!
//! The stream is the `wpsnap-format` file format written by its `SnapshotWriter`. Flow
//! control is explicit: the receiver acknowledges the bytes it has, and the sender keeps at
//! most `window_bytes` unacknowledged, so a dead link shows up as a missing
//! acknowledgement within `io_timeout_ms`, not as an unbounded buffer.

mod receiver;
mod sender;

pub use receiver::ReceiverResult;
pub use sender::SenderResult;

use crate::sim::sub_seed;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The receiver's address in the simulation.
pub const RECEIVER: &str = "receiver";
/// The snapshotting host.
pub const SENDER: &str = "snapshotter";
/// The port the receiver listens on.
pub const PORT: u16 = 4444;
/// Largest region this scenario simulates (it keeps a version per page and the whole
/// received file in memory).
pub const NET_PAGES_MAX: u64 = 1 << 16;

/// A partition of the link between the two hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// When it starts, in ms of simulated time.
    pub start_ms: u64,
    /// When it heals (held segments are then delivered, as TCP would retransmit them);
    /// `None`: never.
    pub heal_after_ms: Option<u64>,
}

/// One network scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetScenario {
    pub seed: u64,
    /// Pages of 4 KiB in the region.
    pub pages: u64,
    pub writers: u32,
    /// Mean writes per second per writer.
    pub writes_per_sec: f64,
    /// Pages the scan saves per millisecond at most (so a snapshot spans many ticks).
    pub scan_pages_per_ms: u64,
    pub link_latency_ms_min: u64,
    pub link_latency_ms_max: u64,
    /// turmoil's random link failure rate per delivery step (0 for none) and repair rate.
    pub fail_rate: f64,
    pub repair_rate: f64,
    pub partition: Option<Partition>,
    /// The sender gives up when an acknowledgement takes longer than this.
    pub io_timeout_ms: u64,
    /// Unacknowledged bytes the sender allows in flight.
    pub window_bytes: u64,
    /// Bound on simulated time.
    pub duration_ms_max: u64,
}

impl NetScenario {
    /// A healthy link with a few ms of latency, a 1 MiB region and two writers.
    pub fn healthy(seed: u64) -> NetScenario {
        NetScenario {
            seed,
            pages: 256,
            writers: 2,
            writes_per_sec: 2_000.0,
            scan_pages_per_ms: 4,
            link_latency_ms_min: 1,
            link_latency_ms_max: 5,
            fail_rate: 0.0,
            repair_rate: 1.0,
            partition: None,
            io_timeout_ms: 1_000,
            window_bytes: 64 * 1024,
            duration_ms_max: 60_000,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.pages == 0 || self.pages > NET_PAGES_MAX {
            return Err(format!("pages {} is outside 1..={NET_PAGES_MAX}", self.pages));
        }
        if self.writers > 64 {
            return Err(format!("writers {} is above 64", self.writers));
        }
        if self.scan_pages_per_ms == 0 || self.window_bytes < 8192 || self.io_timeout_ms == 0 {
            return Err("scan_pages_per_ms, io_timeout_ms must be positive and window_bytes >= 8192".into());
        }
        if self.link_latency_ms_min > self.link_latency_ms_max {
            return Err("link_latency_ms_min is above link_latency_ms_max".into());
        }
        Ok(())
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetOutcome {
    pub seed: u64,
    pub sender: SenderResult,
    pub receiver: Option<ReceiverResult>,
    /// Did the file the receiver wrote hold exactly memory at the snapshot instant?
    pub image_equals_snapshot_instant: Option<bool>,
    pub elapsed_ms: u64,
}

/// The content of `page` at `version`: its index and version, then a pseudo-random fill;
/// every fifth page is all zero until first written (to exercise zero-page records).
pub fn page_bytes(page: u64, version: u32, page_size: usize) -> Vec<u8> {
    let mut data = vec![0u8; page_size];
    if version == 0 && page.is_multiple_of(5) {
        return data;
    }
    data[0..8].copy_from_slice(&page.to_le_bytes());
    data[8..12].copy_from_slice(&version.to_le_bytes());
    let mut x = sub_seed(page, version as u64);
    for chunk in data[12..].chunks_mut(8) {
        x = sub_seed(x, 1);
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    data
}

/// Runs the scenario to its end.
pub fn run_net(scenario: &NetScenario) -> Result<NetOutcome, String> {
    scenario.validate()?;
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(scenario.seed)
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .simulation_duration(Duration::from_millis(scenario.duration_ms_max))
        .min_message_latency(Duration::from_millis(scenario.link_latency_ms_min))
        .max_message_latency(Duration::from_millis(scenario.link_latency_ms_max))
        .fail_rate(scenario.fail_rate)
        .repair_rate(scenario.repair_rate);
    let mut sim = builder.build();

    let received: Rc<RefCell<Option<ReceiverResult>>> = Rc::new(RefCell::new(None));
    let disk: Rc<RefCell<Vec<u8>>> = Rc::new(RefCell::new(Vec::new()));
    {
        let (received, disk) = (received.clone(), disk.clone());
        sim.host(RECEIVER, move || receiver::serve(received.clone(), disk.clone()));
    }
    let sent: Rc<RefCell<Option<SenderResult>>> = Rc::new(RefCell::new(None));
    let instant_versions: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::new()));
    {
        let (sent, versions, scenario) = (sent.clone(), instant_versions.clone(), scenario.clone());
        sim.client(SENDER, async move {
            let result = sender::snapshot(&scenario, versions).await;
            *sent.borrow_mut() = Some(result);
            Ok(())
        });
    }
    let mut partitioned = false;
    let mut healed = false;
    loop {
        let elapsed_ms = sim.elapsed().as_millis() as u64;
        if let Some(p) = scenario.partition {
            if !partitioned && elapsed_ms >= p.start_ms {
                // Held, not dropped: TCP keeps retransmitting until the link is back.
                sim.hold(SENDER, RECEIVER);
                partitioned = true;
            }
            if partitioned && !healed && p.heal_after_ms.is_some_and(|h| elapsed_ms >= p.start_ms + h) {
                sim.release(SENDER, RECEIVER);
                healed = true;
            }
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(format!("simulation: {e}")),
        }
    }
    let elapsed_ms = sim.elapsed().as_millis() as u64;
    let sender = sent.borrow_mut().take().ok_or("the sender never finished")?;
    let receiver = received.borrow_mut().take();
    let image_equals_snapshot_instant = match (&sender.error, &receiver) {
        (None, Some(r)) if r.verified => Some(receiver::image_matches(&disk.borrow(), &instant_versions.borrow())),
        _ => None,
    };
    Ok(NetOutcome { seed: scenario.seed, sender, receiver, image_equals_snapshot_instant, elapsed_ms })
}
