//! coredump task: per-container-group crash dumps, with `core_pattern`
//! owned safely and every abnormal exit recorded.
//!
//! - [`Coredump`] is the engine the API calls: [`Coredump::apply`] (or
//!   [`Coredump::enable`] / [`Coredump::disable`]) per group, then
//!   [`Coredump::records`]. While a group is enabled it owns the machine's
//!   `core_pattern` ([`pattern::CorePatternOwner`]); the previous pattern
//!   and `core_pipe_limit` are persisted in `<data>/coredump/state.json`
//!   and restored when the last group is disabled, at shutdown, and at the
//!   next start after a crash of the daemon.
//! - Cores come through the kernel's coredump socket (6.16+, `@path`) to
//!   [`socket::SocketServer`], or through the pipe helper
//!   `ops core-handler` ([`run_pipe_handler`]), which works while the
//!   daemon is down. Both call [`handler::handle`]: a process is in a group
//!   when its cgroup (v2 id) or an ancestor is the group's; its core is
//!   stored zstd-compressed with a JSON [`CrashRecord`] under
//!   `<data>/coredump/groups/<group>/`. Other cores get the previous
//!   pattern's behaviour.
//! - The `ops-exit` tracepoints, filtered in the kernel to enabled cgroups,
//!   report every death by a core-dumping signal; each one completes its
//!   crash record, or creates one that says why no core arrived.

pub mod cgroup;
pub mod config;
pub mod handler;
pub mod notes;
pub mod ops_value;
pub mod pattern;
pub mod proc;
pub mod record;
pub mod socket;
pub mod specifiers;
pub mod state;

use std::{
    collections::{BTreeMap, HashMap},
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub use config::{CoredumpSettings, Limits, ModeChoice};
pub use ops_value::{parse_ops_value, CoredumpSetting};
pub use record::{CrashRecord, NoCoreReason};
pub use state::Mode;

use crate::{
    api::error::ApiError,
    ebpf::exits::{CgroupFilter, ExitMonitor},
};
use handler::group_dir;
use ops_common::exit::ExitEvent;
use pattern::CorePatternOwner;
use record::ExitInfo;
use state::{GroupState, State};

/// The hidden subcommand the pipe pattern runs.
pub const HANDLER_SUBCOMMAND: &str = "core-handler";

/// Errors starting or stopping the engine (requests get [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum CoredumpError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the coredump socket mode was asked for, but this kernel's core_modes lacks `socket`")]
    NoSocketMode,
    /// The kernel splits a pipe pattern on spaces.
    #[error("the pipe pattern cannot name `{0}`: it contains whitespace")]
    Whitespace(PathBuf),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CoredumpError {
    let what = what.into();
    move |source| CoredumpError::Io { what, source }
}

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct CoredumpConfig {
    /// The daemon's data directory; the engine uses `<data_dir>/coredump`.
    pub data_dir: PathBuf,
    pub settings: CoredumpSettings,
}

/// Options of an enabled group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnableOptions {
    /// Also write each core inside the container, at this validated pattern.
    pub core_pattern: Option<String>,
}

/// State shared by the engine, its socket server and its exit thread.
pub struct Shared {
    engine_dir: PathBuf,
    data_dir: PathBuf,
    mode: Mode,
    limits: Limits,
    handler_exe: PathBuf,
    min_interval: Duration,
    cgroup_mount: Option<PathBuf>,
    filter: CgroupFilter,
    /// Socket mode speaks the `@@` request protocol (see [`socket`]).
    request_protocol: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    groups: BTreeMap<String, GroupState>,
    owner: Option<CorePatternOwner>,
    installed: String,
    last_set: HashMap<String, Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state a core handler works with, while we own `core_pattern`.
    fn snapshot(&self) -> Option<State> {
        let inner = self.lock();
        self.state_of(&inner)
    }

