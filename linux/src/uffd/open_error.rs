//! Why a userfaultfd could not be had, with the fixes spelled out.

use thiserror::Error;

pub(super) const DEVICE_PATH: &str = "/dev/userfaultfd";

const FIXES: &str = "fixes: run as root or with CAP_SYS_PTRACE (needed to handle kernel-mode faults); \
or give your user read/write access to /dev/userfaultfd (e.g. `sudo setfacl -m u:$USER:rw /dev/userfaultfd`); \
or allow unprivileged use with `sudo sysctl vm.unprivileged_userfaultfd=1`; \
or take the snapshot with `--backend fork` instead";

/// userfaultfd is unavailable or not permitted; the message names the cause and the fixes.
#[derive(Debug, Error)]
pub enum UffdOpenError {
    #[error("cannot open {DEVICE_PATH}: {source}; {FIXES}")]
    Device { source: std::io::Error },
    #[error("userfaultfd not permitted ({source}); {FIXES}")]
    NotPermitted { source: std::io::Error },
    #[error(
        "this kernel has no userfaultfd ({source}); it needs CONFIG_USERFAULTFD (Linux 5.7+ for write-protect); take the snapshot with `--backend fork` instead"
    )]
    NotSupported { source: std::io::Error },
    #[error("userfaultfd failed: {source}; {FIXES}")]
    Other { source: std::io::Error },
    #[error("UFFDIO_API failed: {source}")]
    Api { source: std::io::Error },
    #[error(
        "this kernel's userfaultfd has no write-protect support (features offered: {offered_bits:#x}); it needs Linux 5.7+ with CONFIG_HAVE_ARCH_USERFAULTFD_WP; use `--backend fork`"
    )]
    NoWriteProtect { offered_bits: u64 },
    #[error("creating the userfaultfd: {source}; {FIXES}")]
    Create { source: userfaultfd::Error },
}

impl UffdOpenError {
    pub(super) fn from_errno(e: std::io::Error, _device: bool) -> UffdOpenError {
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => UffdOpenError::NotPermitted { source: e },
            Some(libc::ENOSYS) => UffdOpenError::NotSupported { source: e },
            _ => UffdOpenError::Other { source: e },
        }
    }

    pub(super) fn from_create(source: userfaultfd::Error) -> UffdOpenError {
        UffdOpenError::Create { source }
    }
}
