//! The max-wait iteration limit of `ram_save_iterate()`.

use crate::config::ITERATION_CHECK_PAGES;
use crate::time::Nanos;
use serde::{Deserialize, Serialize};

/// What the driver learns at the end of an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationSummary {
    /// 0 for the first iteration.
    pub index: u64,
    pub pages: u64,
    pub elapsed: Nanos,
}

/// Counts pages saved in the current iteration and ends it, as QEMU does, at the first
/// multiple of 64 pages reached after the iteration has run longer than its limit.
#[derive(Clone, Debug)]
pub struct IterationClock {
    wait_max: Nanos,
    index: u64,
    started: Nanos,
    pages: u64,
}

impl IterationClock {
    pub fn new(wait_max: Nanos, now: Nanos) -> IterationClock {
        IterationClock { wait_max, index: 0, started: now, pages: 0 }
    }

    pub fn wait_max(&self) -> Nanos {
        self.wait_max
    }

    /// Iterations ended so far.
    pub fn ended(&self) -> u64 {
        self.index
    }

    /// Adds saved pages; returns the summary if this ended the iteration.
    pub fn on_pages_saved(&mut self, now: Nanos, pages: u64) -> Option<IterationSummary> {
        let before = self.pages;
        self.pages += pages;
        let crossed_check = before / ITERATION_CHECK_PAGES != self.pages / ITERATION_CHECK_PAGES;
        let elapsed = now.saturating_since(self.started);
        if !crossed_check || elapsed <= self.wait_max {
            return None;
        }
        Some(self.end(now))
    }

    /// Ends the iteration now, whatever its length (QEMU's loop also ends an iteration when
    /// the bandwidth limit is exceeded).
    pub fn end(&mut self, now: Nanos) -> IterationSummary {
        let summary =
            IterationSummary { index: self.index, pages: self.pages, elapsed: now.saturating_since(self.started) };
        self.index += 1;
        self.started = now;
        self.pages = 0;
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_only_at_a_multiple_of_64_after_the_limit() {
        let mut clock = IterationClock::new(Nanos::from_ms(50), Nanos::ZERO);
        // 63 pages, long past the limit: not yet checked.
        for p in 1..64 {
            assert_eq!(clock.on_pages_saved(Nanos::from_ms(100 + p), 1), None);
        }
        let end = clock.on_pages_saved(Nanos::from_ms(200), 1).expect("64th page checks");
        assert_eq!(end.pages, 64);
        assert_eq!(end.index, 0);
        assert_eq!(clock.ended(), 1);
    }

    #[test]
    fn under_the_limit_the_iteration_goes_on() {
        let mut clock = IterationClock::new(Nanos::from_ms(50), Nanos::ZERO);
        for p in 1..=640 {
            assert_eq!(clock.on_pages_saved(Nanos::from_us(p * 10), 1), None);
        }
    }
}