    fn state_of(&self, inner: &Inner) -> Option<State> {
        let owner = inner.owner.as_ref()?;
        Some(State {
            previous_pattern: owner.previous_pattern().to_owned(),
            previous_pipe_limit: owner.previous_pipe_limit().to_owned(),
            installed_pattern: inner.installed.clone(),
            mode: self.mode,
            data_dir: self.data_dir.clone(),
            limits: self.limits.clone(),
            groups: inner.groups.clone(),
        })
    }
}

/// The coredump engine. Dropping it is [`Coredump::shutdown`].
pub struct Coredump {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    exits: Option<JoinHandle<()>>,
    socket: Option<socket::SocketServer>,
}

impl Coredump {
    /// Start the engine on an exit monitor loaded with
    /// [`ExitScope::EnabledCgroups`](crate::ebpf::exits::ExitScope). First
    /// restores a `core_pattern` left behind by a crashed daemon.
    pub fn start(config: CoredumpConfig, monitor: ExitMonitor) -> Result<Self, CoredumpError> {
        let settings = &config.settings;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(config.data_dir.join("coredump").join("groups"))
            .map_err(io_err(format!(
                "creating {}/coredump",
                config.data_dir.display()
            )))?;
        let data_dir = std::fs::canonicalize(&config.data_dir)
            .map_err(io_err(format!("resolving {}", config.data_dir.display())))?;
        let engine_dir = data_dir.join("coredump");
        recover(&engine_dir)?;

        let mode = match settings.mode.with_env() {
            ModeChoice::Socket if !pattern::kernel_has_socket_mode() => {
                return Err(CoredumpError::NoSocketMode)
            }
            ModeChoice::Socket => Mode::Socket,
            ModeChoice::Pipe => Mode::Pipe,
            ModeChoice::Auto if pattern::kernel_has_socket_mode() => Mode::Socket,
            ModeChoice::Auto => Mode::Pipe,
        };
        let handler_exe = match &settings.handler_exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().map_err(io_err("locating the ops binary"))?,
        };
        if mode == Mode::Pipe {
            for path in [&handler_exe, &data_dir] {
                if path.to_string_lossy().contains(char::is_whitespace) {
                    return Err(CoredumpError::Whitespace(path.clone()));
                }
            }
        }
        let cgroup_mount = match cgroup::mount_point() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("no cgroup2 mount, coredump groups cannot be enabled: {e}");
                None
            }
        };
        let shared = Arc::new(Shared {
            engine_dir: engine_dir.clone(),
            data_dir,
            mode,
            limits: settings.limits.clone(),
            handler_exe,
            min_interval: Duration::from_secs(settings.min_interval_secs),
            cgroup_mount,
            filter: monitor.cgroup_filter(),
            request_protocol: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        });
        let socket = match mode {
            Mode::Socket => Some(
                socket::SocketServer::start(&engine_dir.join("kernel.sock"), shared.clone())
                    .map_err(io_err("binding the coredump socket"))?,
            ),
            Mode::Pipe => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let exits = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("coredump-exits".into())
                .spawn(move || exit_loop(monitor, &shared, &stop))
                .map_err(io_err("spawning the exit thread"))?
        };
        tracing::info!(mode = mode.as_str(), dir = %engine_dir.display(), "coredump engine ready");
        Ok(Self {
            shared,
            stop,
            exits: Some(exits),
            socket,
        })
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// The `core_pattern` we installed, while a group is enabled.
    pub fn installed_pattern(&self) -> Option<String> {
        let inner = self.shared.lock();
        inner.owner.as_ref().map(|_| inner.installed.clone())
    }

    /// The `core_pattern`s we may install, preferred first: the socket's
    /// request protocol (`@@`, 6.17+), then plain `@`; or the pipe.
    fn candidate_patterns(&self) -> Vec<String> {
        let data = self.shared.data_dir.display();
        match self.shared.mode {
            Mode::Socket => {
                let sock = self.shared.engine_dir.join("kernel.sock");
                vec![
                    format!("@@{}", sock.display()),
                    format!("@{}", sock.display()),
                ]
            }
            // %P pid, %i tid, %s signal, %t time, %c RLIMIT_CORE, %d dump mode.
            Mode::Pipe => vec![format!(
                "|{} {HANDLER_SUBCOMMAND} {data} %P %i %s %t %c %d",
                self.shared.handler_exe.display()
            )],
        }
    }

    /// Apply an `OpsValue` (`enable`, `disable`, or the JSON extension) to
    /// a group whose cgroup is `cgroup` (relative to the cgroup2 mount, or
    /// absolute).
    pub fn apply(&self, group_id: &str, cgroup: &Path, ops_value: &str) -> Result<(), ApiError> {
        match parse_ops_value(ops_value)? {
            CoredumpSetting::Enable(opts) => self.enable(group_id, cgroup, opts),
            CoredumpSetting::Disable => self.disable(group_id),
        }
    }

    /// Turn crash dumps on for a group.
    pub fn enable(
        &self,
        group_id: &str,
        cgroup: &Path,
        opts: EnableOptions,
    ) -> Result<(), ApiError> {
        check_group_id(group_id)?;
        if let Some(p) = &opts.core_pattern {
            ops_value::check_core_pattern(p)?;
        }
        let mount = self.shared.cgroup_mount.as_deref().ok_or_else(|| {
            ApiError::OpsExecuteTaskFail("this node has no cgroup v2 hierarchy".into())
        })?;
        let cgroup_dir = cgroup::resolve(mount, cgroup);
        let cgroup_id = cgroup::id_of(&cgroup_dir).map_err(|e| {
            ApiError::InvalidParameter(format!("cgroup {}: {e}", cgroup_dir.display()))
        })?;
        let mut inner = self.shared.lock();
        self.check_interval(&inner, group_id)?;
        self.check_still_ours(&mut inner)?;
        let group = GroupState {
            cgroup_dir,
            cgroup_id,
            core_pattern: opts.core_pattern,
        };
        let old = inner.groups.insert(group_id.to_owned(), group.clone());
        if let Some(old) = &old {
            if old.cgroup_id != cgroup_id && !self.cgroup_in_use(&inner, old.cgroup_id) {
                let _ = self.shared.filter.remove(old.cgroup_id);
            }
        }
        let result = self.shared.filter.add(cgroup_id).map_err(|e| {
            ApiError::OpsExecuteTaskFail(format!("following cgroup {cgroup_id}: {e}"))
        });
        let result = result.and_then(|()| self.install(&mut inner));
        if let Err(e) = result {
            match old {
                Some(old) => inner.groups.insert(group_id.to_owned(), old),
                None => inner.groups.remove(group_id),
            };
            if !self.cgroup_in_use(&inner, cgroup_id) {
                let _ = self.shared.filter.remove(cgroup_id);
            }
            return Err(e);
        }
        self.persist(&inner)?;
        inner.last_set.insert(group_id.to_owned(), Instant::now());
        tracing::info!(group_id, cgroup_id, "coredump enabled");
        Ok(())
    }

    /// Turn crash dumps off for a group (a no-op for an unknown group). The
    /// last one restores the previous `core_pattern`.
    pub fn disable(&self, group_id: &str) -> Result<(), ApiError> {
        self.disable_with(group_id, true)
    }

    /// Disable a group whose task expired: the minimum interval between
    /// settings guards against clients, not against the daemon's own timer.
    pub fn disarm(&self, group_id: &str) -> Result<(), ApiError> {
        self.disable_with(group_id, false)
    }

    fn disable_with(&self, group_id: &str, check_interval: bool) -> Result<(), ApiError> {
        check_group_id(group_id)?;
        let mut inner = self.shared.lock();
        if check_interval {
            self.check_interval(&inner, group_id)?;
        }
        self.check_still_ours(&mut inner)?;
        if let Some(old) = inner.groups.remove(group_id) {
            if !self.cgroup_in_use(&inner, old.cgroup_id) {
                let _ = self.shared.filter.remove(old.cgroup_id);
            }
        }
        if inner.groups.is_empty() {
            if let Some(owner) = inner.owner.take() {
                owner.restore().map_err(|e| {
                    ApiError::CorePatternUpdateFail(format!("restoring core_pattern: {e}"))
                })?;
                inner.installed.clear();
            }
        }
        self.persist(&inner)?;
        inner.last_set.insert(group_id.to_owned(), Instant::now());
        tracing::info!(group_id, "coredump disabled");
        Ok(())
    }

    /// Whether a group is enabled.
    pub fn is_enabled(&self, group_id: &str) -> bool {
        self.shared.lock().groups.contains_key(group_id)
    }

    /// The crash records of a group, oldest first.
    pub fn records(&self, group_id: &str) -> Vec<CrashRecord> {
        if check_group_id(group_id).is_err() {
            return Vec::new();
        }
        CrashRecord::load_all(&self.group_dir(group_id))
    }

    /// Where a group's cores and records are.
    pub fn group_dir(&self, group_id: &str) -> PathBuf {
        group_dir(&self.shared.engine_dir, group_id)
    }

    /// The directory holding one directory per group that has records
    /// (also written by the pipe helper while the daemon is down).
    pub fn groups_dir(&self) -> PathBuf {
        self.shared.engine_dir.join("groups")
    }

    /// Stop: restore `core_pattern`, stop the socket server and the exit
    /// thread.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        {
            let mut inner = self.shared.lock();
            inner.groups.clear();
            if let Some(owner) = inner.owner.take() {
                if let Err(e) = owner.restore() {
                    tracing::error!("restoring core_pattern at shutdown: {e}");
                }
            }
            inner.installed.clear();
            if let Err(e) = State::remove(&self.shared.engine_dir) {
                tracing::error!("removing the coredump state: {e}");
            }
        }
        self.socket.take();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.exits.take() {
            let _ = t.join();
        }
    }

    fn check_interval(&self, inner: &Inner, group_id: &str) -> Result<(), ApiError> {
        match inner.last_set.get(group_id) {
            Some(at) if at.elapsed() < self.shared.min_interval => {
                Err(ApiError::CoredumpRefreshIntervalTooShort)
            }
            _ => Ok(()),
        }
    }

    /// Someone else rewrote `core_pattern`: give it up without a fight,
    /// drop our groups, and report it.
    fn check_still_ours(&self, inner: &mut Inner) -> Result<(), ApiError> {
        let Some(owner) = inner.owner.take() else {
            return Ok(());
        };
        if owner.still_ours() {
            inner.owner = Some(owner);
            return Ok(());
        }
        let now = pattern::read(pattern::CORE_PATTERN).unwrap_or_default();
        owner.abandon();
        for g in std::mem::take(&mut inner.groups).into_values() {
            let _ = self.shared.filter.remove(g.cgroup_id);
        }
        inner.installed.clear();
        let _ = State::remove(&self.shared.engine_dir);
        tracing::warn!(
            core_pattern = now,
            "core_pattern was taken over; coredump groups dropped"
        );
        Err(ApiError::CorePatternUpdateFail(format!(
            "core_pattern was changed to `{now}` by someone else"
        )))
    }

    fn cgroup_in_use(&self, inner: &Inner, id: u64) -> bool {
        inner.groups.values().any(|g| g.cgroup_id == id)
    }

    fn install(&self, inner: &mut Inner) -> Result<(), ApiError> {
        if inner.owner.is_some() {
            return Ok(());
        }
        let mut last_error = None;
        for ours in self.candidate_patterns() {
            match self.install_one(inner, &ours) {
                Ok(()) => return Ok(()),
                // EINVAL: this kernel does not know the `@@` form.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_error = Some((ours, e)),
                Err(e) => last_error = Some((ours, e)),
            }
            if last_error
                .as_ref()
                .is_some_and(|(_, e)| e.raw_os_error() != Some(libc::EINVAL))
            {
                break;
            }
        }
        let (ours, e) = last_error.expect("at least one candidate pattern");
        Err(ApiError::CorePatternUpdateFail(format!(
            "installing `{ours}`: {e}"
        )))
    }

    fn install_one(&self, inner: &mut Inner, ours: &str) -> std::io::Result<()> {
        let pipe_limit =
            (self.shared.mode == Mode::Pipe).then_some(self.shared.limits.max_concurrent);
        let shared = &self.shared;
        let groups = inner.groups.clone();
        // Set before the pattern is written: the first connection may come
        // right after.
        shared
            .request_protocol
            .store(ours.starts_with("@@"), Ordering::Relaxed);
        let owner = CorePatternOwner::install(ours, pipe_limit, |previous, previous_limit| {
            State {
                previous_pattern: previous.to_owned(),
                previous_pipe_limit: previous_limit.to_owned(),
                installed_pattern: ours.to_owned(),
                mode: shared.mode,
                data_dir: shared.data_dir.clone(),
                limits: shared.limits.clone(),
                groups,
            }
            .save(&shared.engine_dir)
        })?;
        tracing::info!(
            core_pattern = ours,
            previous = owner.previous_pattern(),
            "core_pattern installed"
        );
        inner.owner = Some(owner);
        inner.installed = ours.to_owned();
        Ok(())
    }

    fn persist(&self, inner: &Inner) -> Result<(), ApiError> {
        let result = match self.shared.state_of(inner) {
            Some(state) => state.save(&self.shared.engine_dir),
            None => State::remove(&self.shared.engine_dir),
        };
        result.map_err(|e| ApiError::InternalError(format!("saving the coredump state: {e}")))
    }
}

