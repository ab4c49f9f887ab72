//! The simulated region: the kernel's write-protect bit per page, and what the simulator
//! needs to check the snapshot invariant: a captured page was not written since the
//! snapshot instant, and every page is saved exactly once.
//!
//! Three bits per page (protected, written since the instant, saved). Small regions also
//! keep a version (write count) per page, so the saved image can be compared with memory
//! as it was at the snapshot instant.

use super::bits::{PageBits, Plane};
use serde::{Deserialize, Serialize};

/// First violations kept in the report; the count keeps going.
const VIOLATIONS_KEPT_MAX: usize = 8;

/// What the invariant checks found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantReport {
    pub pages_checked: u64,
    pub violations: u64,
    pub first_violations: Vec<String>,
    /// Pages saved (each must be saved exactly once).
    pub pages_saved: u64,
    /// `Some` when versions were kept: did the image equal memory at the snapshot instant?
    pub image_equals_snapshot_instant: Option<bool>,
}

#[derive(Debug)]
struct Versions {
    now: Vec<u32>,
    at_instant: Vec<u32>,
    image: Vec<u32>,
}

/// Sentinel for "not saved" in the versioned image.
const NOT_SAVED: u32 = u32::MAX;

#[derive(Debug)]
pub struct Memory {
    page_count: u64,
    bits: PageBits,
    versions: Option<Versions>,
    snapshot_taken: bool,
    report: InvariantReport,
}

impl Memory {
    pub fn new(page_count: u64, keep_versions: bool) -> Memory {
        let versions = keep_versions.then(|| Versions {
            now: vec![0; page_count as usize],
            at_instant: Vec::new(),
            image: vec![NOT_SAVED; page_count as usize],
        });
        Memory {
            page_count,
            bits: PageBits::new(page_count),
            versions,
            snapshot_taken: false,
            report: InvariantReport::default(),
        }
    }

    /// Heap bytes the per-page state takes.
    pub fn bytes(&self) -> u64 {
        let versions =
            self.versions.as_ref().map_or(0, |v| (v.now.len() + v.at_instant.len() + v.image.len()) as u64 * 4);
        self.bits.bytes() + versions
    }

    fn violation(&mut self, what: String) {
        self.report.violations += 1;
        if self.report.first_violations.len() < VIOLATIONS_KEPT_MAX {
            self.report.first_violations.push(what);
        }
    }

    /// The snapshot instant: protect every page (writers are paused).
    pub fn protect_all(&mut self) {
        self.bits.fill(Plane::Protected, true);
        self.snapshot_taken = true;
        if let Some(v) = &mut self.versions {
            v.at_instant = v.now.clone();
        }
    }

    pub fn is_protected(&self, page: u64) -> bool {
        self.bits.get(Plane::Protected, page)
    }

    /// A writer's store lands on `page`; the caller has made sure it is not protected.
    pub fn write(&mut self, page: u64) {
        if self.bits.get(Plane::Protected, page) {
            self.violation(format!("write to protected page {page}"));
        }
        if self.snapshot_taken {
            self.bits.set(Plane::Written, page);
        }
        if let Some(v) = &mut self.versions {
            v.now[page as usize] = v.now[page as usize].wrapping_add(1) % NOT_SAVED;
        }
    }

    /// A lane copied `count` pages from `first` out of the region.
    pub fn capture(&mut self, first: u64, count: u64) {
        for page in first..first + count {
            self.report.pages_checked += 1;
            let [protected, written, saved] = self.bits.all(page);
            if !protected {
                self.violation(format!("page {page} captured while not write-protected"));
            }
            if written {
                self.violation(format!("page {page} captured after a write since the snapshot instant"));
            }
            if saved {
                self.violation(format!("page {page} saved twice"));
            }
            self.bits.set(Plane::Saved, page);
            if let Some(v) = &mut self.versions {
                v.image[page as usize] = v.now[page as usize];
            }
        }
    }

    pub fn unprotect(&mut self, first: u64, count: u64) {
        for page in first..first + count {
            if !self.bits.get(Plane::Saved, page) {
                self.violation(format!("page {page} unprotected before it was saved"));
            }
            self.bits.clear(Plane::Protected, page);
        }
    }

    pub fn unprotect_all(&mut self) {
        self.bits.fill(Plane::Protected, false);
    }

    /// Final checks: with `complete`, every page must be saved, and the image must equal
    /// memory at the snapshot instant.
    pub fn finish(&mut self, complete: bool) -> InvariantReport {
        self.report.pages_saved = self.bits.count_ones(Plane::Saved);
        if complete && self.report.pages_saved != self.page_count {
            let missing = self.page_count - self.report.pages_saved;
            self.violation(format!("snapshot complete with {missing} pages never saved"));
        }
        if let (true, Some(v)) = (complete, &self.versions) {
            let equal = v.image == v.at_instant;
            self.report.image_equals_snapshot_instant = Some(equal);
            if !equal {
                let page = v.image.iter().zip(&v.at_instant).position(|(a, b)| a != b).unwrap_or(0);
                self.violation(format!("image differs from memory at the snapshot instant at page {page}"));
            }
        }
        self.report.clone()
    }
}
