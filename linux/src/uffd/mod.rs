//! The userfaultfd in write-protect mode: open it, learn which features the kernel granted,
//! register a region, protect and unprotect ranges, read events as plain values, wake.
//!
//! Everything here is a thin, checked layer over the `userfaultfd` crate plus one raw
//! `UFFDIO_API` probe (the crate does not report which features the kernel granted). Events
//! are turned into [`UffdEvent`]s holding addresses as integers, so they can cross threads.

mod features;
mod open;
mod open_error;
mod skip;

pub use crate::errno::Errno;
pub use features::{FEATURE_WP_HUGETLBFS_SHMEM, FEATURE_WP_UNPOPULATED, GrantedFeatures, probe_features};
pub use open::OpenedVia;
pub use open_error::UffdOpenError;
pub use skip::{REQUIRE_UFFD_ENV, uffd_or_skip};

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd};
use thiserror::Error;
use userfaultfd::{Event, EventBuffer, FaultKind, FeatureFlags, IoctlFlags, RegisterMode, Uffd};

/// Events one `read(2)` of the userfaultfd may return at most.
pub const EVENTS_PER_READ_MAX: usize = 64;

/// How pages that were never touched get protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnpopulatedMethod {
    /// The kernel's `UFFD_FEATURE_WP_UNPOPULATED`: write-protecting an unpopulated page installs
    /// a marker, so its first write faults like any other.
    KernelWpUnpopulated,
    /// Without that feature, a never-touched page has no page-table entry to protect, and its
    /// first write would slip through unseen. Each page is read once before protecting, which
    /// maps the shared zero page (anonymous) or the file's page (shmem, hugetlbfs).
    TouchByReading,
}

/// A userfaultfd event, as plain values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UffdEvent {
    /// A write to a write-protected page at `addr`.
    WriteProtectFault { addr: usize },
    /// A fault on a missing page (not expected: the region is registered in WP mode only).
    OtherFault { addr: usize },
    /// `madvise(MADV_DONTNEED/MADV_REMOVE)` dropped `[start, end)`.
    Remove { start: usize, end: usize },
    /// `[start, end)` was unmapped.
    Unmap { start: usize, end: usize },
    /// `len` bytes were moved from `from` to `to` by `mremap`.
    Remap { from: usize, to: usize, len: usize },
}

/// What the kernel said when a userfaultfd operation failed: an errno (named and numbered),
/// or one of the `userfaultfd` crate's own conditions (a short or unknown message).
#[derive(Debug, Error)]
pub enum UffdCause {
    /// The ioctl or read failed with this errno.
    #[error("{0}")]
    Errno(#[source] Errno),
    /// Not an errno: what the `userfaultfd` crate reported.
    #[error("{0}")]
    Other(#[source] userfaultfd::Error),
}

impl UffdCause {
    /// The errno, if the failure was one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            UffdCause::Errno(e) => Some(*e),
            UffdCause::Other(_) => None,
        }
    }
}

impl From<userfaultfd::Error> for UffdCause {
    fn from(e: userfaultfd::Error) -> UffdCause {
        match e {
            userfaultfd::Error::SystemError(n)
            | userfaultfd::Error::CopyFailed(n)
            | userfaultfd::Error::ZeropageFailed(n) => UffdCause::Errno(Errno::from_code(n as i32)),
            userfaultfd::Error::OpenDevUserfaultfd(io) if io.raw_os_error().is_some() => {
                UffdCause::Errno(Errno::of_io(&io).unwrap_or(Errno::from_code(libc::EIO)))
            }
            other => UffdCause::Other(other),
        }
    }
}

