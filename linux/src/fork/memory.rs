//! Copy-on-write growth, read from `/proc/PID/smaps` of the child.
//!
//! After `fork()` every region page is shared by parent and child. When the parent writes a
//! page, the kernel gives the parent a fresh copy and the child keeps the old one, which now
//! belongs to the child alone: the child's *private* bytes inside the region are exactly the
//! memory the snapshot costs beyond the parent's own.

use serde::{Deserialize, Serialize};

/// Largest smaps text read per sample, so a process with a huge number of mappings cannot make
/// a sample unbounded.
const SMAPS_BYTES_MAX: u64 = 64 << 20;

/// Extra memory the fork snapshot cost, from the child's smaps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraMemory {
    /// Peak of the child's private bytes (Private_Clean + Private_Dirty) in mappings that
    /// overlap the region: pages copied on write because the parent wrote them. Whole
    /// mappings are counted, so a region that is part of a larger mapping over-counts by the
    /// rest of that mapping's private pages.
    pub region_cow_bytes_peak: u64,
    /// Peak of the child's private bytes over all its mappings (region copies plus whatever
    /// else the parent dirtied: heap, thread stacks; plus the child's own stack and buffer).
    pub child_private_bytes_peak: u64,
    /// How many samples the peaks were taken from (0 if /proc could not be read).
    pub samples: u32,
}

impl std::fmt::Display for ExtraMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: f64 = (1 << 20) as f64;
        if self.samples == 0 {
            return f.write_str("not measured (/proc/PID/smaps unreadable)");
        }
        write!(
            f,
            "{:.1} MiB copied on write in the region (child private {:.1} MiB in all; peak of {} samples)",
            self.region_cow_bytes_peak as f64 / MIB,
            self.child_private_bytes_peak as f64 / MIB,
            self.samples
        )
    }
}

/// Private bytes (clean + dirty) of one process: (in mappings overlapping `[start, end)`, total).
pub(super) fn private_bytes(pid: i32, start: usize, end: usize) -> Option<(u64, u64)> {
    use std::io::Read;
    let file = std::fs::File::open(format!("/proc/{pid}/smaps")).ok()?;
    let mut text = String::new();
    file.take(SMAPS_BYTES_MAX).read_to_string(&mut text).ok()?;
    Some(parse_private_bytes(&text, start, end))
}

fn parse_private_bytes(smaps: &str, start: usize, end: usize) -> (u64, u64) {
    let mut in_region = false;
    let (mut region, mut total) = (0_u64, 0_u64);
    for line in smaps.lines() {
        if let Some((lo, hi)) = mapping_range(line) {
            in_region = lo < end && start < hi;
            continue;
        }
        let kib = line
            .strip_prefix("Private_Dirty:")
            .or_else(|| line.strip_prefix("Private_Clean:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        if let Some(kib) = kib {
            total += kib * 1024;
            if in_region {
                region += kib * 1024;
            }
        }
    }
    (region, total)
}

/// `7f00-7f80 rw-p ...` -> (0x7f00, 0x7f80); None for field lines.
fn mapping_range(line: &str) -> Option<(usize, usize)> {
    let range = line.split_whitespace().next()?;
    let (lo, hi) = range.split_once('-')?;
    Some((usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
1000-3000 rw-p 00000000 00:00 0 
Size:                  8 kB
Private_Clean:         0 kB
Private_Dirty:         4 kB
7000-9000 rw-p 00000000 00:00 0                          [heap]
Size:                  8 kB
Private_Clean:         4 kB
Private_Dirty:         8 kB
VmFlags: rd wr mr mw me ac
";

    #[test]
    fn region_and_total_private_bytes() {
        assert_eq!(parse_private_bytes(SAMPLE, 0x1000, 0x2000), (4096, 16 * 1024));
        assert_eq!(parse_private_bytes(SAMPLE, 0x4000, 0x5000), (0, 16 * 1024));
        assert_eq!(parse_private_bytes(SAMPLE, 0x2fff, 0x7001), (16 * 1024, 16 * 1024));
    }

    #[test]
    fn display_says_what_was_measured() {
        let m = ExtraMemory { region_cow_bytes_peak: 3 << 20, child_private_bytes_peak: 4 << 20, samples: 2 };
        assert_eq!(
            m.to_string(),
            "3.0 MiB copied on write in the region (child private 4.0 MiB in all; peak of 2 samples)"
        );
        assert!(ExtraMemory::default().to_string().starts_with("not measured"));
    }

    #[test]
    fn own_process_is_readable() {
        let (_, total) = private_bytes(std::process::id() as i32, 0, 1).unwrap_or((0, 0));
        assert!(total > 0, "a running test process has private memory");
    }
}
