//! Getting a userfaultfd descriptor: `/dev/userfaultfd` first, then the userfaultfd(2)
//! system call, so whichever of the two this user is allowed wins.
//!
//! The two are permitted by different rules: the device by its file mode (no other check,
//! kernel-mode faults included), the system call by `vm.unprivileged_userfaultfd=1` or
//! `CAP_SYS_PTRACE` (wpsnap needs kernel-mode faults, so `UFFD_USER_MODE_ONLY` is never set).
//! The `userfaultfd` crate tries only the device when it exists; this module tries both and
//! says which worked ([`OpenedVia`]) or why both failed.

use super::UffdOpenError;
use super::open_error::DEVICE_PATH;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `USERFAULTFD_IOC_NEW` = `_IO(0xAA, 0x00)`, the device's only ioctl.
const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xaa00;

/// Which way to a userfaultfd worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenedVia {
    /// The `/dev/userfaultfd` device (allowed by its file mode).
    Device,
    /// The userfaultfd(2) system call (allowed by `vm.unprivileged_userfaultfd=1` or
    /// `CAP_SYS_PTRACE`).
    SystemCall,
}

impl std::fmt::Display for OpenedVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpenedVia::Device => DEVICE_PATH,
            OpenedVia::SystemCall => "the userfaultfd(2) system call",
        })
    }
}

/// Opens a non-blocking, close-on-exec userfaultfd that handles kernel-mode faults: through
/// the device, and if that is missing or refused, through the system call.
pub(super) fn open_uffd_fd() -> Result<(OwnedFd, OpenedVia), UffdOpenError> {
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    let device_error = match from_device(flags) {
        Ok(fd) => return Ok((fd, OpenedVia::Device)),
        Err(e) => e,
    };
    match from_system_call(flags) {
        Ok(fd) => Ok((fd, OpenedVia::SystemCall)),
        Err(call_error) => Err(UffdOpenError::from_both(device_error, call_error)),
    }
}

fn from_device(flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let device = std::fs::OpenOptions::new().read(true).write(true).open(DEVICE_PATH)?;
    // SAFETY: USERFAULTFD_IOC_NEW takes its flags as the integer argument and returns a new
    // descriptor or -1.
    let fd = unsafe { libc::ioctl(device.as_raw_fd(), USERFAULTFD_IOC_NEW, flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn from_system_call(flags: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: the userfaultfd system call takes one integer of flags.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the system call returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}
