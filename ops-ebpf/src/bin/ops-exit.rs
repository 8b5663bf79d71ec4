//! Deaths by core-dumping signals.
//!
//! `signal:signal_deliver` fires in the receiving thread once the kernel has
//! chosen the action for a dequeued signal (kernel/signal.c, `get_signal`).
//! When that action is the default one (`SIG_DFL`) for a signal in
//! `SIG_KERNEL_COREDUMP_MASK`, the thread group is going to dump core (or try
//! to) and exit. We remember the signal per thread; `sched:sched_process_exit`
//! of that thread then emits the event with the final `exit_code`.
//!
//! A handled signal (a Rust program's SIGSEGV handler, say) has a non-default
//! handler and is ignored; the re-raised signal that kills is not.
//!
//! Only tasks of enabled cgroups (v2 ids in `ENABLED_CGROUPS`) or of their
//! descendants are followed (a container group's containers are child
//! cgroups), unless userspace loaded the object with `REPORT_ALL` set. The
//! cgroup walk comes after the two cheap signal checks, so an ordinary
//! signal costs no map lookup at all.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_comm,
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, RingBuf},
    programs::TracePointContext,
};
use aya_log_ebpf::debug;
use ops_common::exit::{is_coredump_signal, ExitEvent, PendingExit, EXIT_CODE_UNKNOWN};

use ops_ebpf::global;

/// Offset of `exit_code` in `struct task_struct`, from the running kernel's
/// BTF. Zero means unknown: the event then carries `EXIT_CODE_UNKNOWN`.
#[no_mangle]
static TASK_EXIT_CODE_OFFSET: u32 = 0;

/// Signals seen, per thread id, until that thread exits. LRU so that a thread
/// that never exits (an unkillable pid-namespace init) cannot fill the map.
#[map]
static PENDING_EXITS: LruHashMap<u32, PendingExit> = LruHashMap::with_max_entries(16384, 0);

/// Non-zero: report every task, whatever its cgroup (tests, diagnostics).
#[no_mangle]
static REPORT_ALL: u32 = 0;

/// cgroup v2 ids (`bpf_get_current_cgroup_id`, the inode number of the
/// cgroup directory) whose deaths are reported. The value is unused.
#[map]
static ENABLED_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);

#[map]
static EXIT_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

// Field offsets from /sys/kernel/tracing/events/signal/signal_deliver/format;
// stable since the tracepoint was added (v3.x) and identical on 6.1 and 6.18.
const SIGNAL_DELIVER_SIG: usize = 8;
const SIGNAL_DELIVER_CODE: usize = 16;
const SIGNAL_DELIVER_SA_HANDLER: usize = 24;
/// `SIG_DFL` is handler value 0.
const SIG_DFL: u64 = 0;

#[tracepoint]
pub fn ops_signal_deliver(ctx: TracePointContext) -> u32 {
    match try_signal_deliver(&ctx) {
        Ok(()) | Err(()) => 0,
    }
}

/// Deepest cgroup level looked at; container runtimes nest a few levels.
const MAX_CGROUP_DEPTH: i32 = 16;

/// The enabled cgroup the current task is in (itself or an ancestor), or
/// `None`. With `REPORT_ALL`, the task's own cgroup.
#[inline(always)]
fn enabled_cgroup() -> Option<u64> {
    // SAFETY: helper call without arguments.
    let own = unsafe { bpf_get_current_cgroup_id() };
    if global(&REPORT_ALL) != 0 {
        return Some(own);
    }
    // Level 0 is the root; past the task's own level the helper returns 0.
    for level in 0..MAX_CGROUP_DEPTH {
        // SAFETY: any level is valid input.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == 0 {
            break;
        }
        if ENABLED_CGROUPS.get_ptr(id).is_some() {
            return Some(id);
        }
    }
    None
}

fn try_signal_deliver(ctx: &TracePointContext) -> Result<(), ()> {
    // SAFETY: offsets are within the tracepoint record (see format above).
    let sig: i32 = unsafe { ctx.read_at(SIGNAL_DELIVER_SIG) }.map_err(|_| ())?;
    if !is_coredump_signal(sig) {
        return Ok(());
    }
    // SAFETY: as above.
    let handler: u64 = unsafe { ctx.read_at(SIGNAL_DELIVER_SA_HANDLER) }.map_err(|_| ())?;
    if handler != SIG_DFL {
        return Ok(());
    }
    let Some(group_cgroup_id) = enabled_cgroup() else {
        return Ok(());
    };
    // SAFETY: as above.
    let si_code: i32 = unsafe { ctx.read_at(SIGNAL_DELIVER_CODE) }.map_err(|_| ())?;
    let tid = bpf_get_current_pid_tgid() as u32;
    PENDING_EXITS
        .insert(
            tid,
            PendingExit {
                sig,
                si_code,
                group_cgroup_id,
            },
            0,
        )
        .map_err(|_| ())?;
    debug!(ctx, "fatal signal {} for tid {}", sig, tid);
    Ok(())
}

#[tracepoint]
pub fn ops_process_exit(ctx: TracePointContext) -> u32 {
    match try_process_exit(&ctx) {
        Ok(()) | Err(()) => 0,
    }
}

fn try_process_exit(ctx: &TracePointContext) -> Result<(), ()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let pending = match unsafe { PENDING_EXITS.get(tid) } {
        Some(pending) => *pending,
        None => return Ok(()),
    };
    let _ = PENDING_EXITS.remove(tid);

    let event = ExitEvent {
        // SAFETY (both): helper calls without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        group_cgroup_id: pending.group_cgroup_id,
        pid: (pid_tgid >> 32) as u32,
        tid,
        sig: pending.sig,
        si_code: pending.si_code,
        exit_code: read_exit_code(),
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    EXIT_EVENTS.output::<ExitEvent>(&event, 0).map_err(|_| ())?;
    debug!(
        ctx,
        "exit of pid {} tid {} by signal {}", event.pid, tid, event.sig
    );
    Ok(())
}

/// `current->exit_code`, set by `do_exit` before the tracepoint fires.
#[inline(always)]
fn read_exit_code() -> i32 {
    let offset = global(&TASK_EXIT_CODE_OFFSET);
    if offset == 0 {
        return EXIT_CODE_UNKNOWN;
    }
    // SAFETY: bpf_get_current_task has no preconditions; the pointer is only
    // dereferenced through bpf_probe_read_kernel, which tolerates bad ones.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        bpf_probe_read_kernel(task.add(offset as usize) as *const i32).unwrap_or(EXIT_CODE_UNKNOWN)
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this: it exists only
    // because `no_std` binaries must name a panic handler.
    loop {}
}
