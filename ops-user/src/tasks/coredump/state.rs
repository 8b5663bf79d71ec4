//! The engine's persisted state: what `core_pattern` was before we took it,
//! what we installed, and which groups are enabled. The pipe helper reads it
//! (the daemon may be down), and the next daemon start restores from it
//! after a crash.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{config::Limits, record::write_atomic};

/// How cores reach us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `@/path`: the kernel connects to the daemon's socket (6.16+).
    Socket,
    /// `|ops core-handler ...`: the kernel runs our helper.
    Pipe,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::Pipe => "pipe",
        }
    }
}

/// One enabled container group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The cgroup v2 directory.
    pub cgroup_dir: PathBuf,
    pub cgroup_id: u64,
    /// Also write each core inside the container at this pattern.
    pub core_pattern: Option<String>,
}

/// Everything a core handler needs, and what restores the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// `core_pattern` and `core_pipe_limit` as found, without the trailing
    /// newline of their /proc files.
    pub previous_pattern: String,
    pub previous_pipe_limit: String,
    /// What we wrote to `core_pattern`.
    pub installed_pattern: String,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub groups: BTreeMap<String, GroupState>,
}

pub const STATE_FILE: &str = "state.json";

pub fn path(engine_dir: &Path) -> PathBuf {
    engine_dir.join(STATE_FILE)
}

impl State {
    pub fn save(&self, engine_dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(&path(engine_dir), &bytes)
    }

    /// The persisted state, `None` if there is none.
    pub fn load(engine_dir: &Path) -> io::Result<Option<Self>> {
        match std::fs::read(path(engine_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn remove(engine_dir: &Path) -> io::Result<()> {
        match std::fs::remove_file(path(engine_dir)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The enabled group a process belongs to, given its cgroup ids (leaf
    /// first).
    pub fn group_of(&self, cgroup_ids: &[u64]) -> Option<(&String, &GroupState)> {
        cgroup_ids
            .iter()
            .find_map(|id| self.groups.iter().find(|(_, g)| g.cgroup_id == *id))
    }
}
