//! Live snapshots on the real backend: writers keep writing version-stamped pages during the
//! snapshot; the image must equal a copy taken while writers were paused, page for page, and
//! live memory must hold every write afterwards.

mod common;

use common::{Scenario, run_and_check, uffd_or_skip};
use wpsnap_core::ServiceModel;
use wpsnap_linux::region::{Backing, hugetlb_pages_free};
use wpsnap_linux::uffd::UnpopulatedMethod;

fn check(backing: Backing, model: ServiceModel, name: &str) {
    if !uffd_or_skip(name) {
        return;
    }
    let outcome = run_and_check(&Scenario::new(backing, model), |_| Vec::new());
    let stats = &outcome.report.engine.stats;
    // Writers hit protected pages during the snapshot, and those were saved by fault.
    assert!(stats.pages_by_fault > 0, "{name}: no page was saved by fault: {stats:?}");
    assert!(outcome.writers.fault_wait.count() > 0, "{name}: writers measured no fault wait");
    eprintln!(
        "{name}: {} pages, {} by fault, pause {} us, fault wait p50 {} us p99 {} us, method {:?}",
        outcome.report.engine.config.page_count,
        stats.pages_by_fault,
        outcome.report.pause_ns / 1000,
        outcome.report.engine.fault_wait.p50_ns / 1000,
        outcome.report.engine.fault_wait.p99_ns / 1000,
        outcome.report.unpopulated_method,
    );
}

#[test]
fn anonymous_decoupled() {
    check(Backing::Anonymous, ServiceModel::Decoupled, "anonymous_decoupled");
}

#[test]
fn anonymous_qemu() {
    check(Backing::Anonymous, ServiceModel::Qemu, "anonymous_qemu");
}

#[test]
fn thp_decoupled() {
    check(Backing::Thp, ServiceModel::Decoupled, "thp_decoupled");
}

#[test]
fn memfd_decoupled() {
    check(Backing::Memfd, ServiceModel::Decoupled, "memfd_decoupled");
}

#[test]
fn memfd_qemu() {
    check(Backing::Memfd, ServiceModel::Qemu, "memfd_qemu");
}

/// The fallback for kernels without WP_UNPOPULATED: touch each page by reading it first.
#[test]
fn anonymous_touch_by_reading() {
    if !uffd_or_skip("anonymous_touch_by_reading") {
        return;
    }
    let mut scenario = Scenario::new(Backing::Anonymous, ServiceModel::Decoupled);
    scenario.force_touch = true;
    let outcome = run_and_check(&scenario, |_| Vec::new());
    assert_eq!(outcome.report.unpopulated_method, UnpopulatedMethod::TouchByReading);
}

/// hugetlbfs needs reserved huge pages; this test reserves a few if none are free and gives
/// them back afterwards, and skips (saying why) if it cannot.
#[test]
fn hugetlbfs_decoupled() {
    if !uffd_or_skip("hugetlbfs_decoupled") {
        return;
    }
    const NEEDED: u64 = 8;
    const SYSCTL: &str = "/proc/sys/vm/nr_hugepages";
    let before = std::fs::read_to_string(SYSCTL).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let mut reserved = false;
    if hugetlb_pages_free() < NEEDED
        && let Some(before) = before
    {
        reserved = std::fs::write(SYSCTL, (before + NEEDED).to_string()).is_ok();
    }
    if hugetlb_pages_free() < NEEDED {
        eprintln!(
            "SKIPPED hugetlbfs_decoupled: fewer than {NEEDED} free 2 MiB huge pages and none could be reserved via {SYSCTL}"
        );
    } else {
        let mut scenario = Scenario::new(Backing::Hugetlbfs, ServiceModel::Decoupled);
        scenario.bytes = (NEEDED as usize) << 21;
        let outcome = run_and_check(&scenario, |_| Vec::new());
        drop(outcome);
    }
    if reserved && let Some(before) = before {
        let _ = std::fs::write(SYSCTL, before.to_string());
    }
}

/// A kernel-side write (read(2) from a pipe into a protected page) during the snapshot must
/// succeed, not fail with EFAULT, and the image must still hold the page's old content.
#[test]
fn read_syscall_into_protected_page() {
    if !uffd_or_skip("read_syscall_into_protected_page") {
        return;
    }
    let scenario = Scenario::new(Backing::Anonymous, ServiceModel::Decoupled);
    let mut target = 0;
    let outcome = run_and_check(&scenario, |region| {
        // Near the end: the scan cannot have reached it (it holds at most the budget, a
        // quarter of the region, beyond what the slow sink wrote), so it is still protected.
        target = region.page_count() - 5;
        let (read_end, write_end) = rustix::pipe::pipe().expect("pipe");
        let payload = vec![0xABu8; region.page_size() as usize];
        assert_eq!(rustix::io::write(&write_end, &payload).expect("write to pipe"), payload.len());
        // SAFETY: the page is inside the test's own mapping; the kernel writes it on our behalf.
        let page =
            unsafe { std::slice::from_raw_parts_mut(region.page_addr(target) as *mut u8, region.page_size() as usize) };
        let n = rustix::io::read(&read_end, page).expect("read(2) into a protected page must not fail");
        assert_eq!(n, payload.len());
        vec![target]
    });
    let live = outcome.mapping.region();
    let mut page = vec![0u8; live.page_size() as usize];
    live.copy_pages(target, 1, &mut page);
    let ab = page.iter().filter(|&&b| b == 0xAB).count();
    // Writers stamp two words per write after the read; most of the page stays as read.
    assert!(ab >= page.len() / 2, "read(2) data not in live memory: {ab} bytes 0xAB, first {:?}", &page[..32]);
}

/// Pages never touched before the snapshot are protected too: every written page's image is
/// the reference (zero), whatever method the kernel offers. run_and_check leaves every 7th page
/// untouched; this run uses a sparse region where most pages are untouched.
#[test]
fn sparse_region_never_touched_pages() {
    if !uffd_or_skip("sparse_region_never_touched_pages") {
        return;
    }
    let mut scenario = Scenario::new(Backing::Anonymous, ServiceModel::Qemu);
    scenario.bytes = 8 << 20;
    let outcome = run_and_check(&scenario, |_| Vec::new());
    assert!(outcome.report.engine.stats.pages_by_fault > 0);
}
