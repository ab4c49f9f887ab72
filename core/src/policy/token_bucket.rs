//! An integer token bucket, exact and deterministic (no floating point in the pacing path).

use crate::time::Nanos;

const NS_PER_SEC: u128 = 1_000_000_000;

/// Tokens are pages; the fill is kept in page-nanoseconds so no rounding is ever lost.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    pages_per_sec: u64,
    burst_pages: u64,
    /// Tokens times 10^9.
    fill: u128,
    last_refill: Nanos,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(pages_per_sec: u64, burst_pages: u64, now: Nanos) -> TokenBucket {
        let burst_pages = burst_pages.max(1);
        TokenBucket {
            pages_per_sec: pages_per_sec.max(1),
            burst_pages,
            fill: burst_pages as u128 * NS_PER_SEC,
            last_refill: now,
        }
    }

    pub fn pages_per_sec(&self) -> u64 {
        self.pages_per_sec
    }

    /// Changes the rate from `now` on, keeping the tokens already earned.
    pub fn set_rate(&mut self, now: Nanos, pages_per_sec: u64) {
        self.refill(now);
        self.pages_per_sec = pages_per_sec.max(1);
    }

    fn refill(&mut self, now: Nanos) {
        let elapsed = now.saturating_since(self.last_refill).as_ns() as u128;
        let cap = self.burst_pages as u128 * NS_PER_SEC;
        self.fill = (self.fill + elapsed * self.pages_per_sec as u128).min(cap);
        self.last_refill = now;
    }

    /// Whole pages available now, or the time the next one will be.
    pub fn available(&mut self, now: Nanos) -> Result<u64, Nanos> {
        self.refill(now);
        let pages = (self.fill / NS_PER_SEC) as u64;
        if pages > 0 {
            return Ok(pages);
        }
        let missing = NS_PER_SEC - self.fill;
        let wait_ns = missing.div_ceil(self.pages_per_sec as u128);
        Err(now + Nanos(wait_ns.min(u64::MAX as u128) as u64))
    }

    /// Takes `pages` tokens (the scan started that many pages).
    pub fn take(&mut self, now: Nanos, pages: u64) {
        self.refill(now);
        self.fill = self.fill.saturating_sub(pages as u128 * NS_PER_SEC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_rate_after_the_burst() {
        let mut b = TokenBucket::new(1000, 4, Nanos::ZERO);
        assert_eq!(b.available(Nanos::ZERO), Ok(4));
        b.take(Nanos::ZERO, 4);
        // One page per millisecond.
        assert_eq!(b.available(Nanos::ZERO), Err(Nanos::from_ms(1)));
        assert_eq!(b.available(Nanos::from_ms(1)), Ok(1));
        assert_eq!(b.available(Nanos::from_ms(100)), Ok(4), "capped at the burst");
    }

    #[test]
    fn rate_change_keeps_earned_tokens() {
        let mut b = TokenBucket::new(1000, 10, Nanos::ZERO);
        b.take(Nanos::ZERO, 10);
        b.set_rate(Nanos::from_us(2500), 10);
        assert_eq!(b.available(Nanos::from_us(2500)), Ok(2));
    }
}
