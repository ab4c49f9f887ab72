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

/// The default budget for a region of `region_bytes`, from MemAvailable and the room under
/// the process's memory cgroup ([`crate::system_memory`]). Unknown figures count as "no limit".
pub fn default_budget_bytes(region_bytes: u64) -> u64 {
    let room = crate::system_memory::read_memory_room();
    budget_rule(region_bytes, room.mem_available_bytes, room.cgroup_room_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn this_machine_gives_a_budget_within_the_bounds() {
        let budget = default_budget_bytes(256 * MIB);
        assert!((16 * MIB..=256 * MIB).contains(&budget), "{budget}");
    }
}
