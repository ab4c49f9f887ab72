//! One simulated writer thread (a vCPU).

use rand_chacha::ChaCha8Rng;
use wpsnap_core::Nanos;
use wpsnap_workload::{PageSampler, WriteTiming};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// Blocked on a write-protected page since then; `woken` once its resume is scheduled.
    Blocked {
        since: Nanos,
        woken: bool,
    },
}

#[derive(Debug)]
pub struct Writer {
    sampler: PageSampler,
    rng: ChaCha8Rng,
    page: u64,
    /// The next write's page, drawn ahead (see `draw_ahead`).
    upcoming: Option<u64>,
    state: State,
    writes_in_window: u64,
    blocked_ns_total: u64,
}

impl Writer {
    pub fn new(sampler: PageSampler, rng: ChaCha8Rng) -> Writer {
        Writer {
            sampler,
            rng,
            page: 0,
            upcoming: None,
            state: State::Running,
            writes_in_window: 0,
            blocked_ns_total: 0,
        }
    }

    /// Picks the page of the next write (the one drawn ahead, if any).
    pub fn choose_page(&mut self) -> u64 {
        self.page = match self.upcoming.take() {
            Some(page) => page,
            None => self.sampler.next_page(&mut self.rng),
        };
        self.page
    }

    /// Draws the next write's page now, right after the gap before it, so the driver can
    /// warm that page's state while other events run. The draws come in the same order
    /// (gap, page, gap, page) from the same generator, so the run does not change.
    pub fn draw_ahead(&mut self) -> u64 {
        let page = self.sampler.next_page(&mut self.rng);
        self.upcoming = Some(page);
        page
    }

    /// The page of the write in progress.
    pub fn pending_page(&self) -> u64 {
        self.page
    }

    pub fn next_gap(&mut self, timing: &WriteTiming, now: Nanos) -> Nanos {
        Nanos(timing.next_gap_ns(now.as_ns(), &mut self.rng))
    }

    pub fn block(&mut self, page: u64, now: Nanos) {
        debug_assert_eq!(page, self.page);
        self.state = State::Blocked { since: now, woken: false };
    }

    pub fn is_blocked_unwoken(&self) -> bool {
        matches!(self.state, State::Blocked { woken: false, .. })
    }

    pub fn mark_woken(&mut self) {
        if let State::Blocked { since, .. } = self.state {
            self.state = State::Blocked { since, woken: true };
        }
    }

    /// Runs again; returns how long it waited.
    pub fn unblock(&mut self, now: Nanos) -> Nanos {
        let wait = match self.state {
            State::Blocked { since, .. } => now.saturating_since(since),
            State::Running => Nanos::ZERO,
        };
        self.blocked_ns_total += wait.as_ns();
        self.state = State::Running;
        wait
    }

    pub fn wrote(&mut self, in_window: bool) {
        self.writes_in_window += in_window as u64;
    }

    pub fn writes_in_window(&self) -> u64 {
        self.writes_in_window
    }

    pub fn blocked_ns_total(&self) -> u64 {
        self.blocked_ns_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use wpsnap_workload::Pattern;

    /// The loop used to draw a write's page when the write came; it now draws it right after
    /// the gap before it. Both orders must give the same gaps and pages, for every pattern.
    #[test]
    fn drawing_the_page_ahead_gives_the_same_writes() {
        const WRITES: u32 = 2_000;
        let patterns = ["uniform", "zipf:0.99", "hot-set:90/10", "sequential", "video"];
        for text in patterns {
            let pattern: Pattern = text.parse().expect("a valid pattern");
            let timing = WriteTiming::for_pattern(&pattern, 20_000.0).expect("a valid rate");
            let writer = || {
                let sampler = PageSampler::new(&pattern, 1 << 20, 0).expect("a valid sampler");
                Writer::new(sampler, ChaCha8Rng::seed_from_u64(9))
            };
            let (mut on_write, mut ahead) = (writer(), writer());
            let mut now = on_write.next_gap(&timing, Nanos::ZERO);
            assert_eq!(ahead.next_gap(&timing, Nanos::ZERO), now);
            ahead.draw_ahead();
            for _ in 0..WRITES {
                assert_eq!(ahead.choose_page(), on_write.choose_page(), "{text}");
                let gap = on_write.next_gap(&timing, now);
                assert_eq!(ahead.next_gap(&timing, now), gap, "{text}");
                ahead.draw_ahead();
                now = now + gap;
            }
        }
    }
}
