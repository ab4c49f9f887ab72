//! The writers' exact fault classifier ([`PagemapReader`]): on every backing the tests use, a
//! write-protected page reads as protected, touched or not, PMD-mapped or not, and reads as
//! unprotected once the protection is removed.

use wpsnap_linux::region::{Backing, OwnedMapping, PageFill, hugetlb_pages_free, smaps};
use wpsnap_linux::uffd::{UnpopulatedMethod, WpUffd, uffd_or_skip};
use wpsnap_linux::writers::PagemapReader;

/// Region size: two 2 MiB huge pages, so a THP region can hold a PMD-mapped huge page.
const REGION_BYTES: usize = 4 << 20;
/// Every n-th page is left untouched (unpopulated when protected).
const UNTOUCHED_EVERY: u64 = 3;

fn protected_pages(reader: &PagemapReader, mapping: &OwnedMapping) -> Vec<bool> {
    let region = mapping.region();
    (0..region.page_count())
        .map(|page| reader.is_write_protected(region.page_addr(page)).expect("pagemap read"))
        .collect()
}

/// Bytes of the mapping's VMA mapped by transparent huge pages.
fn anon_huge_bytes(mapping: &OwnedMapping) -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let start = mapping.as_ptr() as usize;
    smaps::parse(&text)
        .expect("smaps parse")
        .iter()
        .find(|vma| vma.start <= start && start < vma.end)
        .map_or(0, |vma| vma.anon_huge_bytes)
}

fn check_backing(backing: Backing) {
    let mut mapping = OwnedMapping::new(REGION_BYTES, backing).expect("mapping");
    let untouched_protected = {
        let uffd = WpUffd::open().expect("uffd");
        uffd.unpopulated_method(backing.is_file_backed()) == UnpopulatedMethod::KernelWpUnpopulated
    };
    // THP: the first huge page whole (so it can be PMD-mapped), then some pages untouched.
    let page_size = backing.page_size();
    let huge_first_pages = if backing == Backing::Thp { (2 << 20) / page_size } else { 0 };
    mapping.fill(0, |page| {
        if page >= huge_first_pages && page % UNTOUCHED_EVERY == UNTOUCHED_EVERY - 1 {
            PageFill::Untouched
        } else {
            PageFill::Pattern
        }
    });
    if backing == Backing::Thp {
        eprintln!("thp: {} bytes PMD-mapped before protecting", anon_huge_bytes(&mapping));
    }
    let reader = PagemapReader::open().expect("pagemap");
    assert!(protected_pages(&reader, &mapping).iter().all(|p| !p), "{backing}: protected before any uffd");
    let uffd = WpUffd::open().expect("uffd");
    let (start, len) = (mapping.as_ptr() as usize, mapping.len());
    uffd.register_wp(start, len).expect("register");
    uffd.protect(start, len).expect("protect");
    if backing == Backing::Thp {
        // Protecting a whole huge page keeps it PMD-mapped: the entries come from the PMD.
        eprintln!("thp: {} bytes PMD-mapped while protected", anon_huge_bytes(&mapping));
    }
    let region = mapping.region();
    for (page, protected) in protected_pages(&reader, &mapping).into_iter().enumerate() {
        let untouched = page as u64 >= huge_first_pages && page as u64 % UNTOUCHED_EVERY == UNTOUCHED_EVERY - 1;
        if untouched && !untouched_protected {
            eprintln!("{backing}: unpopulated pages are not protected by the kernel here; page {page} not checked");
            continue;
        }
        assert!(protected, "{backing}: page {page} (untouched: {untouched}) does not read as protected");
    }
    // Unprotect every other page (splitting a PMD-mapped huge page); the rest stay protected.
    for page in (0..region.page_count()).step_by(2) {
        uffd.unprotect(region.page_addr(page), page_size as usize).expect("unprotect");
    }
    for (page, protected) in protected_pages(&reader, &mapping).into_iter().enumerate() {
        let untouched = page as u64 >= huge_first_pages && page as u64 % UNTOUCHED_EVERY == UNTOUCHED_EVERY - 1;
        if page % 2 == 0 {
            assert!(!protected, "{backing}: page {page} reads as protected after its unprotect");
        } else if !untouched || untouched_protected {
            assert!(protected, "{backing}: page {page} lost its protection when its neighbour was unprotected");
        }
    }
    uffd.unprotect(start, len).expect("unprotect all");
    assert!(protected_pages(&reader, &mapping).iter().all(|p| !p), "{backing}: protected after unprotecting all");
    uffd.unregister(start, len).expect("unregister");
}

#[test]
fn pagemap_shows_write_protection_on_every_backing() {
    if !uffd_or_skip("pagemap_shows_write_protection_on_every_backing") {
        return;
    }
    let mut backings = vec![Backing::Anonymous, Backing::Thp, Backing::Memfd];
    if hugetlb_pages_free() >= 2 * (REGION_BYTES as u64 / Backing::Hugetlbfs.page_size()) {
        backings.extend([Backing::Hugetlbfs, Backing::HugetlbfsShared]);
    } else {
        eprintln!("hugetlbfs cases skipped: too few free huge pages");
    }
    for backing in backings {
        check_backing(backing);
    }
}
