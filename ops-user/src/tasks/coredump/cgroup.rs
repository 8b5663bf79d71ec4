//! cgroup v2: where the hierarchy is mounted, and ids.
//!
//! A cgroup's v2 id is the inode number of its directory in the cgroup2
//! file system; it is what `bpf_get_current_cgroup_id` returns.

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// The mount point of the cgroup2 file system (`/sys/fs/cgroup` on a
/// unified host, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn mount_point() -> io::Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    mount_point_in(&mountinfo)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount"))
}

/// The first cgroup2 mount point listed in a mountinfo text.
fn mount_point_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <dev> <root> <mount point> <opts> [tags] - <fstype> ..."
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The directory of a cgroup given as a path relative to the cgroup2 mount,
/// or as an absolute path (under the mount, or relative to it).
pub fn resolve(mount: &Path, cgroup: &Path) -> PathBuf {
    if cgroup.starts_with(mount) {
        return cgroup.to_path_buf();
    }
    let relative = cgroup.strip_prefix("/").unwrap_or(cgroup);
    mount.join(relative)
}

/// The v2 id of the cgroup whose directory is `dir`.
pub fn id_of(dir: &Path) -> io::Result<u64> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a cgroup directory", dir.display()),
        ));
    }
    Ok(meta.ino())
}

/// The ids of a live process's cgroup and of all its ancestors up to the
/// root, leaf first (`/proc/<pid>/cgroup`, the `0::` line).
pub fn ids_of_pid(mount: &Path, pid: u32) -> io::Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 line"))?;
    let mut dir = resolve(mount, Path::new(path.trim()));
    let mut ids = Vec::new();
    loop {
        ids.push(id_of(&dir)?);
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            break;
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_layout() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_point_in(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(mount_point_in("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn resolves_relative_and_absolute_paths() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(resolve(m, Path::new("a/b")), m.join("a/b"));
        assert_eq!(resolve(m, Path::new("/a/b")), m.join("a/b"));
        assert_eq!(
            resolve(m, Path::new("/sys/fs/cgroup/a")),
            PathBuf::from("/sys/fs/cgroup/a")
        );
    }
}
