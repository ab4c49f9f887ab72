//! Floors for `wpsnap bench` (issue 7): the costs a snapshot cannot go below on this machine,
//! measured with the bare mechanisms and nothing of wpsnap around them.
//!
//! What it measures:
//! - [`measure_uffd_round_trip`]: a bare userfaultfd write-protect round trip. One handler
//!   thread reads a fault, copies the 4 KiB page into a buffer and unprotects it (waking the
//!   writer); the writer times its first write to each protected page. This is the floor of
//!   wpsnap's fault wait. [`measure_uffd_round_trip_with`] with [`HandlerWait::BusyPolling`]
//!   gives the steadier floor: the handler spins on the non-blocking uffd instead of sleeping
//!   in poll(2), so no scheduler wake-up sits between the fault and the handler.
//! - [`measure_unprotect`]: removing write protection from a whole protected region with one
//!   ioctl (the floor of the protection window's unprotect work).
//! - [`measure_write_protect`]: registering a populated region and write-protecting it whole
//!   with one ioctl: the floor of wpsnap's start pause.
//! - [`measure_fork_cow`]: the `fork()` call's duration with a populated region, and the
//!   parent's first write to each page afterwards (a copy-on-write fault): the fork backend's
//!   pause and per-page cost; [`measure_fork_pause`] times only the `fork()` call (for large
//!   regions, where copying every page afterwards would take long).
//!
//! What it does not do: no engine, no file, no policy; no statistics beyond the raw
//! latencies; it asserts no speed. It uses the `userfaultfd` crate directly and keeps its own
//! minimal mapping helper on purpose, separate from the snapshot backend's `uffd` and `region`
//! modules, so a floor cannot inherit a cost (or a bug) from the thing it is a floor for; the
//! two could share the mapping code later.

mod fork_cow;
mod mapping;
mod uffd_round_trip;

pub use fork_cow::{ForkCow, measure_fork_cow, measure_fork_pause};
pub use mapping::BASELINE_PAGE_SIZE;
pub use uffd_round_trip::{
    HandlerWait, UffdRoundTrip, WriteProtectTiming, measure_uffd_round_trip, measure_uffd_round_trip_with,
    measure_unprotect, measure_write_protect,
};

use serde::{Deserialize, Serialize};

/// Largest region a baseline maps (16 GiB): a bound, not a recommendation.
pub const BASELINE_BYTES_MAX: usize = 16 << 30;

/// The region a baseline maps for itself (private anonymous memory, populated before timing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineRegion {
    /// Bytes; rounded down to whole 4 KiB pages, at least one page, at most
    /// [`BASELINE_BYTES_MAX`].
    pub bytes: usize,
    /// Ask for transparent huge pages (`MADV_HUGEPAGE`); the kernel may still use 4 KiB pages.
    pub transparent_huge_pages: bool,
}

/// Why a baseline could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("region of {bytes} bytes is outside 4096..={BASELINE_BYTES_MAX}")]
    RegionSize { bytes: usize },
    #[error("{what}: {source}")]
    Os { what: &'static str, source: std::io::Error },
    #[error(
        "userfaultfd unavailable ({detail}); run as root, give read-write access to /dev/userfaultfd, or set the sysctl vm.unprivileged_userfaultfd=1"
    )]
    UffdUnavailable { detail: String },
    #[error("userfaultfd {what}: {detail}")]
    Uffd { what: &'static str, detail: String },
    #[error("the fault handler thread failed: {0}")]
    Handler(String),
}

