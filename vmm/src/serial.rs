//! The guest's serial output: bytes to lines, lines to parsed records.
//!
//! Line formats are documented in `guest/guest.c` and `docs/vm.md`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Instant;

/// Log2 latency buckets in a stats line (bucket b: [2^b, 2^(b+1)) ns).
pub const HIST_BUCKETS: usize = 40;
/// A partial line longer than this is cut into a line of its own.
pub const LINE_BYTES_MAX: usize = 4096;
/// Parsed records kept (oldest dropped first): ~2 hours of 0.5 s periods for 8 vCPUs.
pub const RECORDS_MAX: usize = 120_000;
/// Unparsed text lines kept.
pub const TEXT_LINES_MAX: usize = 1000;

/// One stats period of one vCPU (`WPSTAT`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatLine {
    pub cpu: u32,
    pub seq: u64,
    /// Guest TSC at the end of the period (equals the host TSC under PVM and on most KVM hosts).
    pub tsc: u64,
    /// Host time the line arrived, ns since the VM started (the period ended just before the
    /// line was printed; printing it takes a few to tens of milliseconds).
    pub host_ns: u64,
    pub period_ns: u64,
    pub stores: u64,
    /// Sum of the store latencies of stores that took >= 2 us.
    pub stall_ns: u64,
    pub ge1ms: u64,
    pub ge16ms: u64,
    pub max_ns: u64,
    pub hist: Vec<u64>,
}

/// A self-check verdict (`WPCHECK`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    pub cpu: u32,
    pub ok: bool,
    pub records: u64,
    pub bad: u64,
    pub total: u64,
    pub expected: u64,
    pub transfers: u64,
    pub versions: u64,
    pub host_ns: u64,
}

/// A parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestLine {
    Ready { cpu: u32 },
    Stat(StatLine),
    Check(CheckLine),
    Error(String),
    Text(String),
}

fn fields(rest: &str) -> impl Iterator<Item = (&str, &str)> {
    rest.split_whitespace().filter_map(|t| t.split_once('='))
}

fn num(rest: &str, key: &str) -> Option<u64> {
    fields(rest).find(|(k, _)| *k == key).and_then(|(_, v)| v.parse().ok())
}

/// Parses one line (without its newline). Malformed known lines become `Text`.
pub fn parse_line(line: &str, host_ns: u64) -> GuestLine {
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    let parsed = match tag {
        "WPREADY" => num(rest, "cpu").map(|cpu| GuestLine::Ready { cpu: cpu as u32 }),
        "WPERROR" => Some(GuestLine::Error(rest.to_string())),
        "WPSTAT" => parse_stat(rest, host_ns).map(GuestLine::Stat),
        "WPCHECK" => (|| {
            Some(GuestLine::Check(CheckLine {
                cpu: num(rest, "cpu")? as u32,
                ok: num(rest, "ok")? == 1,
                records: num(rest, "records")?,
                bad: num(rest, "bad")?,
                total: num(rest, "total")?,
                expected: num(rest, "expected")?,
                transfers: num(rest, "transfers")?,
                versions: num(rest, "versions")?,
                host_ns,
            }))
        })(),
        _ => None,
    };
    parsed.unwrap_or_else(|| GuestLine::Text(line.to_string()))
}

fn parse_stat(rest: &str, host_ns: u64) -> Option<StatLine> {
    let hist_text = fields(rest).find(|(k, _)| *k == "hist")?.1;
    let mut hist = vec![0u64; HIST_BUCKETS];
    if hist_text != "-" {
        for entry in hist_text.split(',') {
            let (bucket, count) = entry.split_once(':')?;
            *hist.get_mut(bucket.parse::<usize>().ok()?)? = count.parse().ok()?;
        }
    }
    Some(StatLine {
        cpu: num(rest, "cpu")? as u32,
        seq: num(rest, "seq")?,
        tsc: num(rest, "tsc")?,
        host_ns,
        period_ns: num(rest, "period_ns")?,
        stores: num(rest, "stores")?,
        stall_ns: num(rest, "stall_ns")?,
        ge1ms: num(rest, "ge1ms")?,
        ge16ms: num(rest, "ge16ms")?,
        max_ns: num(rest, "max_ns")?,
        hist,
    })
}

/// Everything the guest printed, parsed; bounded.
#[derive(Debug)]
pub struct SerialLog {
    started: Instant,
    /// One partial line per vCPU: vCPUs print concurrently, and KVM may split one `rep outsb`
    /// into several exits.
    partial: Vec<Vec<u8>>,
    pub ready: Vec<u32>,
    pub stats: VecDeque<StatLine>,
    pub checks: VecDeque<CheckLine>,
    pub errors: Vec<String>,
    pub text: VecDeque<String>,
}

