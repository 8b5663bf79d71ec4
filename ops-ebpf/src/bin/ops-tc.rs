//! TC classifiers for a container group's interface.
//!
//! They observe only: every path returns `TC_ACT_PIPE`, so the packet goes on
//! to the next filter (or the stack) unchanged. A capture must never drop or
//! alter traffic.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::TC_ACT_PIPE,
    macros::{classifier, map},
    maps::PerCpuArray,
    programs::TcContext,
};
use ops_common::tc::{stat_index, Direction, STATS_LEN, STAT_SEEN};

/// Per-CPU counters, see [`ops_common::tc`].
#[map]
static TC_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);

#[classifier]
pub fn ops_tc_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::Ingress)
}

#[classifier]
pub fn ops_tc_egress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::Egress)
}

#[inline(always)]
fn observe(_ctx: &TcContext, direction: Direction) -> i32 {
    count(stat_index(direction, STAT_SEEN));
    TC_ACT_PIPE
}

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = TC_STATS.get_ptr_mut(index) {
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