/// Renders an error with its sources ("System error: EPERM: ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: BaselineRegion = BaselineRegion { bytes: 256 * BASELINE_PAGE_SIZE, transparent_huge_pages: false };

    /// Skips (with the reason) where userfaultfd is not permitted, unless the environment
    /// requires it (`WPSNAP_REQUIRE_UFFD=1`, set by CI, which runs as root).
    fn uffd_or_skip<T>(result: Result<T, BaselineError>) -> Option<T> {
        match result {
            Err(BaselineError::UffdUnavailable { detail })
                if std::env::var("WPSNAP_REQUIRE_UFFD").as_deref() != Ok("1") =>
            {
                eprintln!("skipped: userfaultfd unavailable: {detail}");
                None
            }
            Err(e) => panic!("baseline failed: {e}"),
            Ok(v) => Some(v),
        }
    }

    #[test]
    fn uffd_round_trip_serves_one_fault_per_page() {
        let Some(trip) = uffd_or_skip(measure_uffd_round_trip(&REGION)) else { return };
        assert_eq!(trip.write_protect.pages, 256);
        assert_eq!(trip.first_write_wait.count(), 256);
        // Every page was protected, so every first write faulted and was served once.
        assert_eq!(trip.faults_handled, 256);
        assert!(trip.first_write_wait.quantile(0.5).as_ns() > 0);
    }

    #[test]
    fn busy_polling_round_trip_serves_one_fault_per_page() {
        let Some(trip) = uffd_or_skip(measure_uffd_round_trip_with(&REGION, HandlerWait::BusyPolling)) else {
            return;
        };
        assert_eq!(trip.first_write_wait.count(), 256);
        assert_eq!(trip.faults_handled, 256);
    }

    #[test]
    fn unprotect_timing_is_measured() {
        let Some(ns) = uffd_or_skip(measure_unprotect(&REGION)) else { return };
        assert!(ns > 0);
    }

    #[test]
    fn write_protect_timing_covers_the_region() {
        let Some(t) = uffd_or_skip(measure_write_protect(&REGION)) else { return };
        assert_eq!(t.bytes, 256 * BASELINE_PAGE_SIZE as u64);
        assert!(t.write_protect_ns > 0);
    }

    #[test]
    fn fork_cow_times_every_page_and_the_fork() {
        let cow = measure_fork_cow(&REGION).expect("fork baseline");
        assert_eq!(cow.first_write_wait.count(), 256);
        assert!(cow.fork_pause_ns > 0);
    }

    #[test]
    fn fork_pause_alone_is_measured() {
        assert!(measure_fork_pause(&REGION).expect("fork pause") > 0);
    }

    #[test]
    fn region_size_is_bounded() {
        let tiny = BaselineRegion { bytes: 100, transparent_huge_pages: false };
        assert!(matches!(measure_fork_cow(&tiny), Err(BaselineError::RegionSize { bytes: 100 })));
    }

    /// Prints the floors for a 256 MiB region (4 KiB pages and THP). Not a check: run by hand
    /// with `cargo test -p wpsnap --release --lib print_floors -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, prints numbers"]
    fn print_floors() {
        for thp in [false, true] {
            let region = BaselineRegion { bytes: 256 << 20, transparent_huge_pages: thp };
            let show = |name: &str, r: &wpsnap_core::LatencyRecorder| {
                let s = r.summary();
                println!(
                    "thp={thp} {name}: n={} p50={} p99={} p999={} max={}",
                    s.count,
                    wpsnap_plot::format_ns(s.p50_ns),
                    wpsnap_plot::format_ns(s.p99_ns),
                    wpsnap_plot::format_ns(s.p999_ns),
                    wpsnap_plot::format_ns(s.max_ns)
                );
            };
            if let Some(t) = uffd_or_skip(measure_write_protect(&region)) {
                println!(
                    "thp={thp} register {} write-protect {}",
                    wpsnap_plot::format_ns(t.register_ns),
                    wpsnap_plot::format_ns(t.write_protect_ns)
                );
            }
            if let Some(trip) = uffd_or_skip(measure_uffd_round_trip(&region)) {
                show("uffd round trip", &trip.first_write_wait);
            }
            if let Ok(cow) = measure_fork_cow(&region) {
                println!("thp={thp} fork pause {}", wpsnap_plot::format_ns(cow.fork_pause_ns));
                show("fork COW first write", &cow.first_write_wait);
            }
        }
    }
}
