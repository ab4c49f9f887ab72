//! A parser for `/proc/self/smaps` (and `/proc/self/maps`, which has the same header lines),
//! and what a range of it says about the memory's backing. Pure: tested on sample text.

use super::{Backing, HUGE_PAGE_BYTES};
use std::fmt;

/// Longest smaps text read (bounds the read of a process with very many mappings: 64 MiB is
/// about 200 000 mappings).
pub const SMAPS_BYTES_MAX: u64 = 64 << 20;

/// One mapping (VMA) as `/proc/self/smaps` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vma {
    pub start: usize,
    pub end: usize,
    /// `rw-s`, `rw-p`, ...
    pub perms: String,
    pub offset: u64,
    /// Device of the backing file (`major:minor`), 0:0 for anonymous memory.
    pub dev: (u32, u32),
    /// Inode of the backing file, 0 for anonymous memory.
    pub inode: u64,
    /// The path column: empty for anonymous memory, `[heap]`, `/memfd:NAME (deleted)`, ...
    pub path: String,
    /// `KernelPageSize` in bytes (0 when the text had no such line, e.g. `/proc/self/maps`).
    pub kernel_page_bytes: u64,
    /// `AnonHugePages` in bytes: anonymous memory currently mapped by transparent huge pages.
    pub anon_huge_bytes: u64,
    /// `THPeligible`, when present.
    pub thp_eligible: Option<bool>,
    /// The two-letter `VmFlags` (`sh`, `hg`, `nh`, `ht`, ...).
    pub flags: Vec<String>,
}

impl Vma {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
    /// Shared mapping (`s` in the permissions).
    pub fn is_shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }
    /// Backed by a file (including memfd, shmem and hugetlbfs files): has an inode.
    pub fn has_file(&self) -> bool {
        self.inode != 0
    }
}

/// Text that is not smaps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the mappings table: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
}

/// Parses smaps (or maps) text into its mappings, in address order as the kernel lists them.
pub fn parse(text: &str) -> Result<Vec<Vma>, ParseError> {
    let mut vmas: Vec<Vma> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(vma) = parse_header(line) {
            vmas.push(vma);
            continue;
        }
        let Some(current) = vmas.last_mut() else {
            return Err(ParseError { line: line_no, reason: "a field before the first mapping" });
        };
        let Some((key, value)) = line.split_once(':') else {
            return Err(ParseError { line: line_no, reason: "neither a mapping nor a `Key: value` field" });
        };
        let value = value.trim();
        match key {
            "VmFlags" => current.flags = value.split_whitespace().map(str::to_string).collect(),
            "KernelPageSize" => {
                current.kernel_page_bytes =
                    kib(value).ok_or(ParseError { line: line_no, reason: "bad KernelPageSize" })?
            }
            "AnonHugePages" => {
                current.anon_huge_bytes = kib(value).ok_or(ParseError { line: line_no, reason: "bad AnonHugePages" })?
            }
            "THPeligible" => current.thp_eligible = Some(value == "1"),
            _ => {}
        }
    }
    Ok(vmas)
}

/// `123 kB` in bytes.
fn kib(value: &str) -> Option<u64> {
    value.strip_suffix("kB")?.trim().parse::<u64>().ok()?.checked_mul(1024)
}

/// `start-end perms offset major:minor inode [path]`, or `None` if `line` is not one.
fn parse_header(line: &str) -> Option<Vma> {
    let mut rest = line;
    let mut next = || {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (word, tail) = trimmed.split_at(end);
        rest = tail;
        Some(word).filter(|w| !w.is_empty())
    };
    let range = next()?;
    let perms = next()?;
    let offset = next()?;
    let dev = next()?;
    let inode = next()?;
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    if perms.len() != 4 {
        return None;
    }
    Some(Vma {
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: (u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?),
        inode: inode.parse().ok()?,
        path: rest.trim().to_string(),
        ..Vma::default()
    })
}

/// What the kernel says backs a range, in the terms userfaultfd write-protection cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectedBacking {
    /// Private anonymous memory with 4 KiB pages (no `MADV_HUGEPAGE`, no huge pages mapped).
    Anonymous,
    /// Private anonymous memory with `MADV_HUGEPAGE` or transparent huge pages mapped.
    Thp,
    /// shmem: a memfd, a tmpfs file, shared anonymous memory or SysV shared memory.
    Shmem { path: String },
    /// hugetlbfs pages (`MAP_HUGETLB`, a hugetlbfs file or a `MFD_HUGETLB` memfd).
    Hugetlb { page_bytes: u64, shared: bool },
    /// A regular file: userfaultfd write-protection does not support it.
    File { path: String },
}

