//! The abnormal-exit monitor: the `ops-exit` tracepoints and the ring buffer
//! that carries their [`ExitEvent`]s.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::{
    maps::{HashMap, MapData, RingBuf},
    programs::TracePoint,
    Ebpf,
};
use ops_common::exit::ExitEvent;
use tokio::io::{unix::AsyncFd, Interest};

use super::{btf, load, tracefs, EbpfError, EXIT_OBJECT};

const OBJECT: &str = "ops-exit";
const EVENTS: &str = "EXIT_EVENTS";
const CGROUPS: &str = "ENABLED_CGROUPS";
/// (program, tracepoint category, tracepoint name)
const TRACEPOINTS: [(&str, &str, &str); 2] = [
    ("ops_signal_deliver", "signal", "signal_deliver"),
    ("ops_process_exit", "sched", "sched_process_exit"),
];

/// Which tasks the programs follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitScope {
    /// Every task on the machine.
    All,
    /// Only tasks whose cgroup v2 id was added with [`CgroupFilter::add`].
    EnabledCgroups,
}

/// A handle on the in-kernel set of followed cgroups; cheap to clone, usable
/// from any thread while the monitor lives.
#[derive(Clone)]
pub struct CgroupFilter(Arc<Mutex<HashMap<MapData, u64, u8>>>);

impl CgroupFilter {
    /// Follow the tasks of the cgroup with this v2 id.
    pub fn add(&self, cgroup_id: u64) -> Result<(), EbpfError> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(cgroup_id, 1, 0)
            .map_err(|source| EbpfError::Map {
                name: CGROUPS,
                source,
            })
    }

    /// Stop following that cgroup. Removing an absent id is not an error.
    pub fn remove(&self, cgroup_id: u64) -> Result<(), EbpfError> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.remove(&cgroup_id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(EbpfError::Map {
                name: CGROUPS,
                source,
            }),
        }
    }
}

/// The loaded and attached exit tracepoints. Dropping it detaches them.
pub struct ExitMonitor {
    events: RingBuf<MapData>,
    cgroups: CgroupFilter,
    // Owns the programs and their tracepoint links.
    ebpf: Ebpf,
}

impl ExitMonitor {
    /// Load `ops-exit` and attach its tracepoints (mounting tracefs if
    /// needed), following the tasks of `scope`.
    pub fn start(scope: ExitScope) -> Result<Self, EbpfError> {
        tracefs::ensure_mounted()?;
        // Without BTF the events still come, with an unknown exit code.
        let exit_code_offset =
            match btf::member_offset_in(Path::new(btf::VMLINUX), "task_struct", "exit_code") {
                Ok(offset) => offset,
                Err(e) => {
                    tracing::warn!("task_struct.exit_code not found in kernel BTF: {e}");
                    0
                }
            };
        let mut ebpf = load(
            OBJECT,
            EXIT_OBJECT,
            [
                ("TASK_EXIT_CODE_OFFSET", exit_code_offset),
                ("REPORT_ALL", u32::from(scope == ExitScope::All)),
            ],
        )?;
        for (name, category, tracepoint) in TRACEPOINTS {
            let program: &mut TracePoint = super::program_mut(&mut ebpf, OBJECT, name)?;
            program.load().map_err(|source| EbpfError::Program {
                name,
                action: "load",
                source,
            })?;
            program
                .attach(category, tracepoint)
                .map_err(|source| EbpfError::Program {
                    name,
                    action: "attach",
                    source,
                })?;
        }
        let events = ebpf.take_map(EVENTS).ok_or(EbpfError::MissingMap {
            object: OBJECT,
            name: EVENTS,
        })?;
        let events = RingBuf::try_from(events).map_err(|source| EbpfError::Map {
            name: EVENTS,
            source,
        })?;
        let cgroups = ebpf.take_map(CGROUPS).ok_or(EbpfError::MissingMap {
            object: OBJECT,
            name: CGROUPS,
        })?;
        let cgroups = HashMap::try_from(cgroups).map_err(|source| EbpfError::Map {
            name: CGROUPS,
            source,
        })?;
        Ok(Self {
            events,
            cgroups: CgroupFilter(Arc::new(Mutex::new(cgroups))),
            ebpf,
        })
    }

    /// The set of followed cgroups (meaningful with
    /// [`ExitScope::EnabledCgroups`]).
    pub fn cgroup_filter(&self) -> CgroupFilter {
        self.cgroups.clone()
    }

    /// The loaded object, e.g. to forward its logs.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The next queued event, without waiting.
    pub fn try_next(&mut self) -> Option<ExitEvent> {
        loop {
            let item = self.events.next()?;
            if item.len() >= size_of::<ExitEvent>() {
                // SAFETY: ExitEvent is plain data; the length was checked and
                // read_unaligned copes with any alignment.
                return Some(unsafe { item.as_ptr().cast::<ExitEvent>().read_unaligned() });
            }
            tracing::warn!(len = item.len(), "short exit event ignored");
        }
    }

    /// Wait up to `timeout` for the next event (for synchronous callers).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<ExitEvent> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.try_next() {
                return Some(event);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd; EINTR just loops.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }

    /// An async view for the daemon.
    pub fn into_async(self) -> std::io::Result<AsyncExitMonitor> {
        // SAFETY: the fd is the ring buffer map's, owned by `self.events`,
        // which lives (unchanged) as long as the AsyncFd that owns `self`.
        let fd = unsafe { AsyncFd::register_with_interest(self, Interest::READABLE) };
        Ok(AsyncExitMonitor(fd.map_err(std::io::Error::from)?))
    }
}

impl AsFd for ExitMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }
}

impl AsRawFd for ExitMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }
}

/// [`ExitMonitor`] under tokio.
pub struct AsyncExitMonitor(AsyncFd<ExitMonitor>);

impl AsyncExitMonitor {
    pub async fn next(&mut self) -> std::io::Result<ExitEvent> {
        loop {
            let mut guard = self.0.readable_mut().await?;
            if let Some(event) = guard.get_inner_mut().try_next() {
                return Ok(event);
            }
            guard.clear_ready();
        }
    }

    pub fn get_mut(&mut self) -> &mut ExitMonitor {
        self.0.get_mut()
    }
}
