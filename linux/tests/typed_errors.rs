//! Errors keep their causes: a uffd failure names the errno by name and number, and a caller
//! can match on the number.

use std::error::Error as _;
use wpsnap_linux::uffd::{UffdError, WpUffd, uffd_or_skip};

#[test]
fn a_failed_register_names_the_errno_and_keeps_it_as_the_source() {
    if !uffd_or_skip("a_failed_register_names_the_errno_and_keeps_it_as_the_source") {
        return;
    }
    let uffd = WpUffd::open().expect("uffd");
    // A page-aligned range nothing is mapped at: the kernel refuses the registration.
    let err = uffd.register_wp(0x1000, 4096).expect_err("registering unmapped memory must fail");
    assert!(matches!(err, UffdError::Register { .. }), "{err}");
    let errno = err.errno().expect("an errno");
    assert!([libc::EINVAL, libc::ENOMEM, libc::EFAULT].contains(&errno.code()), "{err}");
    let text = err.to_string();
    let name = errno.name().expect("a known errno");
    assert!(text.contains(&format!("{name} (errno {})", errno.code())), "{text}");
    assert!(!text.contains("System error"), "{text}");
    // The cause chain reaches the errno itself.
    let mut cause = err.source();
    let mut depth = 0;
    while let Some(c) = cause {
        if c.downcast_ref::<wpsnap_linux::errno::Errno>().is_some() {
            return;
        }
        cause = c.source();
        depth += 1;
        assert!(depth < 8, "cause chain too deep");
    }
    panic!("no Errno in the cause chain of {text}");
}

/// An output that accepts `limit` bytes, then fails every write with the OS error `errno`.
struct FailsWith {
    limit: usize,
    written: usize,
    errno: i32,
}

impl std::io::Write for FailsWith {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written >= self.limit {
            return Err(std::io::Error::from_raw_os_error(self.errno));
        }
        let n = buf.len().min(self.limit - self.written);
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl wpsnap_linux::output::Output for FailsWith {
    fn commit(self: Box<Self>) -> Result<wpsnap_linux::output::OutputSummary, wpsnap_linux::output::OutputError> {
        Ok(wpsnap_linux::output::OutputSummary::default())
    }
    fn abort(self: Box<Self>) {}
}

#[test]
fn a_caller_tells_a_full_disk_from_a_broken_pipe() {
    if !uffd_or_skip("a_caller_tells_a_full_disk_from_a_broken_pipe") {
        return;
    }
    use wpsnap_linux::region::{Backing, OwnedMapping, PageFill};
    use wpsnap_linux::snapshot::{FormatSink, NoWriters, Snapshot, SnapshotConfig, SnapshotError};
    for errno in [libc::ENOSPC, libc::EPIPE] {
        let mut mapping = OwnedMapping::new(8 << 20, Backing::Anonymous).expect("mapping");
        mapping.fill(0, |_| PageFill::Pattern);
        let region = mapping.region();
        // More than the sink's 1 MiB buffer, so writes reach the output mid-snapshot.
        let output = Box::new(FailsWith { limit: 2 << 20, written: 0, errno });
        let (sink, _) = FormatSink::for_config(output, &region, &SnapshotConfig::default()).expect("sink");
        let result = Snapshot::prepare(region, SnapshotConfig::default(), Box::new(sink))
            .expect("prepare")
            .arm(|| NoWriters)
            .expect("arm")
            .finish();
        match result {
            Err(e @ SnapshotError::Sink(_)) => {
                assert_eq!(e.errno().map(|n| n.code()), Some(errno), "{e}");
            }
            other => panic!("expected a sink error, got {:?}", other.map(|_| ()).map_err(|e| e.to_string())),
        }
    }
}