impl DetectedBacking {
    /// The [`Backing`] this is, or `None` when wpsnap cannot snapshot it.
    pub fn backing(&self) -> Option<Backing> {
        match self {
            DetectedBacking::Anonymous => Some(Backing::Anonymous),
            DetectedBacking::Thp => Some(Backing::Thp),
            DetectedBacking::Shmem { .. } => Some(Backing::Memfd),
            DetectedBacking::Hugetlb { page_bytes: HUGE_PAGE_BYTES, shared: false } => Some(Backing::Hugetlbfs),
            DetectedBacking::Hugetlb { page_bytes: HUGE_PAGE_BYTES, shared: true } => Some(Backing::HugetlbfsShared),
            DetectedBacking::Hugetlb { .. } | DetectedBacking::File { .. } => None,
        }
    }
}

impl fmt::Display for DetectedBacking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetectedBacking::Anonymous => f.write_str("anonymous memory (4 KiB pages)"),
            DetectedBacking::Thp => f.write_str("anonymous memory with transparent huge pages"),
            DetectedBacking::Shmem { path } => write!(f, "shmem ({path})"),
            DetectedBacking::Hugetlb { page_bytes, shared } => {
                let kind = if *shared { "shared" } else { "private" };
                write!(f, "{kind} hugetlbfs memory ({} KiB pages)", page_bytes / 1024)
            }
            DetectedBacking::File { path } => write!(f, "the regular file {path}"),
        }
    }
}

/// The file system of a path-backed mapping, as far as backing detection needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSystem {
    /// tmpfs / shmem.
    Tmpfs,
    Hugetlbfs,
    /// Anything else (ext4, xfs, ...), or unknown.
    Other,
}

/// What one mapping holds. `fs` says which file system a path-backed mapping's file is on
/// (only asked for paths the name alone does not settle).
pub fn classify(vma: &Vma, fs: impl FnOnce(&Vma) -> FileSystem) -> DetectedBacking {
    if vma.has_flag("ht") {
        let page_bytes = if vma.kernel_page_bytes == 0 { HUGE_PAGE_BYTES } else { vma.kernel_page_bytes };
        return DetectedBacking::Hugetlb { page_bytes, shared: vma.is_shared() };
    }
    let path = vma.path.as_str();
    let anonymous = !vma.has_file() && (path.is_empty() || path.starts_with('['));
    if anonymous {
        let huge = !vma.has_flag("nh") && (vma.has_flag("hg") || vma.anon_huge_bytes > 0);
        return if huge { DetectedBacking::Thp } else { DetectedBacking::Anonymous };
    }
    // Names the kernel gives shmem objects that have no path of their own.
    let shmem_name = path.starts_with("/memfd:") || path.starts_with("/dev/zero") || path.starts_with("/SYSV");
    if shmem_name {
        return DetectedBacking::Shmem { path: path.to_string() };
    }
    match fs(vma) {
        FileSystem::Tmpfs => DetectedBacking::Shmem { path: path.to_string() },
        FileSystem::Hugetlbfs => {
            DetectedBacking::Hugetlb { page_bytes: vma.kernel_page_bytes.max(HUGE_PAGE_BYTES), shared: vma.is_shared() }
        }
        FileSystem::Other => DetectedBacking::File { path: path.to_string() },
    }
}

/// Why a range's backing could not be settled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("nothing is mapped at {addr:#x} (the region {start:#x}..{end:#x} must be mapped)")]
    NotMapped { addr: usize, start: usize, end: usize },
    #[error("{start:#x}..{end:#x} spans two different backings: {first} and {second}")]
    Mixed { start: usize, end: usize, first: DetectedBacking, second: DetectedBacking },
    #[error("{start:#x}..{end:#x} spans two different files (inode {first_inode} and {second_inode})")]
    TwoFiles { start: usize, end: usize, first_inode: u64, second_inode: u64 },
}

/// The mappings covering `[start, end)`, which must be covered without a gap.
pub fn covering(vmas: &[Vma], start: usize, end: usize) -> Result<Vec<&Vma>, RangeError> {
    let mut out = Vec::new();
    let mut at = start;
    for vma in vmas.iter().filter(|v| v.end > start && v.start < end) {
        if vma.start > at {
            return Err(RangeError::NotMapped { addr: at, start, end });
        }
        out.push(vma);
        at = vma.end;
    }
    if at < end {
        return Err(RangeError::NotMapped { addr: at, start, end });
    }
    Ok(out)
}

