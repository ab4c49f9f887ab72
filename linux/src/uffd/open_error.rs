//! Why a userfaultfd could not be had, with the fixes spelled out.

use thiserror::Error;

pub(super) const DEVICE_PATH: &str = "/dev/userfaultfd";

/// Every fix is tested to work (app/tests/uffd_permission.rs).
const FIXES: &str = "fixes: run as root or with CAP_SYS_PTRACE (needed to handle kernel-mode faults); \
or give your user read/write access to /dev/userfaultfd (e.g. `sudo setfacl -m u:$USER:rw /dev/userfaultfd`); \
or allow unprivileged use with `sudo sysctl vm.unprivileged_userfaultfd=1`; \
or take the snapshot with `--backend fork` instead";

/// userfaultfd is unavailable or not permitted; the message names the cause of each way that
/// was tried (the device, then the system call) and the fixes.
#[derive(Debug, Error)]
pub enum UffdOpenError {
    #[error(
        "userfaultfd not permitted ({DEVICE_PATH}: {device}; the userfaultfd(2) system call: {system_call}); {FIXES}"
    )]
    NotPermitted { device: std::io::Error, system_call: std::io::Error },
    #[error(
        "this kernel has no userfaultfd ({DEVICE_PATH}: {device}; the userfaultfd(2) system call: {system_call}); it needs CONFIG_USERFAULTFD (Linux 5.7+ for write-protect); take the snapshot with `--backend fork` instead"
    )]
    NotSupported { device: std::io::Error, system_call: std::io::Error },
    #[error("userfaultfd failed ({DEVICE_PATH}: {device}; the userfaultfd(2) system call: {system_call}); {FIXES}")]
    Other { device: std::io::Error, system_call: std::io::Error },
    #[error("UFFDIO_API failed: {source}")]
    Api { source: std::io::Error },
    #[error(
        "this kernel's userfaultfd has no write-protect support (features offered: {offered_bits:#x}); it needs Linux 5.7+ with CONFIG_HAVE_ARCH_USERFAULTFD_WP; use `--backend fork`"
    )]
    NoWriteProtect { offered_bits: u64 },
    #[error("the kernel does not offer the ioctls wpsnap needs on a userfaultfd (offered: {offered_bits:#x})")]
    MissingIoctls { offered_bits: u64 },
}

impl UffdOpenError {
    /// Both ways failed: classify by what the two answers say.
    pub(super) fn from_both(device: std::io::Error, system_call: std::io::Error) -> UffdOpenError {
        let refused = |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES));
        if refused(&device) || refused(&system_call) {
            UffdOpenError::NotPermitted { device, system_call }
        } else if system_call.raw_os_error() == Some(libc::ENOSYS) && device.kind() == std::io::ErrorKind::NotFound {
            UffdOpenError::NotSupported { device, system_call }
        } else {
            UffdOpenError::Other { device, system_call }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(code: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(code)
    }

    #[test]
    fn both_causes_are_named_and_classified() {
        let e = UffdOpenError::from_both(errno(libc::EACCES), errno(libc::EPERM));
        assert!(matches!(e, UffdOpenError::NotPermitted { .. }));
        let text = e.to_string();
        assert!(text.contains("/dev/userfaultfd: Permission denied"), "{text}");
        assert!(text.contains("system call: Operation not permitted"), "{text}");
        assert!(text.contains("--backend fork"), "{text}");
        let e = UffdOpenError::from_both(errno(libc::ENOENT), errno(libc::ENOSYS));
        assert!(matches!(e, UffdOpenError::NotSupported { .. }));
        let e = UffdOpenError::from_both(errno(libc::ENOENT), errno(libc::EMFILE));
        assert!(matches!(e, UffdOpenError::Other { .. }));
    }
}