impl SerialLog {
    pub fn new(started: Instant, vcpus: usize) -> SerialLog {
        SerialLog {
            started,
            partial: vec![Vec::new(); vcpus],
            ready: Vec::new(),
            stats: VecDeque::new(),
            checks: VecDeque::new(),
            errors: Vec::new(),
            text: VecDeque::new(),
        }
    }

    /// ns since the log started (the VM's start).
    pub fn elapsed_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Takes bytes vCPU `vcpu` wrote to the serial port; returns the complete lines they
    /// finished.
    pub fn push_bytes(&mut self, vcpu: usize, bytes: &[u8]) -> Vec<GuestLine> {
        let mut lines = Vec::new();
        if vcpu >= self.partial.len() {
            self.partial.resize(vcpu + 1, Vec::new());
        }
        for &b in bytes {
            let partial = &mut self.partial[vcpu];
            if b != b'\n' && partial.len() < LINE_BYTES_MAX {
                partial.push(b);
                continue;
            }
            let text = String::from_utf8_lossy(partial).trim_end_matches('\r').to_string();
            partial.clear();
            if b != b'\n' {
                partial.push(b);
            }
            let line = parse_line(&text, self.started.elapsed().as_nanos() as u64);
            self.keep(line.clone());
            lines.push(line);
        }
        lines
    }

    fn keep(&mut self, line: GuestLine) {
        match line {
            GuestLine::Ready { cpu } => self.ready.push(cpu),
            GuestLine::Stat(s) => push_bounded(&mut self.stats, s, RECORDS_MAX),
            GuestLine::Check(c) => push_bounded(&mut self.checks, c, RECORDS_MAX),
            GuestLine::Error(e) => {
                if self.errors.len() < TEXT_LINES_MAX {
                    self.errors.push(e)
                }
            }
            GuestLine::Text(t) => push_bounded(&mut self.text, t, TEXT_LINES_MAX),
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) {
    if q.len() == max {
        q.pop_front();
    }
    q.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guest_lines() {
        let stat =
            "WPSTAT cpu=1 seq=3 tsc=99 period_ns=500 stores=7 stall_ns=5 ge1ms=1 ge16ms=0 max_ns=2000000 hist=3:6,20:1";
        match parse_line(stat, 42) {
            GuestLine::Stat(s) => {
                assert_eq!((s.cpu, s.seq, s.stores, s.ge1ms, s.max_ns, s.host_ns), (1, 3, 7, 1, 2_000_000, 42));
                assert_eq!(s.hist.len(), HIST_BUCKETS);
                assert_eq!((s.hist[3], s.hist[20], s.hist.iter().sum::<u64>()), (6, 1, 7));
            }
            other => panic!("not a stat line: {other:?}"),
        }
        let empty = "WPSTAT cpu=0 seq=0 tsc=1 period_ns=1 stores=0 stall_ns=0 ge1ms=0 ge16ms=0 max_ns=0 hist=-";
        assert!(matches!(parse_line(empty, 0), GuestLine::Stat(_)));
        let out_of_range =
            "WPSTAT cpu=0 seq=0 tsc=1 period_ns=1 stores=1 stall_ns=0 ge1ms=0 ge16ms=0 max_ns=0 hist=40:1";
        assert!(matches!(parse_line(out_of_range, 0), GuestLine::Text(_)));
        let check = "WPCHECK cpu=0 ok=1 records=1024 bad=0 total=5 expected=5 transfers=2 versions=4";
        assert!(matches!(parse_line(check, 0), GuestLine::Check(CheckLine { ok: true, records: 1024, .. })));
        assert!(matches!(parse_line("WPSTAT cpu=1 hist=1:2", 0), GuestLine::Text(_)));
        assert_eq!(parse_line("WPERROR bad thing", 0), GuestLine::Error("bad thing".into()));
        assert_eq!(parse_line("WPREADY cpu=2 pattern=zipf", 0), GuestLine::Ready { cpu: 2 });
    }

    #[test]
    fn assembles_lines_across_writes_and_bounds_them() {
        let mut log = SerialLog::new(Instant::now(), 2);
        assert!(log.push_bytes(0, b"WPREADY cp").is_empty());
        assert!(log.push_bytes(1, b"WPREADY cpu=").is_empty(), "vCPUs interleave");
        assert_eq!(log.push_bytes(0, b"u=0\nhello\n").len(), 2);
        assert_eq!(log.push_bytes(1, b"1\n").len(), 1);
        assert_eq!(log.ready, vec![0, 1]);
        assert_eq!(log.text.back().map(String::as_str), Some("hello"));
        let long = vec![b'x'; LINE_BYTES_MAX + 10];
        assert_eq!(log.push_bytes(0, &long).len(), 1, "an overlong line is cut");
    }
}
