//! Settings of the coredump engine (the `[coredump]` table of the daemon's
//! configuration).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Storage and admission limits, with defaults like systemd-coredump's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest core stored per crash, uncompressed (`ProcessSizeMax`); a
    /// larger one is cut and marked truncated.
    pub process_size_max: u64,
    /// All stored cores together stay under this many bytes (`MaxUse`);
    /// 0 means 10% of the data directory's file system.
    pub max_use: u64,
    /// Keep this many bytes free on that file system (`KeepFree`); 0 means
    /// 15% of it.
    pub keep_free: u64,
    /// Dumps handled at once; also written to `core_pipe_limit` in pipe
    /// mode, which makes the kernel wait for the helper.
    pub max_concurrent: u32,
    /// At most `rate_burst` cores per group per `rate_interval_secs`; the
    /// crashes beyond get a record without a core.
    pub rate_burst: u32,
    pub rate_interval_secs: u64,
    /// Upper bound on the time spent on one dump: a full or slow disk must
    /// not keep the crashing process alive forever.
    pub dump_timeout_secs: u64,
    /// zstd level of stored cores; 0 stores them uncompressed.
    pub zstd_level: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            process_size_max: 2 << 30,
            max_use: 0,
            keep_free: 0,
            max_concurrent: 16,
            rate_burst: 10,
            rate_interval_secs: 60,
            dump_timeout_secs: 60,
            zstd_level: 1,
        }
    }
}

/// Which transport the kernel uses to hand us cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeChoice {
    /// The coredump socket where the kernel has it (6.16+), else the pipe.
    #[default]
    Auto,
    Socket,
    Pipe,
}

impl ModeChoice {
    /// The choice, with `OPS_COREDUMP_MODE` (auto|socket|pipe) overriding.
    pub fn with_env(self) -> Self {
        match std::env::var("OPS_COREDUMP_MODE").as_deref() {
            Ok("socket") => Self::Socket,
            Ok("pipe") => Self::Pipe,
            Ok("auto") => Self::Auto,
            _ => self,
        }
    }
}

/// The `[coredump]` configuration table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoredumpSettings {
    pub mode: ModeChoice,
    /// The `ops` binary the pipe pattern runs; default: the running one.
    pub handler_exe: Option<PathBuf>,
    /// Minimum seconds between two settings of one group's state.
    pub min_interval_secs: u64,
    /// Storage and admission limits (`[coredump.limits]`).
    pub limits: Limits,
}
