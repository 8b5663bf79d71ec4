//! Shared helpers of the kernel-side programs of the ops node daemon.
//!
//! Each program family is its own binary, so each loads only its own maps:
//! - `ops-tc` (src/bin/ops-tc.rs): classifiers for a container group's
//!   interface, loaded once per capture so captures never share maps;
//! - `ops-exit` (src/bin/ops-exit.rs): tracepoints that report deaths by
//!   core-dumping signals, loaded once per daemon.
//!
//! Entry points are thin wrappers around `try_*` bodies.
#![no_std]

/// Read a read-only global that userspace set at load time with
/// `EbpfLoader::override_global`. The volatile read keeps LLVM from folding
/// the compile-time default into the code.
#[inline(always)]
pub fn global<T: Copy>(value: &'static T) -> T {
    // SAFETY: `value` is a valid static; volatile only prevents folding.
    unsafe { core::ptr::read_volatile(value) }
}