impl Drop for Coredump {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A state file left by a daemon that did not shut down cleanly: put the
/// previous `core_pattern` back if ours is still installed.
fn recover(engine_dir: &Path) -> Result<(), CoredumpError> {
    let state = State::load(engine_dir).map_err(io_err("reading the coredump state"))?;
    if let Some(state) = state {
        tracing::warn!(
            previous = state.previous_pattern,
            "coredump state of an unclean stop found; restoring core_pattern"
        );
        pattern::restore_if_ours(
            &state.installed_pattern,
            &state.previous_pattern,
            &state.previous_pipe_limit,
        )
        .map_err(io_err("restoring core_pattern"))?;
        State::remove(engine_dir).map_err(io_err("removing the coredump state"))?;
    }
    Ok(())
}

/// Group ids name directories: letters, digits, `-`, `_` and `.`.
fn check_group_id(group_id: &str) -> Result<(), ApiError> {
    let ok = !group_id.is_empty()
        && group_id.len() <= 128
        && !group_id.starts_with('.')
        && group_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidParameter(format!(
            "ContainerGroupId `{group_id}` is not a valid group id"
        )))
    }
}

/// An exit waiting for its core's record.
struct PendingExit {
    event: ExitEvent,
    group_id: String,
    deadline: Instant,
}

