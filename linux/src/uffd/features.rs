//! Which userfaultfd features the kernel offers, probed with one raw `UFFDIO_API` call.

use super::UffdOpenError;
use serde::{Deserialize, Serialize};
use userfaultfd::FeatureFlags;

/// `UFFD_FEATURE_WP_HUGETLBFS_SHMEM` (Linux 5.19): write-protect on shmem and hugetlbfs.
pub const FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
/// `UFFD_FEATURE_WP_UNPOPULATED` (Linux 6.4): protecting an unpopulated anonymous page
/// installs a marker, so never-touched pages are protected too.
pub const FEATURE_WP_UNPOPULATED: u64 = 1 << 13;

/// `UFFD_API`, the only API version there is.
const UFFD_API: u64 = 0xAA;
/// `UFFDIO_API` = `_IOWR(0xAA, 0x3F, struct uffdio_api)` with a 24-byte struct.
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;

/// Feature bits, with names for the ones wpsnap cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedFeatures {
    pub bits: u64,
}

impl GrantedFeatures {
    pub fn contains(&self, bits: u64) -> bool {
        self.bits & bits == bits
    }

    /// Names of the known bits that are set, for reports.
    pub fn names(&self) -> Vec<&'static str> {
        const NAMED: [(u64, &str); 8] = [
            (FeatureFlags::PAGEFAULT_FLAG_WP.bits(), "pagefault-flag-wp"),
            (FeatureFlags::EVENT_FORK.bits(), "event-fork"),
            (FeatureFlags::EVENT_REMAP.bits(), "event-remap"),
            (FeatureFlags::EVENT_REMOVE.bits(), "event-remove"),
            (FeatureFlags::EVENT_UNMAP.bits(), "event-unmap"),
            (FeatureFlags::THREAD_ID.bits(), "thread-id"),
            (FEATURE_WP_HUGETLBFS_SHMEM, "wp-hugetlbfs-shmem"),
            (FEATURE_WP_UNPOPULATED, "wp-unpopulated"),
        ];
        NAMED.iter().filter(|(bit, _)| self.contains(*bit)).map(|(_, name)| *name).collect()
    }
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// Asks the kernel which features a userfaultfd could have, on a throwaway descriptor
/// (`UFFDIO_API` may be called once per descriptor, and the crate does not return its answer).
pub fn probe_features() -> Result<GrantedFeatures, UffdOpenError> {
    let fd = open_raw()?;
    let mut api = UffdioApi { api: UFFD_API, features: 0, ioctls: 0 };
    // SAFETY: `fd` is a userfaultfd we own; UFFDIO_API reads and writes exactly one
    // `struct uffdio_api`, which `api` is (repr(C), three u64).
    let rc = unsafe { libc::ioctl(fd.0, UFFDIO_API, &mut api as *mut UffdioApi) };
    if rc != 0 {
        return Err(UffdOpenError::Api { source: std::io::Error::last_os_error() });
    }
    Ok(GrantedFeatures { bits: api.features })
}

/// A raw descriptor closed on drop.
struct RawFd(libc::c_int);

impl Drop for RawFd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

/// Opens a userfaultfd the way the crate does: through /dev/userfaultfd when it exists,
/// else the system call. Kernel-mode faults are handled (no UFFD_USER_MODE_ONLY).
fn open_raw() -> Result<RawFd, UffdOpenError> {
    const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xaa00; // _IO(0xAA, 0x00)
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    match std::fs::OpenOptions::new().read(true).write(true).open(super::open_error::DEVICE_PATH) {
        Ok(device) => {
            use std::os::fd::AsRawFd;
            // SAFETY: USERFAULTFD_IOC_NEW takes its flags as the integer argument and
            // returns a new descriptor or -1.
            let fd = unsafe { libc::ioctl(device.as_raw_fd(), USERFAULTFD_IOC_NEW, flags) };
            if fd < 0 {
                return Err(UffdOpenError::from_errno(std::io::Error::last_os_error(), true));
            }
            Ok(RawFd(fd))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // SAFETY: the userfaultfd system call takes one integer of flags.
            let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
            if fd < 0 {
                return Err(UffdOpenError::from_errno(std::io::Error::last_os_error(), false));
            }
            Ok(RawFd(fd as libc::c_int))
        }
        Err(e) => Err(UffdOpenError::Device { source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_follow_the_bits() {
        let f = GrantedFeatures { bits: FEATURE_WP_UNPOPULATED | FeatureFlags::EVENT_REMOVE.bits() };
        assert_eq!(f.names(), vec!["event-remove", "wp-unpopulated"]);
        assert!(f.contains(FEATURE_WP_UNPOPULATED));
        assert!(!f.contains(FEATURE_WP_HUGETLBFS_SHMEM));
    }
}
