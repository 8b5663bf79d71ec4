//! Network namespaces: naming them and running code inside them.
//!
//! `setns(CLONE_NEWNET)` changes only the calling thread. Work that must run
//! in a namespace (interface lookup, netlink attach and detach) therefore
//! runs on a short-lived scoped thread, which is discarded afterwards: no
//! thread of a pool is ever left in the wrong namespace, even on panic.

use std::{
    fs::File,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::Arc,
};

use nix::sched::{setns, CloneFlags};

use super::EbpfError;

/// Where `ip netns add NAME` bind-mounts namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// An open handle on a network namespace. Holding it keeps the namespace
/// alive, so a detach can still enter it after its last process is gone.
#[derive(Clone, Debug)]
pub struct Netns {
    path: PathBuf,
    file: Arc<File>,
}

impl Netns {
    /// Open a namespace by `ip netns` name or by path (`/proc/PID/ns/net`, a
    /// bind mount).
    pub fn open(name_or_path: &str) -> Result<Self, EbpfError> {
        let path = if name_or_path.contains('/') {
            PathBuf::from(name_or_path)
        } else {
            Path::new(NETNS_RUN_DIR).join(name_or_path)
        };
        let file = File::open(&path).map_err(|source| EbpfError::Netns {
            path: path.display().to_string(),
            action: "open",
            source,
        })?;
        Ok(Self {
            path,
            file: Arc::new(file),
        })
    }

    /// The namespace this process runs in.
    pub fn current() -> Result<Self, EbpfError> {
        Self::open("/proc/self/ns/net")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a fresh thread that has entered this namespace.
    pub fn run<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, EbpfError> + Send,
    ) -> Result<T, EbpfError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| {
                        EbpfError::Netns {
                            path: self.path.display().to_string(),
                            action: "setns",
                            source: errno.into(),
                        }
                    })?;
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The namespace's identity (device and inode of its nsfs file).
    pub fn id(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt as _;
        self.file
            .metadata()
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or((0, 0))
    }

    /// Whether the path this namespace was opened by still names it. When
    /// `ip netns del` removes the name, or the process of `/proc/PID/ns/net`
    /// exits, the namespace is gone for its owner, even though this handle
    /// keeps the kernel object (and its interfaces) alive.
    pub fn still_named(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(named), Ok(held)) => named.dev() == held.dev() && named.ino() == held.ino(),
            _ => false,
        }
    }

    /// The index of interface `name` inside this namespace.
    pub fn ifindex(&self, name: &str) -> Result<u32, EbpfError> {
        self.run(|| {
            nix::net::if_::if_nametoindex(name).map_err(|_| EbpfError::NoSuchInterface {
                name: name.to_owned(),
                netns: self.path.display().to_string(),
            })
        })
    }
}
