//! The skip rule of every test that needs userfaultfd, here once so the library's, the app's
//! and an embedding program's tests agree on it.

use super::WpUffd;

/// The environment variable that turns a skip into a failure (CI sets it to `1`).
pub const REQUIRE_UFFD_ENV: &str = "WPSNAP_REQUIRE_UFFD";

/// Whether userfaultfd write-protect works here, for a test named `test`. Where it does not,
/// the reason is printed and the caller skips, unless `WPSNAP_REQUIRE_UFFD=1`, which panics
/// (a CI machine that should have uffd must not pass by skipping).
pub fn uffd_or_skip(test: &str) -> bool {
    match WpUffd::open() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var(REQUIRE_UFFD_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: userfaultfd required ({REQUIRE_UFFD_ENV}=1) but unavailable: {e}");
            }
            eprintln!("SKIPPED {test}: userfaultfd unavailable: {e}");
            false
        }
    }
}