/// A failed userfaultfd operation, naming it, the range and the kernel's answer
/// ("UFFDIO_WRITEPROTECT (unprotect) of 4096 bytes at 0x7f..: EAGAIN (errno 11): ...").
#[derive(Debug, Error)]
pub enum UffdError {
    #[error(transparent)]
    Open(#[from] UffdOpenError),
    #[error("UFFDIO_REGISTER (write-protect mode) of {len} bytes at {start:#x}: {source}")]
    Register {
        start: usize,
        len: usize,
        #[source]
        source: UffdCause,
    },
    #[error("the kernel does not offer UFFDIO_WRITEPROTECT on this region (backing not supported for write-protect)")]
    NoWriteProtectIoctl,
    #[error("UFFDIO_UNREGISTER of {len} bytes at {start:#x}: {source}")]
    Unregister {
        start: usize,
        len: usize,
        #[source]
        source: UffdCause,
    },
    #[error("UFFDIO_WRITEPROTECT (protect) of {len} bytes at {start:#x}: {source}")]
    Protect {
        start: usize,
        len: usize,
        #[source]
        source: UffdCause,
    },
    #[error("UFFDIO_WRITEPROTECT (unprotect) of {len} bytes at {start:#x}: {source}")]
    Unprotect {
        start: usize,
        len: usize,
        #[source]
        source: UffdCause,
    },
    #[error("UFFDIO_WAKE of {len} bytes at {start:#x}: {source}")]
    Wake {
        start: usize,
        len: usize,
        #[source]
        source: UffdCause,
    },
    #[error("reading userfaultfd events: {source}")]
    Read {
        #[source]
        source: UffdCause,
    },
}

impl UffdError {
    /// The errno the kernel returned, if this failure was one (None for open errors, which
    /// carry their own `io::Error`, and for the crate's non-errno conditions).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            UffdError::Register { source, .. }
            | UffdError::Unregister { source, .. }
            | UffdError::Protect { source, .. }
            | UffdError::Unprotect { source, .. }
            | UffdError::Wake { source, .. }
            | UffdError::Read { source } => source.errno(),
            UffdError::Open(_) | UffdError::NoWriteProtectIoctl => None,
        }
    }

    /// EAGAIN from a protect/unprotect: the kernel refuses while a remove, unmap or remap
    /// event on the registered range is waiting to be read (`mmap_changing`).
    pub fn is_mm_changing(&self) -> bool {
        match self {
            UffdError::Protect { source, .. }
            | UffdError::Unprotect { source, .. }
            | UffdError::Wake { source, .. } => source.errno().is_some_and(|e| e.code() == libc::EAGAIN),
            _ => false,
        }
    }
}

/// A userfaultfd opened for write-protect snapshots: non-blocking, handling kernel-mode faults
/// too (`read(2)` into a protected page faults instead of failing with EFAULT), subscribed to
/// the remove, unmap and remap events the kernel granted.
#[derive(Debug)]
pub struct WpUffd {
    uffd: Uffd,
    features: GrantedFeatures,
    opened_via: OpenedVia,
}

impl WpUffd {
    /// Opens and initialises the userfaultfd, requesting every feature wpsnap uses that the
    /// kernel offers.
    pub fn open() -> Result<WpUffd, UffdError> {
        let offered = probe_features()?;
        let wanted = FeatureFlags::PAGEFAULT_FLAG_WP
            | FeatureFlags::EVENT_REMOVE
            | FeatureFlags::EVENT_UNMAP
            | FeatureFlags::EVENT_REMAP
            | FeatureFlags::from_bits_retain(FEATURE_WP_UNPOPULATED | FEATURE_WP_HUGETLBFS_SHMEM);
        if !offered.contains(FeatureFlags::PAGEFAULT_FLAG_WP.bits()) {
            return Err(UffdOpenError::NoWriteProtect { offered_bits: offered.bits }.into());
        }
        let request = FeatureFlags::from_bits_retain(wanted.bits() & offered.bits);
        // The device, else the system call (the crate would not fall back when the device
        // exists but is refused); then the one UFFDIO_API with the features we want.
        let (fd, opened_via) = open::open_uffd_fd()?;
        let answer = features::uffdio_api(&fd, request.bits())?;
        let needed = IoctlFlags::API | IoctlFlags::REGISTER | IoctlFlags::UNREGISTER;
        if !IoctlFlags::from_bits_retain(answer.ioctls).contains(needed) {
            return Err(UffdOpenError::MissingIoctls { offered_bits: answer.ioctls }.into());
        }
        // SAFETY: `fd` is an initialised userfaultfd we own; `Uffd` takes over closing it.
        let uffd = unsafe { Uffd::from_raw_fd(fd.into_raw_fd()) };
        Ok(WpUffd { uffd, features: GrantedFeatures { bits: request.bits() }, opened_via })
    }

    /// Which way the descriptor was obtained (the device or the system call).
    pub fn opened_via(&self) -> OpenedVia {
        self.opened_via
    }

