//! Per-direction packet statistics kept by the TC programs.
//!
//! The counters live in a per-CPU array (there is no atomic fetch-add for
//! bpfel in aya-ebpf), indexed by [`stat_index`]; userspace sums the CPUs.

/// Which hook of the interface saw the packet. Passed to the shared TC body
/// as a parameter, so ingress and egress run the same code.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress = 0,
    Egress = 1,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];
}

/// Every packet the program ran for, matched or not.
pub const STAT_SEEN: u32 = 0;
/// Number of counters per direction.
pub const STATS_PER_DIRECTION: u32 = 1;
/// Entries in the `TC_STATS` map.
pub const STATS_LEN: u32 = STATS_PER_DIRECTION * Direction::ALL.len() as u32;

/// Index of `stat` for `direction` in the `TC_STATS` per-CPU array.
#[inline(always)]
pub const fn stat_index(direction: Direction, stat: u32) -> u32 {
    direction as u32 * STATS_PER_DIRECTION + stat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_indices_are_distinct_and_in_range() {
        let a = stat_index(Direction::Ingress, STAT_SEEN);
        let b = stat_index(Direction::Egress, STAT_SEEN);
        assert_ne!(a, b);
        assert!(a < STATS_LEN && b < STATS_LEN);
    }
}
