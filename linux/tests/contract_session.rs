//! The snapshot contract through a whole session to a file: each bypass of the
//! write-protection that the kernel lets us see fails the snapshot loudly, and nothing appears
//! under the final name. (What cannot be seen is listed in docs/embedding.md.)

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wpsnap_linux::region::{Backing, ContractError, OwnedMapping};
use wpsnap_linux::snapshot::{Snapshot, SnapshotError};
use wpsnap_linux::uffd::uffd_or_skip;

const BYTES: usize = 4 << 20;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wpsnap-contract-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs a snapshot of a memfd region to a file, calling `bypass` after the instant (so it is
/// inside the snapshot by construction, whatever the scan's progress), and returns finish's
/// result and whether the final and the partial file exist.
fn snapshot_with(name: &str, bypass: impl FnOnce(&OwnedMapping)) -> (Result<(), SnapshotError>, bool, bool) {
    let mapping = OwnedMapping::new(BYTES, Backing::Memfd).expect("mapping");
    let dir = scratch(name);
    let path = dir.join("s.wps");
    let writers = Mutex::new(());
    let prepared = Snapshot::builder(mapping.region()).prepare_file(&path).expect("prepare");
    let running = prepared.arm(|| writers.lock()).expect("arm");
    // A legitimate store through the registered mapping, then the bypass.
    // SAFETY: the test owns the mapping; the store waits for its page to be saved if needed.
    unsafe { std::ptr::write_volatile(mapping.as_ptr().add(4096), 0x5A) };
    bypass(&mapping);
    let result = running.finish().map(|_| ());
    let (final_exists, partial_exists) = (path.exists(), dir.join("s.wps.partial").exists());
    let _ = std::fs::remove_dir_all(&dir);
    (result, final_exists, partial_exists)
}

fn expect_loud_failure(name: &str, outcome: (Result<(), SnapshotError>, bool, bool)) {
    let (result, final_exists, partial_exists) = outcome;
    match result {
        Err(SnapshotError::Contract(e)) => eprintln!("{name}: refused as expected: {e}"),
        other => panic!("{name}: expected a contract failure, got {:?}", other.map_err(|e| e.to_string())),
    }
    assert!(!final_exists, "{name}: a file appeared under the final name");
    assert!(partial_exists, "{name}: the .partial file is left for inspection");
}

#[test]
fn an_untouched_memfd_snapshot_with_stores_succeeds() {
    if !uffd_or_skip("an_untouched_memfd_snapshot_with_stores_succeeds") {
        return;
    }
    // Stores through the mapping are covered and must not trip the checks, even on pages
    // never touched before (the session populates a shared region at prepare).
    let (result, final_exists, _) = snapshot_with("clean", |m| {
        // SAFETY: the test owns the mapping.
        unsafe { std::ptr::write_volatile(m.as_ptr().add(BYTES - 4096), 1) };
    });
    assert!(result.is_ok(), "{:?}", result.map_err(|e| e.to_string()));
    assert!(final_exists);
}

#[test]
fn pwrite_growing_the_memfd_fails_the_snapshot() {
    if !uffd_or_skip("pwrite_growing_the_memfd_fails_the_snapshot") {
        return;
    }
    let outcome = snapshot_with("pwrite", |m| {
        rustix::io::pwrite(m.memfd().expect("memfd"), &[0xAB; 2 << 20], BYTES as u64).expect("pwrite");
    });
    expect_loud_failure("pwrite", outcome);
}

#[test]
fn fallocate_punch_hole_fails_the_snapshot() {
    if !uffd_or_skip("fallocate_punch_hole_fails_the_snapshot") {
        return;
    }
    let outcome = snapshot_with("punch", |m| {
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(m.memfd().expect("memfd"), flags, 1 << 20, 2 << 20).expect("fallocate");
    });
    expect_loud_failure("fallocate(PUNCH_HOLE)", outcome);
}

#[test]
fn a_second_mapping_made_during_the_snapshot_fails_it() {
    if !uffd_or_skip("a_second_mapping_made_during_the_snapshot_fails_it") {
        return;
    }
    let mut second = 0usize;
    let outcome = snapshot_with("second-mapping", |m| {
        let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
        // SAFETY: a fresh shared mapping of the test's memfd, unmapped after the snapshot.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                4096,
                prot,
                rustix::mm::MapFlags::SHARED,
                m.memfd().expect("memfd"),
                0,
            )
        }
        .expect("second mapping");
        // SAFETY: the page is ours: the write that bypasses the region's protection.
        unsafe { std::ptr::write_volatile(p.cast::<u8>(), 0xCD) };
        second = p as usize;
    });
    // SAFETY: unmapping what the bypass mapped.
    unsafe { rustix::mm::munmap(second as *mut _, 4096) }.expect("munmap");
    expect_loud_failure("second mapping", outcome);
}

