//! TC classifiers for a container group's interface: count, filter, capture.
//!
//! They observe only: every path returns [`OBSERVE`] (`TC_ACT_UNSPEC`), so the
//! packet goes on to the next program (or the stack) unchanged. A capture
//! must never drop or alter traffic, nor hide it from programs after it.
//!
//! The filter is [`CaptureConfig`], a read-only global written at load time.
//! The verifier sees its fields as constants and removes the checks a
//! capture did not ask for, so the hot path of a packet that does not match
//! is a handful of loads and compares, and nothing leaves the kernel for it.
//!
//! # Why a perf event array and not a ring buffer
//! `bpf_perf_event_output` with the length in `BPF_F_CTXLEN_MASK` lets the
//! kernel copy the skb bytes (linear part and fragments) straight into the
//! per-CPU perf buffer: one copy, any length, no scratch space. A ring buffer
//! needs `bpf_ringbuf_reserve` with a constant size (a 64 KiB reservation for
//! every packet, whatever its size) or a copy into a per-CPU scratch buffer
//! with `bpf_skb_load_bytes` followed by `bpf_ringbuf_output` (two copies).
//! Measured on veth with 1400-byte UDP (see the tcpdump engine's docs), the
//! perf path cost less per captured packet. Its one limit, a `u16` record
//! size, is handled by [`MAX_PERF_CAPTURE`]: longer packets are captured
//! truncated, counted, and keep their real length.
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_CPU, TC_ACT_UNSPEC},
    helpers::{bpf_ktime_get_ns, bpf_perf_event_output},
    macros::{classifier, map},
    maps::{PerCpuArray, PerfEventArray},
    programs::TcContext,
    EbpfContext as _,
};
use ops_common::tc::{
    stat_index, CaptureConfig, Direction, PacketMeta, CFG_ANY_CONDITION, CFG_CAPTURE, CFG_DST_ADDR,
    CFG_DST_PORT, CFG_IPV4, CFG_IPV6, CFG_PROTOCOL, CFG_SRC_ADDR, CFG_SRC_PORT, STATS_LEN,
    STAT_CAPTURED, STAT_LOST, STAT_MATCHED, STAT_SEEN, STAT_TRUNCATED,
};
use ops_ebpf::global;

/// What to match and capture; all zero (count only) unless userspace
/// overrides it.
#[no_mangle]
static CAPTURE_CONFIG: CaptureConfig = CaptureConfig {
    flags: 0,
    protocol: 0,
    src_port: 0,
    dst_port: 0,
    snaplen: 0,
    _pad: 0,
    src_addr: [0; 4],
    src_mask: [0; 4],
    dst_addr: [0; 4],
    dst_mask: [0; 4],
};

/// Per-CPU counters, see [`ops_common::tc`].
#[map]
static TC_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);

/// Captured packets: a [`PacketMeta`] followed by the packet bytes.
#[map]
static PACKETS: PerfEventArray<PacketMeta> = PerfEventArray::new(0);

/// The verdict of every path: "no opinion, carry on".
///
/// `TC_ACT_UNSPEC` (-1) is `TCX_NEXT`: TCX runs the next program of the
/// chain, then the clsact filters, then the stack. cls_bpf in direct-action
/// mode treats it the same way. `TC_ACT_PIPE` would not do under TCX: the
/// kernel's `tcx_run` stops the chain at any verdict other than `TCX_NEXT`,
/// so a second capture (or another tool's program) attached after this one
/// would never see the packet.
const OBSERVE: i32 = TC_ACT_UNSPEC;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ETH_HLEN: usize = 14;
/// The fragment offset bits of IPv4 `frag_off` (network order read as LE).
const IP_OFFSET_MASK: u16 = 0xff1f;

#[classifier]
pub fn ops_tc_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::Ingress)
}

#[classifier]
pub fn ops_tc_egress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::Egress)
}

#[inline(always)]
fn observe(ctx: &TcContext, direction: Direction) -> i32 {
    count(direction, STAT_SEEN);
    let flags = global(&CAPTURE_CONFIG.flags);
    if flags & CFG_ANY_CONDITION != 0 && !matches(ctx, flags).unwrap_or(false) {
        return OBSERVE;
    }
    count(direction, STAT_MATCHED);
    if flags & CFG_CAPTURE != 0 {
        capture(ctx, direction);
    }
    OBSERVE
}

/// Send the packet's first `snaplen` bytes to userspace, and count how that
/// went: every matched packet ends up either captured or lost.
#[inline(always)]
fn capture(ctx: &TcContext, direction: Direction) {
    let len = ctx.len();
    let snaplen = global(&CAPTURE_CONFIG.snaplen);
    let cap_len = if len < snaplen { len } else { snaplen };
    let meta = PacketMeta {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        orig_len: len,
        cap_len,
        direction: direction as u32,
        _pad: 0,
    };
    // The kernel appends `cap_len` skb bytes after `meta` (BPF_F_CTXLEN_MASK
    // is the upper 32 bits of the flags). aya's `output` drops the result,
    // and the result is what loss accounting needs, so call the helper.
    let flags = (u64::from(cap_len) << 32) | BPF_F_CURRENT_CPU;
    // SAFETY: `PACKETS` is a perf event array map (repr(transparent) over its
    // definition), `meta` lives on the stack for the call, and its size is
    // passed with it.
    let ret = unsafe {
        bpf_perf_event_output(
            ctx.as_ptr(),
            core::ptr::addr_of!(PACKETS).cast_mut().cast::<c_void>(),
            flags,
            core::ptr::addr_of!(meta).cast_mut().cast::<c_void>(),
            size_of::<PacketMeta>() as u64,
        )
    };
    if ret != 0 {
        count(direction, STAT_LOST);
        return;
    }
    count(direction, STAT_CAPTURED);
    if cap_len < len {
        count(direction, STAT_TRUNCATED);
    }
}