/// Completes records with the deaths the kernel reports.
fn exit_loop(mut monitor: ExitMonitor, shared: &Shared, stop: &AtomicBool) {
    let mut pending: Vec<PendingExit> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(event) = monitor.next_timeout(Duration::from_millis(100)) {
            log_exit(&event);
            let group = shared
                .lock()
                .groups
                .iter()
                .find(|(_, g)| g.cgroup_id == event.group_cgroup_id)
                .map(|(id, _)| id.clone());
            match group {
                // A core is on its way: wait for its record as long as a
                // dump may take. Otherwise a short grace covers a record
                // written just after the exit.
                Some(group_id) => pending.push(PendingExit {
                    deadline: Instant::now()
                        + if event.core_dumped() == Some(false) {
                            Duration::from_secs(2)
                        } else {
                            Duration::from_secs(shared.limits.dump_timeout_secs + 5)
                        },
                    event,
                    group_id,
                }),
                None => tracing::debug!(pid = event.pid, "exit of a group no longer enabled"),
            }
        }
        pending.retain(|p| !complete_record(shared, p));
    }
}

/// Merge an exit into its record; `true` when done with it.
fn complete_record(shared: &Shared, p: &PendingExit) -> bool {
    let dir = group_dir(&shared.engine_dir, &p.group_id);
    let e = &p.event;
    let exit = ExitInfo {
        tid: e.tid,
        signal: e.sig,
        si_code: e.si_code,
        exit_code: e.exit_code,
        core_dumped: e.core_dumped(),
        comm: String::from_utf8_lossy(e.comm()).into_owned(),
        cgroup_id: e.cgroup_id,
        ktime_ns: e.ktime_ns,
    };
    let now = handler::now_secs();
    if let Some(mut record) = CrashRecord::find(&dir, e.pid, now, 300) {
        if record.exit.is_none() {
            record.exit = Some(exit);
            if let Err(err) = record.save(&dir) {
                tracing::error!(id = record.id, "saving crash record: {err}");
            }
        }
        return true;
    }
    if Instant::now() < p.deadline {
        return false;
    }
    let record = CrashRecord {
        id: format!("{now}-{}", e.pid),
        group_id: p.group_id.clone(),
        time: now,
        pid: e.pid,
        tid: Some(e.tid),
        signal: Some(e.sig),
        si_code: Some(e.si_code),
        comm: Some(exit.comm.clone()),
        cgroup_id: Some(e.cgroup_id),
        no_core_reason: Some(if e.core_dumped() == Some(true) {
            NoCoreReason::WriteFailed("the kernel dumped a core, but no handler recorded it".into())
        } else {
            NoCoreReason::NotDumpedByKernel
        }),
        exit: Some(exit),
        ..Default::default()
    };
    if let Err(err) = std::fs::create_dir_all(&dir).and_then(|()| record.save(&dir)) {
        tracing::error!("saving crash record: {err}");
    }
    true
}

