//! cgroup v2 paths and ids.
//!
//! The unified hierarchy is mounted at /sys/fs/cgroup on most systems, and
//! at /sys/fs/cgroup/unified on hybrid ones; the mount table says which.
//! A cgroup's id (what `bpf_get_current_cgroup_id` returns) is the inode
//! number of its directory.

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Where cgroup2 is mounted, from /proc/self/mountinfo.
pub fn mount_point() -> io::Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|line| {
            // `... mount_point opts - fstype source super_opts`
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            left.split_whitespace().nth(4).map(PathBuf::from)
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount"))
}

/// A group's cgroup as a directory: absolute paths under the mount are kept,
/// others are taken relative to the mount. `..` is refused.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cgroup path must not contain `..`",
        ));
    }
    let mount = mount_point()?;
    let full = if path.starts_with(&mount) {
        path.to_owned()
    } else {
        mount.join(path.strip_prefix("/").unwrap_or(path))
    };
    if !full.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no cgroup {}", full.display()),
        ));
    }
    Ok(full)
}

/// The cgroup v2 id of a cgroup directory.
pub fn id(dir: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(dir)?.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_root_and_refuses_dotdot() {
        let Ok(mount) = mount_point() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no cgroup2 mount under CI"
            );
            return;
        };
        assert_eq!(resolve(Path::new("/")).unwrap(), mount);
        assert!(id(&mount).unwrap() > 0);
        assert!(resolve(Path::new("a/../../etc")).is_err());
        assert!(resolve(Path::new("opst-no-such-cgroup")).is_err());
    }
}
