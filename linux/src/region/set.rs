//! Several regions snapshotted at one instant ([`Regions`]): a VM's memory slots, a
//! database's arenas. Their pages are numbered one after the other, in the order given, so one
//! engine runs over the concatenated page space; every address-level operation (copy, protect,
//! residency) is split at region boundaries.

use super::{Region, RegionError};

/// Most regions one session covers (the snapshot format's bound).
pub const REGIONS_MAX: usize = wpsnap_format::REGIONS_MAX as usize;

/// One or more regions with the same page size, not overlapping, borrowed for `'a`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regions<'a> {
    /// Each region with the global index of its first page.
    parts: Vec<(Region<'a>, u64)>,
    page_size: u64,
    page_count: u64,
}

impl<'a> From<Region<'a>> for Regions<'a> {
    fn from(region: Region<'a>) -> Regions<'a> {
        Regions { page_size: region.page_size(), page_count: region.page_count(), parts: vec![(region, 0)] }
    }
}

impl<'a> Regions<'a> {
    /// The regions, pages numbered in this order. Refuses none, more than [`REGIONS_MAX`],
    /// different page sizes (one engine, one page size) and overlapping ranges.
    pub fn new(regions: Vec<Region<'a>>) -> Result<Regions<'a>, RegionError> {
        let Some(first) = regions.first() else {
            return Err(RegionError::RegionCount { count: 0, max: REGIONS_MAX });
        };
        if regions.len() > REGIONS_MAX {
            return Err(RegionError::RegionCount { count: regions.len(), max: REGIONS_MAX });
        }
        let page_size = first.page_size();
        if let Some(other) = regions.iter().find(|r| r.page_size() != page_size) {
            return Err(RegionError::MixedPageSizes {
                first: page_size,
                other: other.page_size(),
                start: other.start(),
            });
        }
        let mut sorted: Vec<(usize, usize)> = regions.iter().map(|r| (r.start(), r.start() + r.len())).collect();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(RegionError::Overlap { first: w[0].0, second: w[1].0 });
        }
        let mut parts = Vec::with_capacity(regions.len());
        let mut page_count = 0;
        for region in regions {
            let pages = region.page_count();
            parts.push((region, page_count));
            page_count += pages;
        }
        Ok(Regions { parts, page_size, page_count })
    }

