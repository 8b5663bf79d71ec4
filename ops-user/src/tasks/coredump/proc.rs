//! What /proc says about a crashing process. The kernel keeps the process
//! (and its /proc entry) alive while it dumps, so this is read before the
//! dump is acknowledged.

use std::path::Path;

use super::cgroup;

#[derive(Clone, Debug, Default)]
pub struct ProcInfo {
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Pid and tid in the process's own pid namespace (last `NSpid`).
    pub pid_ns: Option<u32>,
    /// Soft RLIMIT_CORE; `u64::MAX` for unlimited.
    pub core_limit: Option<u64>,
    /// cgroup v2 ids, leaf first, up to the root.
    pub cgroup_ids: Vec<u64>,
}

impl ProcInfo {
    /// Best effort: each field is `None` (or empty) when unreadable.
    pub fn read(cgroup_mount: Option<&Path>, pid: u32) -> Self {
        let dir = format!("/proc/{pid}");
        let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
        let field = |name: &str| -> Option<Vec<u32>> {
            let line = status.lines().find_map(|l| l.strip_prefix(name))?;
            Some(
                line.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect(),
            )
        };
        Self {
            comm: std::fs::read_to_string(format!("{dir}/comm"))
                .ok()
                .map(|c| c.trim_end_matches('\n').to_owned()),
            exe: std::fs::read_link(format!("{dir}/exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            cmdline: std::fs::read(format!("{dir}/cmdline"))
                .map(|b| {
                    b.split(|&c| c == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            uid: field("Uid:").and_then(|v| v.first().copied()),
            gid: field("Gid:").and_then(|v| v.first().copied()),
            pid_ns: field("NSpid:").and_then(|v| v.last().copied()),
            core_limit: std::fs::read_to_string(format!("{dir}/limits"))
                .ok()
                .and_then(|l| core_limit_in(&l)),
            cgroup_ids: cgroup_mount
                .and_then(|m| cgroup::ids_of_pid(m, pid).ok())
                .unwrap_or_default(),
        }
    }
}

/// The soft "Max core file size" of a /proc/<pid>/limits text.
pub fn core_limit_in(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_core_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max core file size        0                    unlimited            bytes\n";
        assert_eq!(core_limit_in(text), Some(0));
        let text = "Max core file size        unlimited            unlimited            bytes\n";
        assert_eq!(core_limit_in(text), Some(u64::MAX));
    }

    #[test]
    fn reads_our_own_process() {
        let me = ProcInfo::read(None, std::process::id());
        assert!(me.exe.is_some());
        assert!(!me.cmdline.is_empty());
        assert!(me.core_limit.is_some());
    }
}
