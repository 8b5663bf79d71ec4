//! Crash records: one JSON file per crash next to its core, the engine's
//! record of truth (written by the socket server or by the pipe helper,
//! completed by the exit monitor).

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::notes::CoreNotes;

/// Why a crash has no stored core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoCoreReason {
    /// The process's soft RLIMIT_CORE is 0 (honoured as with a file
    /// pattern, although the kernel pipes the core anyway).
    CoreLimitZero,
    /// The kernel did not dump: the process was not dumpable
    /// (`PR_SET_DUMPABLE` 0, set-id without `suid_dumpable`), the kernel's
    /// concurrency limit was reached, or no handler was reachable.
    NotDumpedByKernel,
    /// More cores than the group's rate limit allows in its interval.
    RateLimited,
    /// The cores of all groups already use `max_use` bytes.
    MaxUse,
    /// Storing would leave less than `keep_free` bytes free.
    KeepFree,
    /// Too many dumps at once (`max_concurrent`).
    ConcurrencyLimit,
    /// The dump did not finish within the handler's time bound.
    Timeout,
    /// Writing the core failed (for instance, the disk is full).
    WriteFailed(String),
}

/// The stored core of a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCore {
    /// File name in the group's directory.
    pub file: String,
    /// Whether the file is zstd-compressed.
    pub zstd: bool,
    /// Uncompressed bytes stored.
    pub size: u64,
    /// Bytes on disk.
    pub stored_size: u64,
    /// Cut at a size limit (`process_size_max`, the space limits or the
    /// process's RLIMIT_CORE): gdb still reads the notes and most stacks.
    pub truncated: bool,
    /// The limit that cut it, when truncated.
    pub truncated_by: Option<String>,
}

/// What the exit monitor saw of the death.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub tid: u32,
    pub signal: i32,
    pub si_code: i32,
    /// `task_struct->exit_code`; `0x80` (WCOREFLAG) set when a core was
    /// dumped; -1 when unknown.
    pub exit_code: i32,
    pub core_dumped: Option<bool>,
    pub comm: String,
    pub cgroup_id: u64,
    /// CLOCK_MONOTONIC of the exit.
    pub ktime_ns: u64,
}

/// One crash of a process of a container group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// `<time>-<pid>`, also the stem of the files.
    pub id: String,
    pub group_id: String,
    /// Seconds since the epoch (the kernel's `%t`, or arrival).
    pub time: u64,
    /// Pid in the initial pid namespace, and in the process's own.
    pub pid: u32,
    pub pid_ns: Option<u32>,
    pub tid: Option<u32>,
    pub signal: Option<i32>,
    pub si_code: Option<i32>,
    pub fault_addr: Option<u64>,
    pub pc: Option<u64>,
    pub sp: Option<u64>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// cgroup v2 id of the process (leaf).
    pub cgroup_id: Option<u64>,
    /// Files mapped into the process (NT_FILE).
    pub mapped_files: Vec<String>,
    pub threads: Option<u32>,
    /// How the core arrived: "socket", "pipe", or none.
    pub via: Option<String>,
    /// Bytes of core the kernel sent (read before any limit applied).
    pub received_size: u64,
    pub core: Option<StoredCore>,
    pub no_core_reason: Option<NoCoreReason>,
    /// The copy written inside the container (per-group CorePattern).
    pub container_copy: Option<String>,
    pub container_copy_error: Option<String>,
    pub exit: Option<ExitInfo>,
}

impl CrashRecord {
    /// Fill the fields the notes know and the caller did not.
    pub fn apply_notes(&mut self, notes: &CoreNotes) {
        self.signal = self.signal.or(notes.signal);
        self.si_code = self.si_code.or(notes.si_code);
        self.fault_addr = notes.fault_addr;
        self.pc = notes.pc;
        self.sp = notes.sp;
        self.tid = self.tid.or(notes.tid);
        self.comm = self.comm.take().or_else(|| notes.comm.clone());
        if self.cmdline.is_empty() {
            if let Some(args) = &notes.args {
                self.cmdline = args.split(' ').map(str::to_owned).collect();
            }
        }
        self.mapped_files = notes.mapped_files.clone();
        self.threads = Some(notes.threads);
    }

    pub fn path_in(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    /// Write (or replace) the record atomically, mode 0600.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(&Self::path_in(dir, &self.id), &bytes)
    }

    pub fn load(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Every record in a group directory, oldest first.
    pub fn load_all(dir: &Path) -> Vec<Self> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut records: Vec<Self> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| match Self::load(&e.path()) {
                Ok(r) => Some(r),
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), "unreadable crash record: {err}");
                    None
                }
            })
            .collect();
        records.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        records
    }

    /// The record of `pid` written within `window` seconds of `time`.
    pub fn find(dir: &Path, pid: u32, time: u64, window: u64) -> Option<Self> {
        let suffix = format!("-{pid}.json");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .filter_map(|e| Self::load(&e.path()).ok())
            .filter(|r| r.pid == pid && r.time.abs_diff(time) <= window)
            .max_by_key(|r| r.time)
    }
}

pub use crate::files::write_atomic;
