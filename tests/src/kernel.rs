//! What the running kernel offers, so that a test takes the path this kernel
//! supports and says which one it took. `cargo xtask vm-test` runs the suite
//! on Debian's 6.1 LTS kernel as well as on the host's.

use std::fmt::Display;

/// `uname -r`, e.g. `6.1.0-57-cloud-amd64`.
pub fn release() -> String {
    let uts = nix::sys::utsname::uname().expect("uname");
    uts.release().to_string_lossy().into_owned()
}

/// (major, minor) of the running kernel.
pub fn version() -> (u32, u32) {
    let release = release();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// TCX (BPF links on the TC hooks, `CONFIG_NET_XGRESS`) exists from 6.6.
/// Older kernels reject TCX attach and TCX queries with EINVAL.
pub fn has_tcx() -> bool {
    version() >= (6, 6)
}

/// Say which mechanism a test exercised on this kernel, as one line
/// `ops-path: <what> = <how> (kernel <release>)` on stderr. The VM runner
/// repeats these lines in its summary.
pub fn report_path(what: &str, how: impl Display) {
    eprintln!("ops-path: {what} = {how} (kernel {})", release());
}

/// The coredump socket (`core_pattern = @path`) exists from 6.16; the
/// kernel then lists `socket` in `/proc/sys/kernel/core_modes` (a file
/// older kernels do not have).
pub fn has_core_socket() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/core_modes")
        .is_ok_and(|modes| modes.split_whitespace().any(|m| m == "socket"))
}
