//! Backing detected, not declared; and the snapshot contract's file checks (pwrite,
//! fallocate, a second mapping), on live mappings. The session-level tests (finish fails, no
//! file published) are in `contract_session.rs`.

use std::os::fd::AsFd;
use wpsnap_linux::region::{
    Backing, ContractError, ContractWatch, DetectedBacking, OwnedMapping, Region, RegionError, hugetlb_pages_free,
};

fn touch(mapping: &OwnedMapping) {
    let region = mapping.region();
    for page in 0..region.page_count() {
        // SAFETY: the test owns the mapping; no other thread uses it.
        unsafe { std::ptr::write_volatile(region.page_addr(page) as *mut u8, 1) };
    }
}

#[test]
fn detected_backing_matches_what_was_mapped() {
    let mut backings = vec![Backing::Anonymous, Backing::Thp, Backing::Memfd];
    if hugetlb_pages_free() >= 2 {
        backings.extend([Backing::Hugetlbfs, Backing::HugetlbfsShared]);
    } else {
        eprintln!("hugetlbfs cases skipped: fewer than 2 free huge pages");
    }
    for backing in backings {
        let mapping = OwnedMapping::new(4 << 20, backing).expect("mapping");
        touch(&mapping);
        // SAFETY: the mapping outlives the region in this test.
        let region = unsafe { Region::detect(mapping.as_ptr(), mapping.len()) }.expect("detect");
        assert_eq!(region.backing(), backing, "detected {}", region.backing());
        // SAFETY: as above.
        let declared = unsafe { Region::from_raw(mapping.as_ptr(), mapping.len(), backing) };
        assert!(declared.is_ok(), "{backing}: {:?}", declared.err().map(|e| e.to_string()));
    }
}

#[test]
fn a_wrong_declaration_is_refused_naming_both() {
    let cases = [
        (Backing::Thp, Backing::Anonymous),
        (Backing::Memfd, Backing::Anonymous),
        (Backing::Anonymous, Backing::Memfd),
    ];
    for (mapped, declared) in cases {
        let mapping = OwnedMapping::new(4 << 20, mapped).expect("mapping");
        touch(&mapping);
        // SAFETY: the mapping outlives the region in this test.
        let result = unsafe { Region::from_raw(mapping.as_ptr(), mapping.len(), declared) };
        match result {
            Err(e @ RegionError::BackingMismatch { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&format!("declared {declared}")), "{text}");
                assert!(text.contains("the kernel says it is"), "{text}");
            }
            other => {
                panic!("{mapped} declared {declared}: expected a mismatch, got {:?}", other.map_err(|e| e.to_string()))
            }
        }
    }
}

#[test]
fn a_regular_file_and_unmapped_memory_are_refused() {
    // The target directory is on a disk file system on this project's machines; /tmp may be tmpfs.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("regular-file-region");
    let file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).expect("file");
    file.set_len(1 << 20).expect("size");
    let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    // SAFETY: a fresh shared mapping of our own file.
    let ptr =
        unsafe { rustix::mm::mmap(std::ptr::null_mut(), 1 << 20, prot, rustix::mm::MapFlags::SHARED, file.as_fd(), 0) }
            .expect("mmap");
    // SAFETY: the mapping lives until the munmap below.
    let result = unsafe { Region::detect(ptr.cast(), 1 << 20) };
    let fs_is_tmpfs = wpsnap_linux::region::is_on_tmpfs(&path);
    if fs_is_tmpfs {
        assert!(matches!(result, Ok(r) if r.backing() == Backing::Memfd));
    } else {
        match result {
            Err(e @ RegionError::Unsupported { detected: DetectedBacking::File { .. }, .. }) => {
                assert!(e.to_string().contains("cannot snapshot"), "{e}");
            }
            other => panic!("a regular file must be refused, got {:?}", other.map_err(|e| e.to_string())),
        }
    }
    // SAFETY: unmapping what we mapped.
    unsafe { rustix::mm::munmap(ptr, 1 << 20) }.expect("munmap");
    // The same address is now unmapped.
    // SAFETY: only described, never read.
    let unmapped = unsafe { Region::from_raw(ptr.cast(), 1 << 20, Backing::Anonymous) };
    assert!(matches!(unmapped, Err(RegionError::Range { .. })), "{:?}", unmapped.map_err(|e| e.to_string()));
    let _ = std::fs::remove_file(&path);
}

fn memfd_watch() -> (OwnedMapping, ContractWatch) {
    let mapping = OwnedMapping::new(4 << 20, Backing::Memfd).expect("mapping");
    touch(&mapping);
    let mut watch = ContractWatch::at_prepare(&mapping.region()).expect("prepare checks");
    assert_eq!(watch.file_watched(), Some(true), "the memfd must be watchable here");
    watch.at_instant().expect("stamp");
    (mapping, watch)
}

fn expect_file_changed(watch: &ContractWatch, what: &str) {
    match watch.at_finish() {
        Err(e @ ContractError::FileChanged { .. }) => {
            assert!(e.to_string().contains("bypassed write-protection"), "{e}")
        }
        other => panic!("{what} after the instant must be detected, got {:?}", other.map_err(|e| e.to_string())),
    }
}