/// IPv4 header up to the addresses (RFC 791).
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv4Hdr {
    version_ihl: u8,
    tos: u8,
    tot_len: u16,
    id: u16,
    frag_off: u16,
    ttl: u8,
    protocol: u8,
    check: u16,
    saddr: u32,
    daddr: u32,
}

/// IPv6 fixed header (RFC 8200).
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6Hdr {
    vtc_flow: u32,
    payload_len: u16,
    nexthdr: u8,
    hop_limit: u8,
    saddr: [u32; 4],
    daddr: [u32; 4],
}

/// Whether the packet satisfies every configured condition. `Err` (a short
/// packet) is no match.
///
/// Ethernet with at most one 802.1Q/802.1ad tag in the packet bytes (a tag
/// the driver moved to `skb->vlan_tci` is already gone from them). For IPv6
/// only the fixed header is read: a packet whose next header is an extension
/// header has no port and matches no protocol but its first extension.
#[inline(always)]
fn matches(ctx: &TcContext, flags: u32) -> Result<bool, ()> {
    let mut l3 = ETH_HLEN;
    let mut proto = u16::from_be(ctx.load::<u16>(12).map_err(|_| ())?);
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = u16::from_be(ctx.load::<u16>(16).map_err(|_| ())?);
        l3 += 4;
    }
    let (l4_proto, l4) = if proto == ETH_P_IP {
        if flags & CFG_IPV6 != 0 {
            return Ok(false);
        }
        let ip: Ipv4Hdr = ctx.load(l3).map_err(|_| ())?;
        if flags & CFG_SRC_ADDR != 0
            && ip.saddr & global(&CAPTURE_CONFIG.src_mask[0]) != global(&CAPTURE_CONFIG.src_addr[0])
        {
            return Ok(false);
        }
        if flags & CFG_DST_ADDR != 0
            && ip.daddr & global(&CAPTURE_CONFIG.dst_mask[0]) != global(&CAPTURE_CONFIG.dst_addr[0])
        {
            return Ok(false);
        }
        // A later fragment carries no transport header: no port to match.
        if flags & (CFG_SRC_PORT | CFG_DST_PORT) != 0 && ip.frag_off & IP_OFFSET_MASK != 0 {
            return Ok(false);
        }
        (ip.protocol, l3 + usize::from(ip.version_ihl & 0x0f) * 4)
    } else if proto == ETH_P_IPV6 {
        if flags & CFG_IPV4 != 0 {
            return Ok(false);
        }
        let ip: Ipv6Hdr = ctx.load(l3).map_err(|_| ())?;
        if flags & CFG_SRC_ADDR != 0
            && !in_prefix6(
                &ip.saddr,
                &CAPTURE_CONFIG.src_addr,
                &CAPTURE_CONFIG.src_mask,
            )
        {
            return Ok(false);
        }
        if flags & CFG_DST_ADDR != 0
            && !in_prefix6(
                &ip.daddr,
                &CAPTURE_CONFIG.dst_addr,
                &CAPTURE_CONFIG.dst_mask,
            )
        {
            return Ok(false);
        }
        (ip.nexthdr, l3 + size_of::<Ipv6Hdr>())
    } else {
        return Ok(false);
    };
    if flags & CFG_PROTOCOL != 0 && u32::from(l4_proto) != global(&CAPTURE_CONFIG.protocol) {
        return Ok(false);
    }
    if flags & (CFG_SRC_PORT | CFG_DST_PORT) != 0 {
        if l4_proto != IPPROTO_TCP && l4_proto != IPPROTO_UDP {
            return Ok(false);
        }
        // TCP and UDP both start with source then destination port.
        let ports: [u16; 2] = ctx.load(l4).map_err(|_| ())?;
        if flags & CFG_SRC_PORT != 0
            && u32::from(u16::from_be(ports[0])) != global(&CAPTURE_CONFIG.src_port)
        {
            return Ok(false);
        }
        if flags & CFG_DST_PORT != 0
            && u32::from(u16::from_be(ports[1])) != global(&CAPTURE_CONFIG.dst_port)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `(addr & mask) == value` over the four words of an IPv6 address.
#[inline(always)]
fn in_prefix6(addr: &[u32; 4], value: &'static [u32; 4], mask: &'static [u32; 4]) -> bool {
    let mut diff = 0;
    for i in 0..4 {
        diff |= (addr[i] & global(&mask[i])) ^ global(&value[i]);
    }
    diff == 0
}

#[inline(always)]
fn count(direction: Direction, stat: u32) {
    if let Some(counter) = TC_STATS.get_ptr_mut(stat_index(direction, stat)) {
        // SAFETY: per-CPU slot, so no other writer runs concurrently with us
        // (TC programs run with preemption disabled on this CPU).
        unsafe { *counter += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this: it exists only
    // because `no_std` binaries must name a panic handler.
    loop {}
}
