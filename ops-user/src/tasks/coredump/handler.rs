//! Handling one core stream, in the daemon (socket mode) or in the pipe
//! helper (`ops core-handler`): attribute it to a group by cgroup, store it
//! (zstd, limits, rate limit, time bound) with its record, or pass it on as
//! the previous `core_pattern` would have.

use std::{
    fs::File,
    io::{self, Read, Write},
    os::{
        fd::{AsFd as _, AsRawFd, BorrowedFd},
        unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use super::{
    notes::NotesPrefix,
    proc::ProcInfo,
    record::{CrashRecord, NoCoreReason, StoredCore},
    specifiers::{self, Specifiers},
    state::{GroupState, Mode, State},
};

/// What the kernel told us about the dump (pipe arguments), or nothing
/// (socket mode: the peer's pid only).
#[derive(Clone, Debug, Default)]
pub struct CoreRequest {
    /// Pid in the initial pid namespace.
    pub pid: u32,
    pub tid: Option<u32>,
    pub signal: Option<i32>,
    pub time: Option<u64>,
    /// The kernel's `%c`: soft RLIMIT_CORE.
    pub core_limit: Option<u64>,
    pub dump_mode: Option<u32>,
}

/// What became of a core.
#[derive(Debug)]
pub enum Outcome {
    /// It belonged to a group: this record was written.
    Recorded(Box<CrashRecord>),
    /// It did not: the previous pattern's behaviour was applied.
    Chained(String),
}

/// The directory of a group's cores and records.
pub fn group_dir(engine_dir: &Path, group_id: &str) -> PathBuf {
    engine_dir.join("groups").join(group_id)
}

/// Reads an fd with a deadline (a stalled peer or a slow disk must not keep
/// the crashing process, which waits for us, alive forever).
pub struct TimedReader<'a> {
    fd: BorrowedFd<'a>,
    deadline: Instant,
}

impl<'a> TimedReader<'a> {
    pub fn new(fd: BorrowedFd<'a>, deadline: Instant) -> Self {
        Self { fd, deadline }
    }
}

impl Read for TimedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        timed_io(fd, libc::POLLIN, self.deadline, "dump timed out", || {
            // SAFETY: buf is valid for buf.len() bytes.
            unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
        })
    }
}

/// Wait (up to `deadline`) until `fd` is ready for `events`, then run one
/// non-blocking `op`; retry on EINTR/EAGAIN and spurious wake-ups. The one
/// loop behind [`TimedReader`] and [`TimedWriter`].
fn timed_io(
    fd: libc::c_int,
    events: libc::c_short,
    deadline: Instant,
    timeout: &'static str,
    mut op: impl FnMut() -> isize,
) -> io::Result<usize> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, timeout));
        }
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue;
        }
        let r = op();
        if r < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                continue;
            }
            return Err(e);
        }
        return Ok(r as usize);
    }
}

/// Writes an fd with a deadline: a previous handler that stops reading
/// must not stall us (and the crashing process) forever.
struct TimedWriter<'a> {
    fd: BorrowedFd<'a>,
    deadline: Instant,
}

