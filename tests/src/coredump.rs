//! Helpers of the coredump tests: a crasher with symbols, test cgroups, a
//! guard that restores `core_pattern` even when a test panics, and the
//! `ops` binary.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::{Mutex, MutexGuard},
};

use crate::sh;

/// Serializes the tests that touch the machine-wide `core_pattern`.
pub fn core_pattern_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
pub const CORE_PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";

pub fn read_sysctl(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Puts `core_pattern` and `core_pipe_limit` back as they were, on drop.
pub struct SysctlGuard {
    pub pattern: String,
    pub pipe_limit: String,
}

impl SysctlGuard {
    pub fn new() -> Self {
        Self {
            pattern: read_sysctl(CORE_PATTERN),
            pipe_limit: read_sysctl(CORE_PIPE_LIMIT),
        }
    }

    /// Whether both are byte-identical to what they were.
    pub fn unchanged(&self) -> bool {
        read_sysctl(CORE_PATTERN) == self.pattern && read_sysctl(CORE_PIPE_LIMIT) == self.pipe_limit
    }
}

impl Default for SysctlGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl SysctlGuard {
    /// Put the saved values back now (also done on drop).
    pub fn restore(&self) {
        let _ = std::fs::write(CORE_PATTERN, self.pattern.trim_end_matches('\n'));
        let _ = std::fs::write(CORE_PIPE_LIMIT, self.pipe_limit.trim_end_matches('\n'));
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        self.restore();
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("opst-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cgroup v2 created for a test (`opst-<pid>-<tag>` under the cgroup2
/// mount); removed on drop, once its processes are gone.
pub struct TestCgroup {
    pub dir: PathBuf,
}

impl TestCgroup {
    pub fn new(tag: &str) -> Self {
        let mount = ops_user::tasks::coredump::cgroup::mount_point().expect("cgroup2 mount");
        let dir = mount.join(format!("opst-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Self { dir }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The crasher's source; the VM runner compiles the same file on the host,
/// since the guest has no compiler.
const CRASHER_C: &str = include_str!("../crasher.c");

/// Build the crasher (`gcc -g -O0`) into `dir`, or copy the one prebuilt
/// from the same source that `OPS_CRASHER` names (in the VM).
pub fn build_crasher(dir: &Path) -> PathBuf {
    let src = dir.join("crasher.c");
    let exe = dir.join("crasher");
    if let Some(prebuilt) = std::env::var_os("OPS_CRASHER") {
        std::fs::copy(&prebuilt, &exe).expect("copy the prebuilt crasher");
        return exe;
    }
    std::fs::write(&src, CRASHER_C).unwrap();
    sh(&[
        "gcc",
        "-g",
        "-O0",
        "-o",
        exe.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    exe
}

/// Run `exe args` inside `cgroup` (if any), with an unlimited RLIMIT_CORE
/// and `cwd`; returns (pid, exit status).
pub fn run_in(cgroup: Option<&Path>, cwd: &Path, exe: &Path, args: &[&str]) -> (u32, ExitStatus) {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(cwd);
    let procs = cgroup.map(|c| c.join("cgroup.procs"));
    // SAFETY: the closure only makes raw syscalls (open/write/setrlimit)
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
            if let Some(procs) = &procs {
                std::fs::write(procs, "0")?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    (pid, child.wait().unwrap())
}

pub use crate::daemon::ops_bin as ops_binary;