#[test]
fn a_second_mapping_present_at_prepare_is_refused() {
    let mapping = OwnedMapping::new(BYTES, Backing::Memfd).expect("mapping");
    let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    // SAFETY: a fresh shared mapping of the test's memfd.
    let second = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            prot,
            rustix::mm::MapFlags::SHARED,
            mapping.memfd().expect("memfd"),
            0,
        )
    }
    .expect("second mapping");
    let result = Snapshot::builder(mapping.region()).prepare_writer(Vec::new());
    // SAFETY: unmapping what we mapped.
    unsafe { rustix::mm::munmap(second, 4096) }.expect("munmap");
    assert!(
        matches!(result, Err(SnapshotError::Contract(ContractError::MappedElsewhere { .. }))),
        "{:?}",
        result.map(|_| ()).map_err(|e| e.to_string())
    );
}

#[test]
fn a_wrong_declaration_is_refused_at_prepare() {
    let mapping = OwnedMapping::new(BYTES, Backing::Thp).expect("mapping");
    // SAFETY: the mapping outlives the region; only described here (the declaration is what
    // prepare must refuse).
    let declared = unsafe { wpsnap_linux::region::Region::from_raw(mapping.as_ptr(), BYTES, Backing::Anonymous) };
    assert!(declared.is_err(), "from_raw already refuses a wrong declaration");
}

#[test]
fn with_the_seal_every_file_bypass_is_refused_and_the_image_is_the_instant() {
    if !uffd_or_skip("with_the_seal_every_file_bypass_is_refused_and_the_image_is_the_instant") {
        return;
    }
    let mapping = OwnedMapping::new(BYTES, Backing::Memfd).expect("mapping");
    // SAFETY: the test owns the mapping; nothing else uses it yet.
    unsafe { std::ptr::write_bytes(mapping.as_ptr(), 0x11, BYTES) };
    let writers = Mutex::new(());
    let (prepared, slot) = Snapshot::builder(mapping.region())
        .seal_shared_file(true)
        .prepare_writer(Vec::new())
        .expect("prepare and seal");
    let running = prepared.arm(|| writers.lock()).expect("arm");
    let fd = mapping.memfd().expect("memfd");
    let eperm = |r: rustix::io::Result<()>, what: &str| {
        assert_eq!(r.err(), Some(rustix::io::Errno::PERM), "{what} must be refused while sealed")
    };
    // Into pages that exist (undetectable without the seal), past the end, a hole punched, a
    // truncation, and a second writable mapping: all refused.
    eperm(rustix::io::pwrite(fd, &[0xAB; 2 << 20], 1 << 20).map(|_| ()), "pwrite");
    eperm(rustix::io::pwrite(fd, &[0xAB; 4096], BYTES as u64).map(|_| ()), "pwrite past the end");
    let punch = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    eperm(rustix::fs::fallocate(fd, punch, 0, 1 << 20), "fallocate(PUNCH_HOLE)");
    eperm(rustix::fs::ftruncate(fd, 4096), "ftruncate");
    let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    // SAFETY: asks for a new shared mapping of the test's memfd; the seal refuses it.
    let second = unsafe { rustix::mm::mmap(std::ptr::null_mut(), 4096, prot, rustix::mm::MapFlags::SHARED, fd, 0) };
    eperm(second.map(|_| ()), "a second writable mapping");
    // A store through the region's own mapping still works (and is covered).
    // SAFETY: the test owns the mapping.
    unsafe { std::ptr::write_volatile(mapping.as_ptr().add(8192), 0x22) };
    running.finish().expect("the snapshot completes");
    let bytes = slot.lock().expect("slot").take().expect("the writer is returned");
    let mut reader = wpsnap_format::read_snapshot(&bytes[..]).expect("header");
    while let Some(page) = reader.next_page().expect("page") {
        assert!(page.data.is_some_and(|d| d.iter().all(|&b| b == 0x11)), "page {} is not the instant's", page.index);
    }
}

#[test]
fn sealing_a_private_region_is_refused() {
    if !uffd_or_skip("sealing_a_private_region_is_refused") {
        return;
    }
    let mapping = OwnedMapping::new(BYTES, Backing::Anonymous).expect("mapping");
    let result = Snapshot::builder(mapping.region()).seal_shared_file(true).prepare_writer(Vec::new());
    assert!(
        matches!(result, Err(SnapshotError::Contract(ContractError::SealUnavailable { .. }))),
        "{:?}",
        result.map(|_| ()).map_err(|e| e.to_string())
    );
}