impl Write for TimedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        // Non-blocking: at most what fits now.
        timed_io(fd, libc::POLLOUT, self.deadline, "consumer stalled", || {
            // SAFETY: buf is valid for buf.len() bytes.
            unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Make an fd non-blocking, so a [`TimedWriter`] never blocks in write(2).
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a valid fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const CHUNK: usize = 256 << 10;

/// Handle one core arriving on `input`.
pub fn handle(
    state: &State,
    engine_dir: &Path,
    cgroup_mount: Option<&Path>,
    via: Mode,
    req: &CoreRequest,
    input: BorrowedFd<'_>,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(state.limits.dump_timeout_secs);
    let mut reader = TimedReader::new(input, deadline);
    // First, while the kernel is surely still writing the core: who is it.
    let info = ProcInfo::read(cgroup_mount, req.pid);

    // The head of the stream, up to the end of the notes.
    let mut prefix = NotesPrefix::default();
    let mut head = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut eof = false;
    let mut read_error = None;
    while prefix.wants_more() {
        match reader.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                prefix.push(&buf[..n]);
                head.extend_from_slice(&buf[..n]);
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    let notes = prefix.notes();
    drop(prefix);
    let time = req.time.unwrap_or_else(now_secs);
    let spec = Specifiers {
        pid_ns: info.pid_ns.unwrap_or(req.pid),
        pid: req.pid,
        tid_ns: req.tid.unwrap_or(req.pid),
        tid: req.tid.unwrap_or(req.pid),
        uid: info.uid.unwrap_or(0),
        gid: info.gid.unwrap_or(0),
        dump_mode: req.dump_mode.unwrap_or(1),
        signal: req
            .signal
            .or(notes.as_ref().and_then(|n| n.signal))
            .unwrap_or(0),
        time,
        hostname: hostname(),
        comm: info.comm.clone().unwrap_or_default(),
        exe: info.exe.clone().unwrap_or_default(),
        core_limit: req.core_limit.or(info.core_limit).unwrap_or(u64::MAX),
    };
    let mut stream = Stream {
        head,
        reader,
        eof,
        error: read_error,
    };

    let Some((group_id, group)) = state.group_of(&info.cgroup_ids) else {
        let what = chain(state, &spec, &mut stream);
        return Outcome::Chained(what);
    };

    let mut record = CrashRecord {
        id: format!("{time}-{}", req.pid),
        group_id: group_id.clone(),
        time,
        pid: req.pid,
        pid_ns: info.pid_ns,
        tid: req.tid,
        signal: req.signal,
        comm: info.comm.clone(),
        exe: info.exe.clone(),
        cmdline: info.cmdline.clone(),
        uid: info.uid,
        gid: info.gid,
        cgroup_id: info.cgroup_ids.first().copied(),
        via: Some(via.as_str().to_owned()),
        ..Default::default()
    };
    if let Some(notes) = &notes {
        record.apply_notes(notes);
    }
    let dir = group_dir(engine_dir, group_id);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        record.no_core_reason = Some(NoCoreReason::WriteFailed(format!(
            "creating {}: {e}",
            dir.display()
        )));
        return Outcome::Recorded(Box::new(record));
    }
    store(
        state,
        engine_dir,
        &dir,
        group,
        &spec,
        &mut record,
        &mut stream,
    );
    if let Err(e) = record.save(&dir) {
        tracing::error!(id = record.id, "saving crash record: {e}");
    }
    Outcome::Recorded(Box::new(record))
}

/// The core stream: the head already read, then the rest.
struct Stream<'a> {
    head: Vec<u8>,
    reader: TimedReader<'a>,
    eof: bool,
    error: Option<io::Error>,
}

impl Stream<'_> {
    /// Copy up to `limit` bytes to `sink`. Returns (bytes, reached the end).
    fn copy_to(&mut self, sink: &mut dyn Write, limit: u64) -> io::Result<(u64, bool)> {
        let mut done = 0u64;
        let head = std::mem::take(&mut self.head);
        let n = (head.len() as u64).min(limit) as usize;
        sink.write_all(&head[..n])?;
        done += n as u64;
        if n < head.len() {
            return Ok((done, false));
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.eof {
            return Ok((done, true));
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            let want = ((limit - done) as usize).min(buf.len());
            if want == 0 {
                // At the limit: is there more?
                let mut one = [0u8; 1];
                return Ok((done, self.reader.read(&mut one)? == 0));
            }
            let n = self.reader.read(&mut buf[..want])?;
            if n == 0 {
                return Ok((done, true));
            }
            sink.write_all(&buf[..n])?;
            done += n as u64;
        }
    }
}

/// Store a group's core (or record why not).
fn store(
    state: &State,
    engine_dir: &Path,
    dir: &Path,
    group: &GroupState,
    spec: &Specifiers,
    record: &mut CrashRecord,
    stream: &mut Stream<'_>,
) {
    let limits = &state.limits;
    // A pipe or socket pattern dumps whatever RLIMIT_CORE says; we honour
    // the limit as a file pattern would: 0 means no core, and a core is cut
    // at the limit.
    if spec.core_limit == 0 {
        record.no_core_reason = Some(NoCoreReason::CoreLimitZero);
        return;
    }
    let budget = match space_budget(state, engine_dir) {
        Ok(b) => b,
        Err(reason) => {
            record.no_core_reason = Some(reason);
            return;
        }
    };
    if !take_rate_token(dir, limits.rate_burst, limits.rate_interval_secs) {
        record.no_core_reason = Some(NoCoreReason::RateLimited);
        return;
    }
    let (cap, cap_name) = [
        (limits.process_size_max, "process_size_max"),
        (spec.core_limit, "RLIMIT_CORE"),
    ]
    .into_iter()
    .min_by_key(|(v, _)| *v)
    .unwrap_or((u64::MAX, ""));

    let zstd = limits.zstd_level > 0;
    let file_name = format!("{}.core{}", record.id, if zstd { ".zst" } else { "" });
    let path = dir.join(&file_name);
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            record.no_core_reason = Some(NoCoreReason::WriteFailed(format!(
                "creating {}: {e}",
                path.display()
            )));
            return;
        }
    };
    let counted = Budgeted {
        file,
        written: 0,
        budget: budget.0,
    };
    let copy = group
        .core_pattern
        .as_deref()
        .map(|p| container_copy(spec, p));
    let result = (|| -> io::Result<(u64, bool, Budgeted)> {
        let mut sink: Sink = if zstd {
            Sink::Zstd(zstd::stream::write::Encoder::new(
                counted,
                limits.zstd_level,
            )?)
        } else {
            Sink::Plain(counted)
        };
        let mut tee = Tee {
            first: &mut sink,
            second: match &copy {
                Some(Ok((_, f))) => Some(f),
                _ => None,
            },
            second_error: None,
        };
        let (n, complete) = stream.copy_to(&mut tee, cap)?;
        let second_error = tee.second_error.take();
        let inner = sink.finish()?;
        if let Some(e) = second_error {
            record.container_copy_error = Some(e.to_string());
        }
        Ok((n, complete, inner))
    })();
    match result {
        Ok((size, complete, inner)) => {
            let _ = inner.file.sync_data();
            record.received_size = size;
            record.core = Some(StoredCore {
                file: file_name,
                zstd,
                size,
                stored_size: inner.written,
                truncated: !complete,
                truncated_by: (!complete).then(|| cap_name.to_owned()),
            });
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            record.no_core_reason = Some(if e.kind() == io::ErrorKind::TimedOut {
                NoCoreReason::Timeout
            } else if e.kind() == io::ErrorKind::StorageFull {
                NoCoreReason::WriteFailed(format!("{} ({})", e, budget.1))
            } else {
                NoCoreReason::WriteFailed(e.to_string())
            });
        }
    }
    match copy {
        Some(Ok((path, _))) if record.container_copy_error.is_none() => {
            record.container_copy = Some(path);
        }
        Some(Err(e)) => record.container_copy_error = Some(e),
        _ => {}
    }
}

