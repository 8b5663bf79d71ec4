//! Socket mode: the kernel (6.16+) connects to our Unix socket for each
//! dump and streams the core; the peer's credentials name the crashing
//! process.
//!
//! With the request protocol (`@@`, 6.17+; include/uapi/linux/coredump.h)
//! the kernel first sends a `coredump_req`, we answer with a
//! `coredump_ack` asking for `COREDUMP_KERNEL | COREDUMP_WAIT`, the kernel
//! confirms with a mark, streams the core, and then waits for us
//! to close the connection: the crashing process (and its /proc entry)
//! stays until its record is written. Plain `@` (6.16) just streams the
//! core, and a small core can be written before we look at /proc.

use std::{
    io::{Read as _, Write as _},
    os::{fd::AsFd as _, unix::net::UnixListener},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::{
    handler::{self, CoreRequest, Outcome, TimedReader},
    record::{CrashRecord, NoCoreReason},
    state::Mode,
    Shared,
};

/// The accepting thread; stops (and removes the socket) on drop.
pub struct SocketServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SocketServer {
    pub fn start(path: &Path, shared: Arc<Shared>) -> std::io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("coredump-socket".into())
                .spawn(move || accept_loop(listener, shared, stop))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicU32::new(0));
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&listener),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd. The timeout bounds the stop latency.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!("coredump socket accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let pid = match getsockopt(&conn.as_fd(), PeerCredentials) {
            Ok(cred) => cred.pid() as u32,
            Err(e) => {
                tracing::warn!("coredump socket peer credentials: {e}");
                continue;
            }
        };
        let _ = conn.set_nonblocking(false);
        let limit = shared.limits.max_concurrent.max(1);
        if active.fetch_add(1, Ordering::SeqCst) >= limit {
            active.fetch_sub(1, Ordering::SeqCst);
            over_limit(&shared, pid);
            continue;
        }
        let shared = shared.clone();
        let active2 = active.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("coredump-{pid}"))
            .spawn(move || {
                serve_one(&shared, pid, conn);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::error!("spawning a dump thread: {e}");
        }
    }
}

fn serve_one(shared: &Shared, pid: u32, conn: std::os::unix::net::UnixStream) {
    let Some(state) = shared.snapshot() else {
        // Not owning core_pattern (any more): nothing to do with it.
        return;
    };
    if shared.request_protocol.load(Ordering::Relaxed) {
        let deadline = Instant::now() + Duration::from_secs(state.limits.dump_timeout_secs);
        if let Err(e) = handshake(&conn, deadline) {
            tracing::warn!(pid, "coredump socket handshake: {e}");
            return;
        }
    }
    let req = CoreRequest {
        pid,
        ..Default::default()
    };
    match handler::handle(
        &state,
        &shared.engine_dir,
        shared.cgroup_mount.as_deref(),
        Mode::Socket,
        &req,
        conn.as_fd(),
    ) {
        Outcome::Recorded(r) => tracing::info!(
            pid,
            group = r.group_id,
            id = r.id,
            core = r.core.is_some(),
            reason = ?r.no_core_reason,
            "core handled"
        ),
        Outcome::Chained(what) => tracing::debug!(pid, "core outside groups: {what}"),
    }
    // Closing `conn` lets the kernel finish the crashing process.
}

/// Too many dumps at once: a record without a core for a group's process.
fn over_limit(shared: &Shared, pid: u32) {
    let Some(state) = shared.snapshot() else {
        return;
    };
    let info = super::proc::ProcInfo::read(shared.cgroup_mount.as_deref(), pid);
    let Some((group_id, _)) = state.group_of(&info.cgroup_ids) else {
        return;
    };
    let time = handler::now_secs();
    let record = CrashRecord {
        id: format!("{time}-{pid}"),
        group_id: group_id.clone(),
        time,
        pid,
        comm: info.comm,
        exe: info.exe,
        cmdline: info.cmdline,
        via: Some(Mode::Socket.as_str().into()),
        no_core_reason: Some(NoCoreReason::ConcurrencyLimit),
        ..Default::default()
    };
    let dir = handler::group_dir(&shared.engine_dir, group_id);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| record.save(&dir)) {
        tracing::error!("saving crash record: {e}");
    }
}

const COREDUMP_KERNEL: u64 = 1 << 0;
const COREDUMP_WAIT: u64 = 1 << 3;
const COREDUMP_ACK_SIZE_VER0: u32 = 16;
/// `enum coredump_mark` goes over the socket as a 32-bit value.
const COREDUMP_MARK_REQACK: u32 = 0;

/// The `@@` request protocol: read `coredump_req`, ask the kernel to write
/// the core and to wait for us, and check its mark.
fn handshake(conn: &std::os::unix::net::UnixStream, deadline: Instant) -> std::io::Result<()> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let mut reader = TimedReader::new(conn.as_fd(), deadline);
    let mut req = [0u8; 16];
    reader.read_exact(&mut req)?;
    let size = u32::from_le_bytes(req[0..4].try_into().unwrap_or_default());
    let size_ack = u32::from_le_bytes(req[4..8].try_into().unwrap_or_default());
    let mask = u64::from_le_bytes(req[8..16].try_into().unwrap_or_default());
    if !(16..=4096).contains(&size) || size_ack < COREDUMP_ACK_SIZE_VER0 {
        return Err(bad(format!(
            "coredump_req size {size}, ack size {size_ack}"
        )));
    }
    // A newer kernel's longer request: skip what we do not know.
    let mut rest = vec![0u8; size as usize - 16];
    reader.read_exact(&mut rest)?;
    if mask & COREDUMP_KERNEL == 0 {
        return Err(bad(format!(
            "coredump_req mask {mask:#x} lacks COREDUMP_KERNEL"
        )));
    }
    let mut ack = [0u8; 16];
    ack[0..4].copy_from_slice(&COREDUMP_ACK_SIZE_VER0.to_le_bytes());
    ack[8..16].copy_from_slice(&(COREDUMP_KERNEL | (mask & COREDUMP_WAIT)).to_le_bytes());
    (&*conn).write_all(&ack)?;
    let mut mark = [0u8; 4];
    reader.read_exact(&mut mark)?;
    let mark = u32::from_le_bytes(mark);
    if mark != COREDUMP_MARK_REQACK {
        return Err(bad(format!(
            "the kernel refused our coredump_ack (mark {mark})"
        )));
    }
    Ok(())
}
