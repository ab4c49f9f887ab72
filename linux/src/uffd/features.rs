//! Which userfaultfd features the kernel offers, probed with one raw `UFFDIO_API` call.

use super::UffdOpenError;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
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
    let (fd, _) = super::open::open_uffd_fd()?;
    Ok(GrantedFeatures { bits: uffdio_api(&fd, 0)?.features })
}

/// What `UFFDIO_API` answered: the features granted (or offered, for a request of 0) and the
/// ioctls available on the descriptor.
pub(super) struct ApiAnswer {
    pub features: u64,
    pub ioctls: u64,
}

/// The one `UFFDIO_API` call a userfaultfd takes, requesting `features`.
pub(super) fn uffdio_api(fd: &OwnedFd, features: u64) -> Result<ApiAnswer, UffdOpenError> {
    let mut api = UffdioApi { api: UFFD_API, features, ioctls: 0 };
    // SAFETY: `fd` is a userfaultfd we own; UFFDIO_API reads and writes exactly one
    // `struct uffdio_api`, which `api` is (repr(C), three u64).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api as *mut UffdioApi) };
    if rc != 0 {
        return Err(UffdOpenError::Api { source: std::io::Error::last_os_error() });
    }
    Ok(ApiAnswer { features: api.features, ioctls: api.ioctls })
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
