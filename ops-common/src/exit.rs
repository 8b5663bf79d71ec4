//! Abnormal process exits, as reported by the exit tracepoints.
//!
//! `signal:signal_deliver` notes a core-dumping signal that is about to take
//! its default action; `sched:sched_process_exit` of the same thread then
//! emits one [`ExitEvent`] with the exit code the kernel recorded.

/// Signals whose default action is to dump core (`SIG_KERNEL_COREDUMP_MASK`
/// in include/linux/signal.h), as a bit mask indexed by signal number:
/// QUIT, ILL, TRAP, ABRT, BUS, FPE, SEGV, XCPU, XFSZ, SYS.
pub const COREDUMP_SIGNALS: u64 = (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 11)
    | (1 << 24)
    | (1 << 25)
    | (1 << 31);

/// Whether `sig` dumps core by default. Branch-free, so the verifier and the
/// hot path see one shift and one mask.
#[inline(always)]
pub const fn is_coredump_signal(sig: i32) -> bool {
    (sig as u32) < 64 && (COREDUMP_SIGNALS >> (sig as u32 & 63)) & 1 == 1
}

/// `exit_code` is unknown: the kernel's `task_struct` layout could not be
/// read from BTF, so the program did not look.
pub const EXIT_CODE_UNKNOWN: i32 = -1;

/// Bit set in a signal exit code when a core was dumped (`WCOREFLAG`).
pub const WCOREFLAG: i32 = 0x80;

/// What the kernel remembers between the signal and the exit of one thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingExit {
    pub sig: i32,
    /// `si_code`: e.g. SEGV_MAPERR, or SI_USER/SI_TKILL for a sent signal.
    pub si_code: i32,
    /// The enabled cgroup (the task's own or an ancestor) that matched.
    pub group_cgroup_id: u64,
}

const _: () = assert!(size_of::<PendingExit>() == 16);

/// One thread killed by a core-dumping signal.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitEvent {
    /// Monotonic time of the exit (`bpf_ktime_get_ns`).
    pub ktime_ns: u64,
    /// cgroup v2 id of the dying task.
    pub cgroup_id: u64,
    /// cgroup v2 id of the enabled group it belongs to: `cgroup_id` itself or
    /// an ancestor (equal to `cgroup_id` when every task is reported).
    pub group_cgroup_id: u64,
    /// Thread group id: the process.
    pub pid: u32,
    /// The thread that took the signal.
    pub tid: u32,
    pub sig: i32,
    pub si_code: i32,
    /// `task_struct->exit_code`: `sig | WCOREFLAG` when a core was written,
    /// or [`EXIT_CODE_UNKNOWN`].
    pub exit_code: i32,
    /// Explicit padding so the layout has no implicit holes.
    pub _pad: u32,
    pub comm: [u8; 16],
}

const _: () = assert!(size_of::<ExitEvent>() == 64);

impl ExitEvent {
    /// Whether the kernel reported that a core was dumped.
    pub const fn core_dumped(&self) -> Option<bool> {
        if self.exit_code == EXIT_CODE_UNKNOWN {
            None
        } else {
            Some(self.exit_code & WCOREFLAG != 0)
        }
    }

    /// The command name up to its NUL.
    pub fn comm(&self) -> &[u8] {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        &self.comm[..end]
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `repr(C)` integers with explicit padding; every bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::ExitEvent {}
    unsafe impl aya::Pod for super::PendingExit {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coredump_signals_match_the_kernel_table() {
        for sig in [3, 4, 5, 6, 7, 8, 11, 24, 25, 31] {
            assert!(is_coredump_signal(sig), "{sig}");
        }
        for sig in [-1, 0, 1, 2, 9, 10, 12, 13, 14, 15, 17, 19, 30, 32, 64, 200] {
            assert!(!is_coredump_signal(sig), "{sig}");
        }
    }

    #[test]
    fn exit_event_round_trips_through_bytes() {
        let ev = ExitEvent {
            ktime_ns: 1,
            cgroup_id: 2,
            group_cgroup_id: 5,
            pid: 3,
            tid: 4,
            sig: 11,
            si_code: 1,
            exit_code: 11 | WCOREFLAG,
            _pad: 0,
            comm: *b"crasher\0\0\0\0\0\0\0\0\0",
        };
        // SAFETY: ExitEvent is repr(C) plain data without implicit padding.
        let bytes: [u8; 64] = unsafe { core::mem::transmute(ev) };
        // SAFETY: same type, same size; read_unaligned copes with the byte
        // array's alignment.
        let back: ExitEvent = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!(back, ev);
        assert_eq!(back.comm(), b"crasher");
        assert_eq!(back.core_dumped(), Some(true));
    }
}