/// The one backing of `[start, end)` (a range over several mappings must have the same kind
/// throughout, and the same file if it has one).
pub fn detect(
    vmas: &[Vma],
    start: usize,
    end: usize,
    mut fs: impl FnMut(&Vma) -> FileSystem,
) -> Result<DetectedBacking, RangeError> {
    let parts = covering(vmas, start, end)?;
    let mut found: Option<(DetectedBacking, u64)> = None;
    for vma in parts {
        let kind = classify(vma, &mut fs);
        match &found {
            None => found = Some((kind, vma.inode)),
            Some((first, inode)) => {
                if *first != kind {
                    return Err(RangeError::Mixed { start, end, first: first.clone(), second: kind });
                }
                if *inode != vma.inode {
                    return Err(RangeError::TwoFiles { start, end, first_inode: *inode, second_inode: vma.inode });
                }
            }
        }
    }
    // `covering` returned at least one mapping for a non-empty range.
    found.map(|(kind, _)| kind).ok_or(RangeError::NotMapped { addr: start, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
KernelPageSize:        4 kB
AnonHugePages:         0 kB
THPeligible:           0
VmFlags: rd wr mr mw me ac
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 
Size:               4096 kB
KernelPageSize:        4 kB
AnonHugePages:      2048 kB
THPeligible:           1
VmFlags: rd wr mr mw me ac hg
7f0000400000-7f0000800000 rw-p 00000000 00:00 0 
KernelPageSize:        4 kB
AnonHugePages:         0 kB
VmFlags: rd wr mr mw me ac
7f769c8fe000-7f769c9fe000 rw-s 00000000 00:01 25                         /memfd:wpsnap-region (deleted)
KernelPageSize:        4 kB
AnonHugePages:         0 kB
THPeligible:           0
VmFlags: rd wr sh mr mw me ms
7f7700000000-7f7700400000 rw-p 00000000 00:10 4242                       /anon_hugepage (deleted)
KernelPageSize:     2048 kB
VmFlags: rd wr mr mw me de ht
7f7700400000-7f7700800000 rw-s 00000000 00:10 4243                       /memfd:vm-ram (deleted)
KernelPageSize:     2048 kB
VmFlags: rd wr sh mr mw me ms de ht
7f7800000000-7f7800010000 r--p 00000000 08:01 131 /usr/lib/with space/libx.so
KernelPageSize:        4 kB
VmFlags: rd mr mw me
7f7900000000-7f7900010000 rw-s 00000000 00:19 77 /dev/shm/arena
KernelPageSize:        4 kB
VmFlags: rd wr sh mr mw me ms
";

    fn vmas() -> Vec<Vma> {
        parse(SAMPLE).expect("sample parses")
    }

    fn no_fs(_: &Vma) -> FileSystem {
        FileSystem::Other
    }

    #[test]
    fn parses_headers_and_fields() {
        let v = vmas();
        assert_eq!(v.len(), 8);
        assert_eq!(v[0].path, "[heap]");
        assert_eq!((v[1].start, v[1].end), (0x7f00_0000_0000, 0x7f00_0040_0000));
        assert_eq!(v[1].anon_huge_bytes, 2 << 20);
        assert_eq!(v[1].thp_eligible, Some(true));
        assert!(v[1].has_flag("hg"));
        assert_eq!(v[3].dev, (0, 1));
        assert_eq!(v[3].inode, 25);
        assert!(v[3].is_shared());
        assert_eq!(v[3].path, "/memfd:wpsnap-region (deleted)");
        assert_eq!(v[4].kernel_page_bytes, 2 << 20);
        assert_eq!(v[6].path, "/usr/lib/with space/libx.so");
        assert_eq!(v[6].dev, (8, 1));
        assert!(parse("Size: 4 kB\n").is_err());
        assert!(parse("not a mapping\n").is_err());
    }

    #[test]
    fn classifies_each_backing() {
        let v = vmas();
        let kind = |i: usize| classify(&v[i], no_fs);
        assert_eq!(kind(0), DetectedBacking::Anonymous);
        assert_eq!(kind(1), DetectedBacking::Thp);
        assert_eq!(kind(2), DetectedBacking::Anonymous);
        assert_eq!(kind(3), DetectedBacking::Shmem { path: "/memfd:wpsnap-region (deleted)".into() });
        assert_eq!(kind(4), DetectedBacking::Hugetlb { page_bytes: 2 << 20, shared: false });
        assert_eq!(kind(5), DetectedBacking::Hugetlb { page_bytes: 2 << 20, shared: true });
        assert_eq!(kind(6), DetectedBacking::File { path: "/usr/lib/with space/libx.so".into() });
        assert_eq!(classify(&v[7], |_| FileSystem::Tmpfs), DetectedBacking::Shmem { path: "/dev/shm/arena".into() });
        assert_eq!(kind(1).backing(), Some(Backing::Thp));
        assert_eq!(kind(5).backing(), Some(Backing::HugetlbfsShared));
        assert_eq!(kind(6).backing(), None);
    }

    #[test]
    fn detects_ranges_across_mappings_and_refuses_gaps_and_mixes() {
        let v = vmas();
        assert_eq!(detect(&v, 0x7f00_0000_0000, 0x7f00_0000_1000, no_fs), Ok(DetectedBacking::Thp));
        let mixed = detect(&v, 0x7f00_003f_f000, 0x7f00_0040_1000, no_fs);
        assert!(matches!(mixed, Err(RangeError::Mixed { .. })), "{mixed:?}");
        let gap = detect(&v, 0x7f00_007f_f000, 0x7f00_0080_1000, no_fs);
        assert!(matches!(gap, Err(RangeError::NotMapped { addr: 0x7f00_0080_0000, .. })), "{gap:?}");
        let unmapped = detect(&v, 0x1000, 0x2000, no_fs);
        assert!(matches!(unmapped, Err(RangeError::NotMapped { addr: 0x1000, .. })), "{unmapped:?}");
    }
}