    /// The features this userfaultfd was granted.
    pub fn features(&self) -> GrantedFeatures {
        self.features
    }

    /// How never-touched pages will be protected with these features on this backing.
    ///
    /// For anonymous memory that takes `WP_UNPOPULATED`. For shmem and hugetlbfs the kernel
    /// installs its markers on empty entries whenever it supports write-protect there at all
    /// (`WP_HUGETLBFS_SHMEM`, Linux 5.19).
    pub fn unpopulated_method(&self, file_backed: bool) -> UnpopulatedMethod {
        let needed = if file_backed { FEATURE_WP_HUGETLBFS_SHMEM } else { FEATURE_WP_UNPOPULATED };
        if self.features.contains(needed) {
            UnpopulatedMethod::KernelWpUnpopulated
        } else {
            UnpopulatedMethod::TouchByReading
        }
    }

    /// Registers `[start, start + len)` in write-protect mode.
    pub fn register_wp(&self, start: usize, len: usize) -> Result<(), UffdError> {
        let ioctls = self
            .uffd
            .register_with_mode(start as *mut libc::c_void, len, RegisterMode::WRITE_PROTECT)
            .map_err(|e| UffdError::Register { start, len, source: e.into() })?;
        if !ioctls.contains(userfaultfd::IoctlFlags::WRITE_PROTECT) {
            let _ = self.uffd.unregister(start as *mut libc::c_void, len);
            return Err(UffdError::NoWriteProtectIoctl);
        }
        Ok(())
    }

    /// Unregisters `[start, start + len)`.
    pub fn unregister(&self, start: usize, len: usize) -> Result<(), UffdError> {
        self.uffd.unregister(start as *mut libc::c_void, len).map_err(|e| UffdError::Unregister {
            start,
            len,
            source: e.into(),
        })
    }

    /// Write-protects `[start, start + len)`.
    pub fn protect(&self, start: usize, len: usize) -> Result<(), UffdError> {
        self.uffd.write_protect(start as *mut libc::c_void, len).map_err(|e| UffdError::Protect {
            start,
            len,
            source: e.into(),
        })
    }

    /// Removes write protection from `[start, start + len)` and wakes writers blocked there.
    pub fn unprotect(&self, start: usize, len: usize) -> Result<(), UffdError> {
        self.uffd.remove_write_protection(start as *mut libc::c_void, len, true).map_err(|e| UffdError::Unprotect {
            start,
            len,
            source: e.into(),
        })
    }

    /// Wakes writers blocked on `[start, start + len)` (a fault that raced an unprotect).
    pub fn wake(&self, start: usize, len: usize) -> Result<(), UffdError> {
        self.uffd.wake(start as *mut libc::c_void, len).map_err(|e| UffdError::Wake { start, len, source: e.into() })
    }

    /// Reads the events ready now (non-blocking) into `out`; returns how many were added.
    pub fn read_events(&self, buf: &mut EventBuffer, out: &mut Vec<UffdEvent>) -> Result<usize, UffdError> {
        let before = out.len();
        let events = self.uffd.read_events(buf).map_err(|e| UffdError::Read { source: e.into() })?;
        for event in events {
            let event = event.map_err(|e| UffdError::Read { source: e.into() })?;
            out.push(match event {
                Event::Pagefault { kind: FaultKind::WriteProtected, addr, .. } => {
                    UffdEvent::WriteProtectFault { addr: addr as usize }
                }
                Event::Pagefault { addr, .. } => UffdEvent::OtherFault { addr: addr as usize },
                Event::Remove { start, end } => UffdEvent::Remove { start: start as usize, end: end as usize },
                Event::Unmap { start, end } => UffdEvent::Unmap { start: start as usize, end: end as usize },
                Event::Remap { from, to, len } => UffdEvent::Remap { from: from as usize, to: to as usize, len },
                // Not subscribed to fork events; a child's uffd is closed when dropped here.
                Event::Fork { .. } => continue,
            });
        }
        Ok(out.len() - before)
    }

    /// A buffer for [`read_events`](WpUffd::read_events).
    pub fn event_buffer() -> EventBuffer {
        EventBuffer::new(EVENTS_PER_READ_MAX)
    }
}

impl AsFd for WpUffd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.uffd.as_fd()
    }
}
