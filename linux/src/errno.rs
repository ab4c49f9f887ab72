//! An operating-system error number that names itself: "EAGAIN (errno 11): Resource
//! temporarily unavailable". Callers match on [`Errno::code`] (e.g. `libc::ENOSPC`); people
//! read the name, the number and the description.

use std::fmt;

/// An errno value from a system call or ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno {
    code: i32,
}

/// The names of the errno values system calls here can return (x86-64 and aarch64 share them).
const NAMES: [(i32, &str); 40] = [
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EBADF, "EBADF"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::EXDEV, "EXDEV"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::EFBIG, "EFBIG"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::ESPIPE, "ESPIPE"),
    (libc::EROFS, "EROFS"),
    (libc::EPIPE, "EPIPE"),
    (libc::ERANGE, "ERANGE"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::ENOTSUP, "EOPNOTSUPP"),
    (libc::ENOTCONN, "ENOTCONN"),
    (libc::ECONNRESET, "ECONNRESET"),
    (libc::ECONNREFUSED, "ECONNREFUSED"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::EHOSTUNREACH, "EHOSTUNREACH"),
    (libc::ENETUNREACH, "ENETUNREACH"),
    (libc::EDQUOT, "EDQUOT"),
    (libc::ESTALE, "ESTALE"),
    (libc::ECANCELED, "ECANCELED"),
    (libc::EHWPOISON, "EHWPOISON"),
];

impl Errno {
    /// The error number `code` (a positive errno value).
    pub fn from_code(code: i32) -> Errno {
        Errno { code }
    }

    /// The errno of an `io::Error` that came from the operating system.
    pub fn of_io(e: &std::io::Error) -> Option<Errno> {
        e.raw_os_error().map(Errno::from_code)
    }

    /// The number, for matching (`libc::ENOSPC`, `libc::EPIPE`, ...).
    pub fn code(self) -> i32 {
        self.code
    }

    /// The symbolic name ("EAGAIN"), or `None` for a number this table does not know.
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(code, _)| *code == self.code).map(|(_, name)| *name)
    }

    /// The C library's description ("Resource temporarily unavailable").
    pub fn description(self) -> String {
        let text = std::io::Error::from_raw_os_error(self.code).to_string();
        // std appends " (os error N)"; the number is printed by Display already.
        match text.rfind(" (os error ") {
            Some(cut) => text[..cut].to_string(),
            None => text,
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (errno {}): {}", self.code, self.description()),
            None => write!(f, "errno {}: {}", self.code, self.description()),
        }
    }
}

impl std::error::Error for Errno {}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        Errno::from_code(e.raw_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_number_and_description() {
        let e = Errno::from_code(libc::EAGAIN);
        assert_eq!(e.name(), Some("EAGAIN"));
        let text = e.to_string();
        assert!(text.starts_with("EAGAIN (errno 11): "), "{text}");
        assert!(!text.contains("os error"), "{text}");
        assert_eq!(Errno::from_code(libc::ENOSPC).name(), Some("ENOSPC"));
        assert_eq!(Errno::from_code(9999).name(), None);
        assert!(Errno::from_code(9999).to_string().starts_with("errno 9999"));
        let io = std::io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(Errno::of_io(&io).map(Errno::code), Some(libc::EPIPE));
    }
}
