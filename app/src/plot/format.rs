//! Human-readable durations.

/// Formats nanoseconds with a unit that keeps three significant digits: "850 ns", "12.3 µs",
/// "4.56 ms", "1.20 s".
pub fn format_ns(ns: u64) -> String {
    const NS_PER_US: f64 = 1e3;
    const NS_PER_MS: f64 = 1e6;
    const NS_PER_S: f64 = 1e9;
    let v = ns as f64;
    let (value, unit) = if ns < 1_000 {
        return format!("{ns} ns");
    } else if v < NS_PER_MS {
        (v / NS_PER_US, "µs")
    } else if v < NS_PER_S {
        (v / NS_PER_MS, "ms")
    } else {
        (v / NS_PER_S, "s")
    };
    if value < 10.0 {
        format!("{value:.2} {unit}")
    } else if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::format_ns;

    #[test]
    fn picks_a_unit_and_three_digits() {
        assert_eq!(format_ns(0), "0 ns");
        assert_eq!(format_ns(850), "850 ns");
        assert_eq!(format_ns(12_345), "12.3 µs");
        assert_eq!(format_ns(4_560_000), "4.56 ms");
        assert_eq!(format_ns(123_000_000), "123 ms");
        assert_eq!(format_ns(1_200_000_000), "1.20 s");
    }
}
