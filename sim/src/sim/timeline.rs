//! A bounded timeline of what the snapshot did: bins of scan pages, fault pages and fault
//! waits. When the run outgrows the bins, neighbours merge and the bin width doubles.

use serde::{Deserialize, Serialize};
use wpsnap_core::Nanos;

/// Most bins kept.
pub const TIMELINE_BINS_MAX: usize = 512;
/// The first bin width.
const BIN_NS_INITIAL: u64 = 1_000_000;

/// One time bin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bin {
    pub scan_pages: u64,
    pub fault_pages: u64,
    pub fault_waits: u64,
    pub fault_wait_max_ns: u64,
    pub fault_wait_sum_ns: u64,
}

impl Bin {
    fn merge(&mut self, other: &Bin) {
        self.scan_pages += other.scan_pages;
        self.fault_pages += other.fault_pages;
        self.fault_waits += other.fault_waits;
        self.fault_wait_max_ns = self.fault_wait_max_ns.max(other.fault_wait_max_ns);
        self.fault_wait_sum_ns += other.fault_wait_sum_ns;
    }
}

/// Bins from the snapshot instant on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub start_ns: u64,
    pub bin_ns: u64,
    pub bins: Vec<Bin>,
}

impl Timeline {
    /// An empty timeline starting at `start`.
    pub fn new(start: Nanos) -> Timeline {
        Timeline { start_ns: start.as_ns(), bin_ns: BIN_NS_INITIAL, bins: Vec::new() }
    }

    fn bin(&mut self, at: Nanos) -> &mut Bin {
        let offset = at.as_ns().saturating_sub(self.start_ns);
        // One division per call in the common case (no merge): this runs for every capture.
        let mut index = offset / self.bin_ns;
        while index >= TIMELINE_BINS_MAX as u64 {
            let merged: Vec<Bin> = self
                .bins
                .chunks(2)
                .map(|pair| {
                    let mut b = pair[0];
                    if let Some(second) = pair.get(1) {
                        b.merge(second);
                    }
                    b
                })
                .collect();
            self.bins = merged;
            self.bin_ns *= 2;
            index = offset / self.bin_ns;
        }
        let index = index as usize;
        if self.bins.len() <= index {
            self.bins.resize(index + 1, Bin::default());
        }
        &mut self.bins[index]
    }

    /// Counts `pages` captured at `at`, by the scan or by faults.
    pub fn pages(&mut self, at: Nanos, scan: bool, pages: u64) {
        let bin = self.bin(at);
        if scan {
            bin.scan_pages += pages;
        } else {
            bin.fault_pages += pages;
        }
    }

    /// Records one fault wait that ended at `at`.
    pub fn fault_wait(&mut self, at: Nanos, wait: Nanos) {
        let bin = self.bin(at);
        bin.fault_waits += 1;
        bin.fault_wait_max_ns = bin.fault_wait_max_ns.max(wait.as_ns());
        bin.fault_wait_sum_ns += wait.as_ns();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_merge_and_keep_totals() {
        let mut t = Timeline::new(Nanos::ZERO);
        for ms in 0..5_000u64 {
            t.pages(Nanos::from_ms(ms), true, 1);
        }
        assert!(t.bins.len() <= TIMELINE_BINS_MAX);
        assert_eq!(t.bins.iter().map(|b| b.scan_pages).sum::<u64>(), 5_000);
        assert_eq!(t.bin_ns, 16_000_000);
    }
}
