//! One simulated writer thread (a vCPU).

use rand::RngExt;
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
    /// Draws the wake-up latencies: its own stream, so a wake-latency table does not shift
    /// the pages and think times drawn from `rng`.
    wake_rng: ChaCha8Rng,
    /// The open-loop schedule: when the next write is due.
    due: Nanos,
    page: u64,
    /// The next write's page, drawn ahead (see `draw_ahead`).
    upcoming: Option<u64>,
    state: State,
    writes_in_window: u64,
    blocked_ns_total: u64,
}

impl Writer {
    pub fn new(sampler: PageSampler, rng: ChaCha8Rng, wake_rng: ChaCha8Rng) -> Writer {
        Writer {
            sampler,
            rng,
            wake_rng,
            due: Nanos::ZERO,
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

    /// When the next write happens, after a write that ended `now`. Open loop: the next due
    /// time of the Poisson schedule, but no sooner than one store from now (a writer behind
    /// its schedule catches up back to back, as the real one). Closed loop: a think time
    /// from now.
    pub fn next_write_at(&mut self, timing: &WriteTiming, now: Nanos, open_loop: bool, store_ns: u64) -> Nanos {
        if open_loop {
            self.due = self.due + Nanos(timing.next_gap_ns(self.due.as_ns(), &mut self.rng));
            self.due.max(now + Nanos(store_ns))
        } else {
            now + Nanos(timing.next_gap_ns(now.as_ns(), &mut self.rng).max(store_ns))
        }
    }

    /// One wake-up latency drawn from `table` (`[cumulative probability, ns]`, validated),
    /// linear between its points.
    pub fn wake_latency(&mut self, table: &[[f64; 2]]) -> Nanos {
        let u: f64 = self.wake_rng.random();
        let upper = table.partition_point(|p| p[0] <= u).clamp(1, table.len() - 1);
        let ([p0, ns0], [p1, ns1]) = (table[upper - 1], table[upper]);
        let share = if p1 > p0 { (u - p0) / (p1 - p0) } else { 0.0 };
        Nanos((ns0 + share * (ns1 - ns0)) as u64)
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

    fn writer() -> Writer {
        let sampler = PageSampler::new(&Pattern::Uniform, 1024, 0).expect("valid pattern");
        Writer::new(sampler, ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(2))
    }

    #[test]
    fn wake_latencies_follow_the_table() {
        // Half the wake-ups take 1-2 us, the other half 10-20 ms.
        let table = [[0.0, 1_000.0], [0.5, 2_000.0], [0.5, 10_000_000.0], [1.0, 20_000_000.0]];
        let mut w = writer();
        let draws: Vec<u64> = (0..10_000).map(|_| w.wake_latency(&table).as_ns()).collect();
        assert!(draws.iter().all(|&ns| (1_000..=20_000_000).contains(&ns)));
        assert!(draws.iter().all(|&ns| ns <= 2_000 || ns >= 10_000_000), "a draw fell in the gap");
        let long = draws.iter().filter(|&&ns| ns >= 10_000_000).count();
        assert!((4_000..6_000).contains(&long), "{long} of 10000 long");
    }

    #[test]
    fn an_open_loop_writer_catches_up_one_store_apart() {
        let timing = WriteTiming::steady(1_000.0).expect("valid rate");
        let mut w = writer();
        // Blocked for a whole second: about 1000 writes are overdue, so the next ones come
        // one store apart until the schedule is met again.
        let mut now = Nanos(1_000_000_000);
        let mut back_to_back = 0;
        for _ in 0..100 {
            let next = w.next_write_at(&timing, now, true, 300);
            back_to_back += (next == now + Nanos(300)) as u32;
            now = next;
        }
        assert_eq!(back_to_back, 100);
        // Closed loop: the gap is drawn from now, never a catch-up.
        let next = w.next_write_at(&timing, now, false, 300);
        assert!(next >= now + Nanos(300));
    }

    /// The loop used to draw a write's page when the write came; it now draws it right after
    /// the gap before it. Both orders must give the same times and pages, for every pattern.
    #[test]
    fn drawing_the_page_ahead_gives_the_same_writes() {
        const WRITES: u32 = 2_000;
        let patterns = ["uniform", "zipf:0.99", "hot-set:90/10", "sequential", "video"];
        for text in patterns {
            let pattern: Pattern = text.parse().expect("a valid pattern");
            let timing = WriteTiming::for_pattern(&pattern, 20_000.0).expect("a valid rate");
            let writer = || {
                let sampler = PageSampler::new(&pattern, 1 << 20, 0).expect("a valid sampler");
                Writer::new(sampler, ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(10))
            };
            let (mut on_write, mut ahead) = (writer(), writer());
            let mut now = on_write.next_write_at(&timing, Nanos::ZERO, true, 300);
            assert_eq!(ahead.next_write_at(&timing, Nanos::ZERO, true, 300), now);
            ahead.draw_ahead();
            for _ in 0..WRITES {
                assert_eq!(ahead.choose_page(), on_write.choose_page(), "{text}");
                let next = on_write.next_write_at(&timing, now, true, 300);
                assert_eq!(ahead.next_write_at(&timing, now, true, 300), next, "{text}");
                ahead.draw_ahead();
                now = next;
            }
        }
    }
}
