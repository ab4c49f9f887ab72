//! The default memory budget of the decoupled model: how much staging memory a snapshot may
//! use when the caller does not say.
//!
//! Rule (docs/linux.md): `min(region, MemAvailable / 2, cgroup room / 2, 8 GiB)`, but at least
//! `min(region, 16 MiB)`. With a budget of the whole region the scan copies at memory speed
//! and no fault ever waits for the sink; the worst case is then fork()'s (a copy of every page),
//! while the memory actually used follows what is staged (chunks are freed as the sink drains).
//! Half of what is available leaves the other half to the writers' own growth and to the page
//! cache the sink writes through; the cap bounds a runaway on a huge machine. The engine only
//! takes the number; this module reads the machine.

use std::path::{Path, PathBuf};

/// The share of available memory (system and cgroup) the default budget may take: 1/this.
pub const BUDGET_AVAILABLE_DIVISOR: u64 = 2;
/// Largest default budget.
pub const BUDGET_BYTES_CAP: u64 = 8 << 30;
/// Smallest default budget (the old fixed staging buffer), unless the region is smaller.
pub const BUDGET_BYTES_FLOOR: u64 = 16 << 20;

/// The rule itself, on numbers: `None` where a limit is unknown or absent.
pub fn budget_rule(region_bytes: u64, mem_available: Option<u64>, cgroup_room: Option<u64>) -> u64 {
    let mut budget = region_bytes.min(BUDGET_BYTES_CAP);
    for limit in [mem_available, cgroup_room].into_iter().flatten() {
        budget = budget.min(limit / BUDGET_AVAILABLE_DIVISOR);
    }
    budget.max(region_bytes.min(BUDGET_BYTES_FLOOR))
}

/// The default budget for a region of `region_bytes`, from `/proc/meminfo` and the process's
/// memory cgroup (v2 `memory.max`/`memory.current`, or v1 `memory.limit_in_bytes`/
/// `memory.usage_in_bytes`). Unreadable files count as "no limit".
pub fn default_budget_bytes(region_bytes: u64) -> u64 {
    let mem_available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| mem_available_bytes(&s));
    let cgroup_room = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| cgroup_room_bytes(&s, Path::new("/sys/fs/cgroup"), &|p| std::fs::read_to_string(p).ok()));
    budget_rule(region_bytes, mem_available, cgroup_room)
}

/// `MemAvailable` from `/proc/meminfo` text, in bytes.
pub fn mem_available_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Limit minus usage of the memory cgroup named in `/proc/self/cgroup` text, read through
/// `read` under `root`; `None` without a limit. Looks in the process's own cgroup directory
/// first, then at the mount's top (inside a container the namespace root is the container's).
pub fn cgroup_room_bytes(proc_cgroup: &str, root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Option<u64> {
    let number = |p: PathBuf| read(&p).and_then(|s| s.trim().parse::<u64>().ok());
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let relative = path.trim_start_matches('/');
        let (dir, limit_file, usage_file) = match controllers {
            "" => (root.to_path_buf(), "memory.max", "memory.current"),
            c if c.split(',').any(|c| c == "memory") => {
                (root.join("memory"), "memory.limit_in_bytes", "memory.usage_in_bytes")
            }
            _ => continue,
        };
        for base in [dir.join(relative), dir] {
            // "max" (v2) does not parse: no limit. v1 reports "no limit" as a huge number.
            if let Some(limit) = number(base.join(limit_file)).filter(|&l| l < 1 << 60) {
                let usage = number(base.join(usage_file)).unwrap_or(0);
                return Some(limit.saturating_sub(usage));
            }
            if read(&base.join(limit_file)).is_some() {
                break;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_rule_takes_the_smallest_limit_within_floor_and_cap() {
        // Plenty of memory: the whole region.
        assert_eq!(budget_rule(256 * MIB, Some(20 << 30), None), 256 * MIB);
        // Half of MemAvailable, half of the cgroup's room.
        assert_eq!(budget_rule(256 * MIB, Some(300 * MIB), None), 150 * MIB);
        assert_eq!(budget_rule(256 * MIB, Some(20 << 30), Some(100 * MIB)), 50 * MIB);
        // Never under the floor (unless the region is smaller), never over the cap.
        assert_eq!(budget_rule(256 * MIB, Some(MIB), Some(MIB)), 16 * MIB);
        assert_eq!(budget_rule(4 * MIB, Some(MIB), None), 4 * MIB);
        assert_eq!(budget_rule(64 << 30, None, None), 8 << 30);
    }

    #[test]
    fn meminfo_and_cgroups_v1_and_v2_are_read() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   23655476 kB\n";
        assert_eq!(mem_available_bytes(meminfo), Some(23_655_476 * 1024));
        assert_eq!(mem_available_bytes("MemTotal: 5 kB\n"), None);

        let files: HashMap<PathBuf, String> = [
            ("/cg/app/memory.max", "1073741824\n"),
            ("/cg/app/memory.current", "268435456\n"),
            ("/cg/memory/box/memory.limit_in_bytes", "536870912\n"),
            ("/cg/memory/box/memory.usage_in_bytes", "0\n"),
            ("/cg/free/memory.max", "max\n"),
            ("/cg/memory/memory.limit_in_bytes", "9223372036854771712\n"),
        ]
        .into_iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect();
        let read = |p: &Path| files.get(p).cloned();
        let root = Path::new("/cg");
        assert_eq!(cgroup_room_bytes("0::/app\n", root, &read), Some(768 << 20));
        assert_eq!(cgroup_room_bytes("4:memory:/box\n1:cpu:/\n", root, &read), Some(512 << 20));
        assert_eq!(cgroup_room_bytes("0::/free\n", root, &read), None, "v2 max: no limit");
        // A v1 path not visible in this namespace: the mount's top, here without a limit.
        assert_eq!(cgroup_room_bytes("4:memory:/elsewhere\n", root, &read), None);
    }

    #[test]
    fn this_machine_gives_a_budget_within_the_bounds() {
        let budget = default_budget_bytes(256 * MIB);
        assert!((16 * MIB..=256 * MIB).contains(&budget), "{budget}");
    }
}