#[test]
fn an_unchanged_memfd_passes_and_stores_through_the_mapping_do_not_count() {
    let (mapping, watch) = memfd_watch();
    // A store through the registered mapping is what the snapshot covers; it must not trip
    // the file check (shmem does not update mtime for stores through a mapping).
    // SAFETY: the test owns the mapping.
    unsafe { std::ptr::write_volatile(mapping.as_ptr().add(8192), 7) };
    watch.at_finish().expect("nothing bypassed the mapping");
}

#[test]
fn pwrite_that_grows_the_memfd_after_the_instant_is_detected() {
    let (mapping, watch) = memfd_watch();
    let fd = mapping.memfd().expect("memfd");
    rustix::io::pwrite(fd, &[0xAB; 4096], 4 << 20).expect("pwrite");
    expect_file_changed(&watch, "pwrite past the end");
}

#[test]
fn pwrite_into_a_hole_after_the_instant_is_detected() {
    let mapping = OwnedMapping::new(4 << 20, Backing::Memfd).expect("mapping");
    // Every page but the last is populated (the session populates them all; this test
    // drives the watch directly).
    let region = mapping.region();
    for page in 0..region.page_count() - 1 {
        // SAFETY: the test owns the mapping.
        unsafe { std::ptr::write_volatile(region.page_addr(page) as *mut u8, 1) };
    }
    let mut watch = ContractWatch::at_prepare(&region).expect("prepare checks");
    watch.at_instant().expect("stamp");
    rustix::io::pwrite(mapping.memfd().expect("memfd"), &[0xAB; 4096], (4 << 20) - 4096).expect("pwrite");
    expect_file_changed(&watch, "pwrite into a hole");
}

#[test]
fn fallocate_punch_hole_after_the_instant_is_detected() {
    let (mapping, watch) = memfd_watch();
    let fd = mapping.memfd().expect("memfd");
    let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    rustix::fs::fallocate(fd, flags, 1 << 20, 1 << 20).expect("fallocate");
    expect_file_changed(&watch, "fallocate(PUNCH_HOLE)");
}

#[test]
fn a_second_mapping_of_the_memfd_is_refused_at_prepare() {
    let mapping = OwnedMapping::new(4 << 20, Backing::Memfd).expect("mapping");
    let fd = mapping.memfd().expect("memfd");
    let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    // SAFETY: a fresh shared mapping of the test's memfd.
    let second = unsafe { rustix::mm::mmap(std::ptr::null_mut(), 4096, prot, rustix::mm::MapFlags::SHARED, fd, 0) }
        .expect("second mapping");
    let result = ContractWatch::at_prepare(&mapping.region());
    // SAFETY: unmapping what we mapped.
    unsafe { rustix::mm::munmap(second, 4096) }.expect("munmap");
    match result {
        Err(e @ ContractError::MappedElsewhere { .. }) => {
            assert!(e.to_string().contains(&format!("{:#x}", second as usize)), "{e}");
        }
        other => panic!("expected MappedElsewhere, got {:?}", other.map(|_| ()).map_err(|e| e.to_string())),
    }
    ContractWatch::at_prepare(&mapping.region()).expect("with the second mapping gone, prepare passes");
}

#[test]
fn a_second_mapping_made_during_the_snapshot_is_detected_at_finish() {
    let (mapping, watch) = memfd_watch();
    let fd = mapping.memfd().expect("memfd");
    let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    // SAFETY: a fresh shared mapping of the test's memfd.
    let second = unsafe { rustix::mm::mmap(std::ptr::null_mut(), 4096, prot, rustix::mm::MapFlags::SHARED, fd, 0) }
        .expect("second mapping");
    // SAFETY: the page is ours; this is the write that bypasses the region's protection.
    unsafe { std::ptr::write_volatile(second.cast::<u8>(), 0xCD) };
    let result = watch.at_finish();
    // SAFETY: unmapping what we mapped.
    unsafe { rustix::mm::munmap(second, 4096) }.expect("munmap");
    // The write faulted a page into the second mapping, which also stamps the file's mtime
    // (shmem updates it on a write fault through any mapping); either check catches it.
    assert!(
        matches!(result, Err(ContractError::MappedDuringSnapshot { .. } | ContractError::FileChanged { .. })),
        "{:?}",
        result.map_err(|e| e.to_string())
    );
}

#[test]
fn a_second_mapping_still_present_at_finish_is_detected_even_unwritten() {
    let (mapping, watch) = memfd_watch();
    let fd = mapping.memfd().expect("memfd");
    // SAFETY: a fresh read-only shared mapping of the test's memfd.
    let second = unsafe {
        rustix::mm::mmap(std::ptr::null_mut(), 4096, rustix::mm::ProtFlags::READ, rustix::mm::MapFlags::SHARED, fd, 0)
    }
    .expect("second mapping");
    let result = watch.at_finish();
    // SAFETY: unmapping what we mapped.
    unsafe { rustix::mm::munmap(second, 4096) }.expect("munmap");
    assert!(
        matches!(result, Err(ContractError::MappedDuringSnapshot { .. })),
        "{:?}",
        result.map_err(|e| e.to_string())
    );
}
