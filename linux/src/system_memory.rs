//! How much memory this process may still use: `MemAvailable` from `/proc/meminfo` and the
//! room left under the memory cgroup's limit (v1 or v2, the tightest along the path).
//!
//! The parsing functions are pure (tested on sample texts); [`read_memory_room`] reads the
//! files. A caller that is about to map a large region compares its size with
//! [`MemoryRoom::room_bytes`] first, so it refuses up front instead of being OOM-killed after
//! the work is done. It does not count huge pages reserved for hugetlbfs (see
//! [`crate::region::hugetlb_pages_free`]) and does not predict what other processes will use.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// A v1 limit at or above this means "no limit" (the kernel reports `PAGE_COUNTER_MAX` pages
/// in bytes, about 2^63).
const CGROUP_V1_UNLIMITED_BYTES: u64 = 1 << 62;
/// Folders walked up from the process's cgroup to the root, at most.
const CGROUP_DEPTH_MAX: usize = 64;

/// What [`read_memory_room`] found; `None` where the figure is unknown or unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryRoom {
    /// `MemAvailable` of `/proc/meminfo`.
    pub mem_available_bytes: Option<u64>,
    /// The tightest cgroup memory limit on the way from this process's cgroup to the root.
    pub cgroup_limit_bytes: Option<u64>,
    /// That limit minus the cgroup's current usage.
    pub cgroup_room_bytes: Option<u64>,
}

impl MemoryRoom {
    /// The smaller of `MemAvailable` and the cgroup's room; `None` if neither is known.
    pub fn room_bytes(&self) -> Option<u64> {
        match (self.mem_available_bytes, self.cgroup_room_bytes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Which of the two limits [`MemoryRoom::room_bytes`] is, for messages.
    pub fn tighter_limit_name(&self) -> &'static str {
        match (self.mem_available_bytes, self.cgroup_room_bytes) {
            (Some(a), Some(b)) if b < a => "the memory cgroup's limit",
            (None, Some(_)) => "the memory cgroup's limit",
            _ => "MemAvailable",
        }
    }
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo`.
pub fn parse_mem_available_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Where this process's memory cgroup is, from the text of `/proc/self/cgroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupPath {
    /// cgroup v1: the path under the `memory` controller's mount.
    V1(String),
    /// cgroup v2 (the unified hierarchy): the path under its mount.
    V2(String),
}

/// Parses `/proc/self/cgroup`: a v1 `memory` line wins over the v2 `0::` line.
pub fn parse_cgroup_path(proc_self_cgroup: &str) -> Option<CgroupPath> {
    let mut unified = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(CgroupPath::V1(path.to_string()));
        }
        if controllers.is_empty() {
            unified = Some(CgroupPath::V2(path.to_string()));
        }
    }
    unified
}

/// A cgroup limit file's value: v2's `max` and v1's huge sentinel are "no limit" (`None`).
pub fn parse_limit_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&v| v < CGROUP_V1_UNLIMITED_BYTES)
}

/// Room under one cgroup: limit minus usage (zero when over), `None` without a limit.
pub fn room_under_limit(limit_text: &str, usage_text: &str) -> Option<(u64, u64)> {
    let limit = parse_limit_bytes(limit_text)?;
    let usage: u64 = usage_text.trim().parse().ok()?;
    Some((limit, limit.saturating_sub(usage)))
}

/// Reads `/proc/meminfo` and the cgroup files; unknown figures stay `None`.
pub fn read_memory_room() -> MemoryRoom {
    let mem_available_bytes =
        std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(parse_mem_available_bytes);
    let cgroup =
        std::fs::read_to_string("/proc/self/cgroup").ok().as_deref().and_then(parse_cgroup_path).and_then(cgroup_room);
    MemoryRoom {
        mem_available_bytes,
        cgroup_limit_bytes: cgroup.map(|(limit, _)| limit),
        cgroup_room_bytes: cgroup.map(|(_, room)| room),
    }
}

/// The tightest (limit, room) from the process's cgroup folder up to the mount's root.
fn cgroup_room(path: CgroupPath) -> Option<(u64, u64)> {
    let (mount, relative, limit_file, usage_file) = match &path {
        CgroupPath::V1(p) => ("/sys/fs/cgroup/memory", p, "memory.limit_in_bytes", "memory.usage_in_bytes"),
        CgroupPath::V2(p) => ("/sys/fs/cgroup", p, "memory.max", "memory.current"),
    };
    let mount = Path::new(mount);
    let mut dir: PathBuf = mount.join(relative.trim_start_matches('/'));
    // Inside a cgroup namespace the listed path may not exist under the mount: the mount's
    // root is then this process's cgroup.
    if !dir.is_dir() {
        dir = mount.to_path_buf();
    }
    let mut tightest: Option<(u64, u64)> = None;
    for _ in 0..CGROUP_DEPTH_MAX {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        if let (Some(limit), Some(usage)) = (read(limit_file), read(usage_file))
            && let Some((limit, room)) = room_under_limit(&limit, &usage)
            && tightest.is_none_or(|(_, r)| room < r)
        {
            tightest = Some((limit, room));
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            break;
        }
    }
    tightest
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684092 kB\nMemFree:         1711660 kB\nMemAvailable:   23753468 kB\nBuffers:          123 kB\n";

    #[test]
    fn mem_available_is_read_in_bytes() {
        assert_eq!(parse_mem_available_bytes(MEMINFO), Some(23_753_468 * 1024));
        assert_eq!(parse_mem_available_bytes("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available_bytes("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn cgroup_paths_of_v1_and_v2() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/a3ed\n1:cpu:/\n0::/\n";
        assert_eq!(parse_cgroup_path(v1), Some(CgroupPath::V1("/process_api/a3ed".into())));
        let v2 = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(parse_cgroup_path(v2), Some(CgroupPath::V2("/user.slice/user-1000.slice/session-2.scope".into())));
        let v1_combined = "5:cpu,memory:/box\n";
        assert_eq!(parse_cgroup_path(v1_combined), Some(CgroupPath::V1("/box".into())));
        assert_eq!(parse_cgroup_path("garbage"), None);
    }

    #[test]
    fn limits_unlimited_and_room() {
        assert_eq!(parse_limit_bytes("max\n"), None);
        assert_eq!(parse_limit_bytes("9223372036854771712\n"), None);
        assert_eq!(parse_limit_bytes("6442450944\n"), Some(6 << 30));
        assert_eq!(room_under_limit("6442450944\n", "1073741824\n"), Some((6 << 30, 5 << 30)));
        assert_eq!(room_under_limit("1000", "2000"), Some((1000, 0)));
        assert_eq!(room_under_limit("max", "2000"), None);
    }

    #[test]
    fn room_is_the_tighter_of_the_two() {
        let room =
            MemoryRoom { mem_available_bytes: Some(10), cgroup_limit_bytes: Some(8), cgroup_room_bytes: Some(4) };
        assert_eq!(room.room_bytes(), Some(4));
        assert_eq!(room.tighter_limit_name(), "the memory cgroup's limit");
        let room = MemoryRoom { mem_available_bytes: Some(3), cgroup_limit_bytes: Some(8), cgroup_room_bytes: Some(4) };
        assert_eq!(room.room_bytes(), Some(3));
        assert_eq!(room.tighter_limit_name(), "MemAvailable");
        assert_eq!(MemoryRoom::default().room_bytes(), None);
    }

    #[test]
    fn this_machine_reports_something() {
        // /proc/meminfo exists on every Linux the backend runs on.
        assert!(read_memory_room().mem_available_bytes.is_some());
    }
}
