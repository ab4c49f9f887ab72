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
