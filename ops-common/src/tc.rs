//! The TC classifiers' wire types: per-direction statistics, the capture
//! configuration userspace writes into the object before loading it, and the
//! header of each captured packet.
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

    /// The direction a [`PacketMeta::direction`] names, if valid.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Ingress),
            1 => Some(Self::Egress),
            _ => None,
        }
    }
}

/// Every packet the program ran for, matched or not.
pub const STAT_SEEN: u32 = 0;
/// Packets that satisfied every condition of the filter.
pub const STAT_MATCHED: u32 = 1;
/// Matched packets handed to the ring buffer.
pub const STAT_CAPTURED: u32 = 2;
/// Matched packets the ring buffer refused (full): lost, and counted here
/// so that `matched == captured + lost` holds exactly.
pub const STAT_LOST: u32 = 3;
/// Captured packets carrying fewer bytes than their length (snaplen).
pub const STAT_TRUNCATED: u32 = 4;
/// Number of counters per direction.
pub const STATS_PER_DIRECTION: u32 = 5;
/// Entries in the `TC_STATS` map.
pub const STATS_LEN: u32 = STATS_PER_DIRECTION * Direction::ALL.len() as u32;

/// Index of `stat` for `direction` in the `TC_STATS` per-CPU array.
#[inline(always)]
pub const fn stat_index(direction: Direction, stat: u32) -> u32 {
    direction as u32 * STATS_PER_DIRECTION + stat
}

// --- Capture configuration: `CaptureConfig::flags` bits ---

/// Send matching packets to userspace. Without it the programs only count
/// (what a plain attach, with the default configuration, does).
pub const CFG_CAPTURE: u32 = 1 << 0;
/// Only IPv4 packets match.
pub const CFG_IPV4: u32 = 1 << 1;
/// Only IPv6 packets match.
pub const CFG_IPV6: u32 = 1 << 2;
/// The IP protocol must equal [`CaptureConfig::protocol`].
pub const CFG_PROTOCOL: u32 = 1 << 3;
/// The source address, masked, must equal [`CaptureConfig::src_addr`].
pub const CFG_SRC_ADDR: u32 = 1 << 4;
/// The destination address, masked, must equal [`CaptureConfig::dst_addr`].
pub const CFG_DST_ADDR: u32 = 1 << 5;
/// The TCP/UDP source port must equal [`CaptureConfig::src_port`].
pub const CFG_SRC_PORT: u32 = 1 << 6;
/// The TCP/UDP destination port must equal [`CaptureConfig::dst_port`].
pub const CFG_DST_PORT: u32 = 1 << 7;
/// Any condition at all: without one of these, every packet matches and the
/// headers are not even read.
pub const CFG_ANY_CONDITION: u32 =
    CFG_IPV4 | CFG_IPV6 | CFG_PROTOCOL | CFG_SRC_ADDR | CFG_DST_ADDR | CFG_SRC_PORT | CFG_DST_PORT;

/// Largest number of packet bytes one packet record carries: tcpdump's
/// `MAXIMUM_SNAPLEN`, the largest `Snaplen` the API accepts. Packets are
/// only ever cut by the snaplen, never by the transport (a GSO or BIG TCP
/// super-packet under it is captured whole).
pub const MAX_CAPTURE: u32 = 262_144;

/// What the classifiers match and how much they capture. One read-only
/// global (`CAPTURE_CONFIG` in `ops-tc`), written by userspace at load time,
/// so the verifier sees constants and prunes every disabled check.
///
/// Addresses and masks are the packet's bytes in network order, read as
/// native `u32` words (IPv4 uses word 0 only), so a match is
/// `(addr & mask) == value` on the words the packet holds, with no byte
/// swapping in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureConfig {
    /// `CFG_*` bits.
    pub flags: u32,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    pub protocol: u32,
    /// Ports in host order (`u32` instead of `u16`, so there is no padding).
    pub src_port: u32,
    pub dst_port: u32,
    /// Bytes per packet to capture, at most [`MAX_CAPTURE`].
    pub snaplen: u32,
    /// Explicit padding so the arrays start at an 8-byte boundary.
    pub _pad: u32,
    pub src_addr: [u32; 4],
    pub src_mask: [u32; 4],
    pub dst_addr: [u32; 4],
    pub dst_mask: [u32; 4],
}

const _: () = assert!(size_of::<CaptureConfig>() == 88);

/// Header of every captured packet; `cap_len` packet bytes follow it in the
/// same ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub ktime_ns: u64,
    /// The packet's length (`skb->len`), which may exceed `cap_len`.
    pub orig_len: u32,
    /// Packet bytes that follow this header.
    pub cap_len: u32,
    /// A [`Direction`] as `u32`.
    pub direction: u32,
    /// A VLAN tag the driver took out of the packet bytes (acceleration):
    /// `proto << 16 | tci`, 0 for none. Userspace puts it back.
    pub vlan: u32,
}

const _: () = assert!(size_of::<PacketMeta>() == 24);

impl PacketMeta {
    /// The VLAN tag to insert after the MAC addresses, if any.
    pub const fn vlan_tag(&self) -> Option<[u8; 4]> {
        if self.vlan == 0 {
            return None;
        }
        let [p0, p1, t0, t1] = self.vlan.to_be_bytes();
        Some([p0, p1, t0, t1])
    }

    /// Read the header at the start of a ring buffer record.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: PacketMeta is plain `repr(C)` integers, every bit pattern
        // is valid; the length was checked and read_unaligned copes with any
        // alignment.
        Some(unsafe { bytes.as_ptr().cast::<Self>().read_unaligned() })
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `repr(C)` integers with explicit padding; every bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::CaptureConfig {}
    unsafe impl aya::Pod for super::PacketMeta {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_indices_are_distinct_and_in_range() {
        let mut seen = [false; STATS_LEN as usize];
        for d in Direction::ALL {
            for s in [
                STAT_SEEN,
                STAT_MATCHED,
                STAT_CAPTURED,
                STAT_LOST,
                STAT_TRUNCATED,
            ] {
                let i = stat_index(d, s);
                assert!(i < STATS_LEN);
                assert!(!seen[i as usize], "{d:?} {s}");
                seen[i as usize] = true;
            }
        }
    }

    #[test]
    fn packet_meta_round_trips_through_bytes() {
        let meta = PacketMeta {
            ktime_ns: 123_456_789,
            orig_len: 65226,
            cap_len: 1500,
            direction: Direction::Egress as u32,
            vlan: 0x8100_0064,
        };
        // SAFETY: PacketMeta is repr(C) plain data without implicit padding.
        let bytes: [u8; 24] = unsafe { core::mem::transmute(meta) };
        let mut sample = [0u8; 40];
        sample[..24].copy_from_slice(&bytes);
        assert_eq!(PacketMeta::from_bytes(&sample), Some(meta));
        assert_eq!(PacketMeta::from_bytes(&sample[..23]), None);
        assert_eq!(Direction::from_u32(meta.direction), Some(Direction::Egress));
        assert_eq!(Direction::from_u32(7), None);
    }
}