fn log_exit(e: &ExitEvent) {
    tracing::info!(
        pid = e.pid,
        tid = e.tid,
        comm = %String::from_utf8_lossy(e.comm()),
        signal = e.sig,
        si_code = e.si_code,
        exit_code = e.exit_code,
        cgroup_id = e.cgroup_id,
        "abnormal exit"
    );
}

/// The pipe helper's arguments after the subcommand:
/// `<data_dir> %P %i %s %t %c %d`.
pub fn run_pipe_handler(args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // The kernel's recursion guard: a helper with RLIMIT_CORE=1 that crashes
    // is not dumped again.
    let one = libc::rlimit {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &one) };
    ensure_std_fds();
    let [data_dir, pid, tid, sig, time, limit, dump_mode] = args else {
        anyhow::bail!("usage: ops {HANDLER_SUBCOMMAND} <data_dir> %P %i %s %t %c %d");
    };
    let engine_dir = Path::new(data_dir).join("coredump");
    let Some(state) = State::load(&engine_dir).context("reading the coredump state")? else {
        // A stale pattern from a daemon that restored nothing: no group is
        // enabled and nothing is known about the previous pattern.
        return Ok(());
    };
    // A hard stop beyond the dump's own time bound: the kernel then sees a
    // closed pipe and lets the crashing process go.
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm((state.limits.dump_timeout_secs + 10) as u32) };
    let req = handler::CoreRequest {
        pid: pid.parse().context("%P")?,
        tid: tid.parse().ok(),
        signal: sig.parse().ok(),
        time: time.parse().ok(),
        core_limit: limit.parse().ok(),
        dump_mode: dump_mode.parse().ok(),
    };
    let mount = cgroup::mount_point().ok();
    let stdin = std::io::stdin();
    let fd = std::os::fd::AsFd::as_fd(&stdin);
    handler::handle(&state, &engine_dir, mount.as_deref(), Mode::Pipe, &req, fd);
    Ok(())
}

/// A kernel usermode helper may start without fds 1 and 2: make sure files
/// we open cannot land there (a log line would go into a core).
fn ensure_std_fds() {
    for fd in [1, 2] {
        // SAFETY: F_GETFD on any number is harmless.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: opening /dev/null takes the lowest free fd, `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
