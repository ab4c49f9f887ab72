//! The simulated region: the kernel's write-protect bit per page, and what the simulator
//! needs to check the snapshot invariant: a captured page was not written since the
//! snapshot instant, and every page is saved exactly once.
//!
//! Three bits per page (protected, written since the instant, saved). Small regions also
//! keep a version (write count) per page, so the saved image can be compared with memory
//! as it was at the snapshot instant.

use super::bits::{PageBits, Plane, prefetch};
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

/// Per-page versions. A page's version now and its version in the saved image sit side by
/// side, so a capture (which reads one and writes the other) touches one cache line, not two
/// arrays far apart.
#[derive(Debug)]
struct Versions {
    /// `[now, image]` per page; the image is `NOT_SAVED` until the page is captured.
    now_image: Vec<[u32; 2]>,
    at_instant: Vec<u32>,
}

const NOW: usize = 0;
const IMAGE: usize = 1;

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
        let versions = keep_versions
            .then(|| Versions { now_image: vec![[0, NOT_SAVED]; page_count as usize], at_instant: Vec::new() });
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
        let versions = self.versions.as_ref().map_or(0, |v| (v.now_image.len() * 2 + v.at_instant.len()) as u64 * 4);
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
            v.at_instant = v.now_image.iter().map(|p| p[NOW]).collect();
        }
    }

    /// Asks the CPU to bring `page`'s bits and version into the cache ahead of its write or
    /// capture (random pages of a large region miss the cache otherwise). A hint only: it
    /// neither reads nor changes anything, and pages outside the region are ignored.
    pub fn prefetch(&self, page: u64) {
        if page >= self.page_count {
            return;
        }
        self.bits.prefetch(page);
        if let Some(pair) = self.versions.as_ref().and_then(|v| v.now_image.get(page as usize)) {
            prefetch(pair);
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
            let now = &mut v.now_image[page as usize][NOW];
            *now = now.wrapping_add(1) % NOT_SAVED;
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
                let pair = &mut v.now_image[page as usize];
                pair[IMAGE] = pair[NOW];
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
            let first_difference = v.now_image.iter().zip(&v.at_instant).position(|(p, at)| p[IMAGE] != *at);
            let equal = v.now_image.len() == v.at_instant.len() && first_difference.is_none();
            self.report.image_equals_snapshot_instant = Some(equal);
            if !equal {
                let page = first_difference.unwrap_or(0);
                self.violation(format!("image differs from memory at the snapshot instant at page {page}"));
            }
        }
        self.report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_check_names_the_first_page_saved_with_a_later_version() {
        let mut m = Memory::new(8, true);
        m.write(5);
        m.protect_all();
        // Pages 6 and 3 change after the instant (a violation each) and are saved changed.
        m.write(6);
        m.write(3);
        m.capture(0, 8);
        let report = m.finish(true);
        assert_eq!(report.image_equals_snapshot_instant, Some(false));
        let expected = "image differs from memory at the snapshot instant at page 3";
        assert!(report.first_violations.iter().any(|v| v == expected), "{:?}", report.first_violations);
    }

    #[test]
    fn the_image_equals_the_instant_when_every_page_is_saved_before_its_next_write() {
        let mut m = Memory::new(8, true);
        m.write(5);
        m.write(5);
        m.protect_all();
        m.capture(0, 8);
        m.unprotect(0, 8);
        m.write(5);
        let report = m.finish(true);
        assert_eq!(report.image_equals_snapshot_instant, Some(true));
        assert_eq!(report.violations, 0);
        assert_eq!(m.bytes(), 8 * 3 * 4 + 24);
    }

    #[test]
    fn a_page_never_saved_is_where_the_image_differs() {
        let mut m = Memory::new(8, true);
        m.protect_all();
        m.capture(0, 4);
        let report = m.finish(true);
        assert_eq!(report.image_equals_snapshot_instant, Some(false));
        let expected = "image differs from memory at the snapshot instant at page 4";
        assert!(report.first_violations.iter().any(|v| v == expected), "{:?}", report.first_violations);
    }
}