/// The file inside the container (through /proc/<pid>/root) for a group's
/// own CorePattern: (path as the container sees it, open file).
fn container_copy(spec: &Specifiers, pattern: &str) -> Result<(String, File), String> {
    let inside = specifiers::expand(pattern, spec);
    let host =
        PathBuf::from(format!("/proc/{}/root", spec.pid)).join(inside.trim_start_matches('/'));
    let file = create_core_file(&host, spec.uid, spec.gid)
        .map_err(|e| format!("creating {inside} in the container: {e}"))?;
    Ok((inside, file))
}

/// Create a core file as the kernel does: replace an existing file, never
/// follow a symlink, mode 0600, owned by the crashing process's user.
fn create_core_file(path: &Path, uid: u32, gid: u32) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

enum Sink {
    Zstd(zstd::stream::write::Encoder<'static, Budgeted>),
    Plain(Budgeted),
}

impl Sink {
    fn finish(self) -> io::Result<Budgeted> {
        match self {
            Self::Zstd(enc) => enc.finish(),
            Self::Plain(mut b) => {
                b.flush()?;
                Ok(b)
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Zstd(e) => e.write(buf),
            Self::Plain(b) => b.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Zstd(e) => e.flush(),
            Self::Plain(b) => b.flush(),
        }
    }
}

/// The stored file, refusing to grow past the space budget.
struct Budgeted {
    file: File,
    written: u64,
    budget: u64,
}

impl Write for Budgeted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.budget {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "core storage budget exhausted",
            ));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes to `first`; a failure of `second` (the container copy) is kept
/// aside and stops only the copy.
struct Tee<'a> {
    first: &'a mut dyn Write,
    second: Option<&'a File>,
    second_error: Option<io::Error>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.first.write_all(buf)?;
        if let Some(mut f) = self.second {
            if let Err(e) = f.write_all(buf) {
                self.second_error = Some(e);
                self.second = None;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.first.flush()
    }
}

/// Bytes we may still store: min(`max_use` - used, free - `keep_free`),
/// with the limit that binds, or why nothing may be stored.
fn space_budget(state: &State, engine_dir: &Path) -> Result<(u64, &'static str), NoCoreReason> {
    let limits = &state.limits;
    let (total, avail) = fs_space(engine_dir).unwrap_or((u64::MAX, u64::MAX));
    let max_use = if limits.max_use == 0 {
        total / 10
    } else {
        limits.max_use
    };
    let keep_free = if limits.keep_free == 0 {
        total / 100 * 15
    } else {
        limits.keep_free
    };
    let used = stored_bytes(&engine_dir.join("groups"));
    let by_use = max_use.saturating_sub(used);
    let by_free = avail.saturating_sub(keep_free);
    // Less room than this cannot even hold the notes of a small process.
    const MIN_ROOM: u64 = 64 << 10;
    if by_use < MIN_ROOM {
        return Err(NoCoreReason::MaxUse);
    }
    if by_free < MIN_ROOM {
        return Err(NoCoreReason::KeepFree);
    }
    Ok(if by_use <= by_free {
        (by_use, "max_use")
    } else {
        (by_free, "keep_free")
    })
}

/// (size, available to us) of the file system holding `path`.
fn fs_space(path: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = s.fragment_size();
    Some((s.blocks() * frag, s.blocks_available() * frag))
}

/// Bytes taken by stored cores of all groups.
pub fn stored_bytes(groups: &Path) -> u64 {
    let Ok(groups) = std::fs::read_dir(groups) else {
        return 0;
    };
    groups
        .flatten()
        .filter_map(|g| std::fs::read_dir(g.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| f.file_name().to_string_lossy().contains(".core"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Token bucket per group in `<dir>/.rate` (one timestamp per stored core),
/// under an flock: the pipe helpers of a crash storm are separate processes.
fn take_rate_token(dir: &Path, burst: u32, interval_secs: u64) -> bool {
    let path = dir.join(".rate");
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            // Without the bucket, storing stays bounded by the space limits.
            tracing::warn!("rate limit file {}: {e}", path.display());
            return true;
        }
    };
    // SAFETY: a valid fd; the lock is released when `file` closes.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    let mut text = String::new();
    let _ = (&file).read_to_string(&mut text);
    let now = now_millis();
    let window = interval_secs.saturating_mul(1000);
    let mut stamps: Vec<u64> = text
        .lines()
        .filter_map(|l| l.parse().ok())
        .filter(|&t: &u64| now.saturating_sub(t) < window)
        .collect();
    let allowed = stamps.len() < burst as usize;
    if allowed {
        stamps.push(now);
    }
    let out: String = stamps.iter().map(|t| format!("{t}\n")).collect();
    let _ = file.set_len(0);
    let _ = nix::sys::uio::pwrite(&file, out.as_bytes(), 0);
    allowed
}

/// Do with a core outside every group what the previous `core_pattern`
/// would have done. Returns a description for logs.
fn chain(state: &State, spec: &Specifiers, stream: &mut Stream<'_>) -> String {
    let previous = state.previous_pattern.as_str();
    let deadline = stream.reader.deadline;
    let result = if let Some(cmd) = previous.strip_prefix('|') {
        chain_pipe(cmd, spec, stream, deadline)
    } else if previous.starts_with("@@") {
        // The @@ protocol needs a handshake we do not speak; dropping the
        // core is what the kernel does when that server is gone.
        Err(io::Error::other("previous @@ socket pattern not forwarded"))
    } else if let Some(path) = previous.strip_prefix('@') {
        std::os::unix::net::UnixStream::connect(path)
            .and_then(|s| {
                set_nonblocking(s.as_fd())?;
                let mut w = TimedWriter {
                    fd: s.as_fd(),
                    deadline,
                };
                stream.copy_to(&mut w, u64::MAX)
            })
            .map(|_| format!("forwarded to {previous}"))
    } else {
        chain_file(previous, spec, stream)
    };
    match result {
        Ok(what) => what,
        Err(e) => {
            tracing::warn!(pid = spec.pid, "previous core_pattern `{previous}`: {e}");
            format!("previous core_pattern `{previous}` failed: {e}")
        }
    }
}

/// `|prog args`: run it as the kernel would (arguments split on spaces,
/// then expanded; cwd `/`; the core on stdin), within the time bound.
fn chain_pipe(
    cmd: &str,
    spec: &Specifiers,
    stream: &mut Stream<'_>,
    deadline: Instant,
) -> io::Result<String> {
    let argv: Vec<String> = cmd
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| specifiers::expand(a, spec))
        .collect();
    let Some((prog, args)) = argv.split_first() else {
        return Ok("previous pipe pattern is empty: core dropped".into());
    };
    if args.first().is_some_and(|a| a == super::HANDLER_SUBCOMMAND) {
        return Ok("previous pattern is our own helper: core dropped".into());
    }
    let mut child = Command::new(prog)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(stdin) = child.stdin.take() {
        // The helper may stop reading early (its choice), or stall (bounded
        // by the deadline).
        let _ = set_nonblocking(stdin.as_fd()).and_then(|()| {
            let mut w = TimedWriter {
                fd: stdin.as_fd(),
                deadline,
            };
            stream.copy_to(&mut w, u64::MAX)
        });
    }
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(format!("piped to `{prog}` ({status})"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(format!(
                "piped to `{prog}`, killed at the dump's time bound"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file pattern: as the kernel writes it, relative to the process's cwd
/// (or its root for an absolute pattern), with `core_uses_pid`, only when
/// RLIMIT_CORE is at least a page, and cut at RLIMIT_CORE.
fn chain_file(pattern: &str, spec: &Specifiers, stream: &mut Stream<'_>) -> io::Result<String> {
    // binfmt_elf's min_coredump is one page.
    if spec.core_limit < 4096 {
        return Ok("RLIMIT_CORE below a page: no core, as before".into());
    }
    let mut name = specifiers::expand(pattern, spec);
    if !pattern.contains("%p")
        && std::fs::read_to_string("/proc/sys/kernel/core_uses_pid").is_ok_and(|v| v.trim() == "1")
    {
        name.push_str(&format!(".{}", spec.pid_ns));
    }
    let base = if name.starts_with('/') { "root" } else { "cwd" };
    let host =
        PathBuf::from(format!("/proc/{}/{base}", spec.pid)).join(name.trim_start_matches('/'));
    let mut file = create_core_file(&host, spec.uid, spec.gid)?;
    let (n, _) = stream.copy_to(&mut file, spec.core_limit)?;
    Ok(format!(
        "wrote {n} bytes to {name} as the previous pattern would"
    ))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim_end().to_owned())
        .unwrap_or_default()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