    /// The regions, in page order.
    pub fn iter(&self) -> impl Iterator<Item = &Region<'a>> {
        self.parts.iter().map(|(r, _)| r)
    }
    /// How many regions.
    pub fn count(&self) -> usize {
        self.parts.len()
    }
    pub fn page_size(&self) -> u64 {
        self.page_size
    }
    /// Pages of all regions.
    pub fn page_count(&self) -> u64 {
        self.page_count
    }
    /// Bytes of all regions.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|(r, _)| r.len()).sum()
    }
    /// Never true: there is at least one region of at least one page.
    pub fn is_empty(&self) -> bool {
        self.page_count == 0
    }

    /// The region holding global page `page`, and the page's index inside it.
    fn locate(&self, page: u64) -> (&Region<'a>, u64) {
        debug_assert!(page < self.page_count);
        let at = self.parts.partition_point(|(_, first)| *first <= page) - 1;
        let (region, first) = &self.parts[at];
        (region, page - first)
    }

    /// Address of the first byte of global page `page` (below `page_count`).
    pub fn page_addr(&self, page: u64) -> usize {
        let (region, local) = self.locate(page);
        region.page_addr(local)
    }

    /// The global page holding `addr`, if it lies in one of the regions.
    pub fn page_of(&self, addr: usize) -> Option<u64> {
        self.parts.iter().find_map(|(r, first)| r.page_of(addr).map(|p| first + p))
    }

    /// Whether `[start, end)` overlaps any of the regions.
    pub fn overlaps(&self, start: usize, end: usize) -> bool {
        self.parts.iter().any(|(r, _)| r.overlaps(start, end))
    }

    /// Global pages `first .. first + count` as pieces, one per region they touch:
    /// `(region index, region, first local page, pages)`.
    pub fn pieces(&self, first: u64, count: u64) -> impl Iterator<Item = (usize, &Region<'a>, u64, u64)> {
        let end = first + count;
        self.parts.iter().enumerate().filter_map(move |(i, (region, start))| {
            let (lo, hi) = (first.max(*start), end.min(start + region.page_count()));
            (lo < hi).then(|| (i, region, lo - start, hi - lo))
        })
    }

    /// Global index of the first page of region `index`.
    pub fn first_page_of(&self, index: usize) -> u64 {
        self.parts.get(index).map_or(self.page_count, |(_, first)| *first)
    }

    /// Global pages `first .. first + count` as byte ranges `(address, length)`.
    pub fn byte_ranges(&self, first: u64, count: u64) -> impl Iterator<Item = (usize, usize)> {
        let page_size = self.page_size;
        self.pieces(first, count).map(move |(_, r, local, pages)| (r.page_addr(local), (pages * page_size) as usize))
    }

    /// [`Region::copy_pages`] over global pages, split at region boundaries.
    pub fn copy_pages(&self, first: u64, count: u64, out: &mut [u8]) {
        assert_eq!(out.len() as u64, count * self.page_size, "copy of the wrong length");
        let mut at = 0;
        for (_, region, local, pages) in self.pieces(first, count) {
            let bytes = (pages * self.page_size) as usize;
            region.copy_pages(local, pages, &mut out[at..at + bytes]);
            at += bytes;
        }
    }

    /// [`Region::first_absent`] over global pages, in the regions `check` selects (by index).
    pub fn first_absent(
        &self,
        first: u64,
        count: u64,
        check: impl Fn(usize) -> bool,
    ) -> Result<Option<u64>, crate::errno::Errno> {
        for (index, region, local, pages) in self.pieces(first, count) {
            if check(index)
                && let Some(page) = region.first_absent(local, pages)?
            {
                return Ok(Some(self.first_page_of(index) + page));
            }
        }
        Ok(None)
    }

    /// Copies every region, one after the other (with writers paused: see
    /// [`Region::copy_pages`]).
    pub fn copy_all(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len()];
        self.copy_pages(0, self.page_count, &mut out);
        out
    }

    /// The snapshot file's region table.
    pub fn table(&self) -> Vec<wpsnap_format::RegionEntry> {
        self.iter().map(Region::table_entry).collect()
    }

    /// The same regions with their borrow erased, for the session's threads.
    ///
    /// # Safety
    /// As [`Region::erase`].
    pub(crate) unsafe fn erase(&self) -> Regions<'static> {
        Regions {
            // SAFETY: forwarded to the caller.
            parts: self.parts.iter().map(|(r, f)| (unsafe { r.erase() }, *f)).collect(),
            page_size: self.page_size,
            page_count: self.page_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Backing;

    fn region(start: usize, pages: usize) -> Region<'static> {
        Region::checked_geometry(start, pages * 4096, Backing::Anonymous).expect("geometry")
    }

    #[test]
    fn pages_run_over_the_regions_in_order_and_split_at_their_boundaries() {
        let set = Regions::new(vec![region(0x10_0000, 3), region(0x40_0000, 2)]).expect("regions");
        assert_eq!((set.page_count(), set.len(), set.count()), (5, 5 * 4096, 2));
        assert_eq!(set.page_addr(2), 0x10_0000 + 2 * 4096);
        assert_eq!(set.page_addr(3), 0x40_0000);
        assert_eq!(set.page_of(0x40_0000 + 4096 + 5), Some(4));
        assert_eq!(set.page_of(0x20_0000), None);
        let ranges: Vec<_> = set.byte_ranges(1, 3).collect();
        assert_eq!(ranges, vec![(0x10_0000 + 4096, 2 * 4096), (0x40_0000, 4096)]);
        assert!(set.overlaps(0x40_0000 + 4096, 0x50_0000));
        assert!(!set.overlaps(0x13_0000, 0x40_0000));
    }

    #[test]
    fn refuses_empty_overlapping_and_mixed_page_sizes() {
        assert!(matches!(Regions::new(vec![]), Err(RegionError::RegionCount { count: 0, .. })));
        let overlap = Regions::new(vec![region(0x10_0000, 4), region(0x10_2000, 4)]);
        assert!(matches!(overlap, Err(RegionError::Overlap { .. })));
        let huge = Region::checked_geometry(0x4000_0000, 2 << 20, Backing::Hugetlbfs).expect("geometry");
        assert!(matches!(Regions::new(vec![region(0x10_0000, 1), huge]), Err(RegionError::MixedPageSizes { .. })));
    }
}
