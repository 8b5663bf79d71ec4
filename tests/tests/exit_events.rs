//! The exit slice end to end: the real `ops-exit` tracepoints report a child
//! that dies of a real SIGSEGV (a fault, not a sent signal) with its pid,
//! signal, si_code and exit code, and their aya-log lines reach `log`.

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use ops_common::exit::{ExitEvent, WCOREFLAG};
use ops_tests::privileged;
use ops_user::ebpf::{
    exits::{ExitMonitor, ExitScope},
    logs::LogForwarder,
};

const SEGV_MAPERR: i32 = 1;

/// Collects every `log` record, to check that kernel-side lines arrive.
struct Collect(Mutex<Vec<String>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

fn logs() -> &'static Collect {
    static LOGS: OnceLock<&'static Collect> = OnceLock::new();
    LOGS.get_or_init(|| {
        let c: &'static Collect = Box::leak(Box::new(Collect(Mutex::new(Vec::new()))));
        log::set_logger(c).expect("only this test sets the logger");
        log::set_max_level(log::LevelFilter::Trace);
        c
    })
}

/// Fork a child that faults on a null write. No core file: RLIMIT_CORE=0,
/// set in the child only.
fn crash_child() -> u32 {
    // SAFETY: the child only calls async-signal-safe functions (setrlimit)
    // and then faults; it never returns into Rust code of the parent.
    unsafe {
        match libc::fork() {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                let zero = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &zero);
                std::ptr::write_volatile(std::ptr::null_mut::<u32>(), 1);
                libc::_exit(0);
            }
            pid => pid as u32,
        }
    }
}

fn wait_for(monitor: &mut ExitMonitor, pid: u32) -> ExitEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(event) = monitor.next_timeout(Duration::from_millis(200)) {
            if event.pid == pid {
                return event;
            }
        }
    }
    panic!("no exit event for pid {pid}");
}

#[test]
fn segfaulting_child_is_reported_with_pid_and_signal() {
    if !privileged("segfaulting_child_is_reported_with_pid_and_signal") {
        return;
    }
    let logs = logs();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let mut monitor = ExitMonitor::start(ExitScope::All).expect("start exit monitor");
    let forwarder = LogForwarder::start(monitor.ebpf_mut(), "ops-exit");
    assert!(
        forwarder.is_some(),
        "ops-exit logs, so it must have a log map"
    );

    let pid = crash_child();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(
        unsafe { libc::waitpid(pid as i32, &mut status, 0) },
        pid as i32
    );
    assert!(libc::WIFSIGNALED(status));
    assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);

    let event = wait_for(&mut monitor, pid);
    assert_eq!(event.pid, pid);
    assert_eq!(event.tid, pid, "single-threaded child");
    assert_eq!(event.sig, libc::SIGSEGV);
    assert_eq!(
        event.si_code, SEGV_MAPERR,
        "a real fault, not a sent signal"
    );
    // The child's exit code as the kernel set it: the signal, and no core
    // (RLIMIT_CORE=0 with a file core_pattern; a pipe pattern would dump).
    assert_eq!(event.exit_code & 0x7f, libc::SIGSEGV);
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    if !pattern.starts_with('|') && !pattern.starts_with('@') {
        assert_eq!(event.exit_code & WCOREFLAG, 0);
    }
    assert!(event.cgroup_id != 0);
    assert!(!event.comm().is_empty());

    // aya-log lines of the programs reach the `log` facade at debug level.
    let needle = format!("exit of pid {pid} tid {pid} by signal 11");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        runtime.block_on(tokio::time::sleep(Duration::from_millis(50)));
        let lines = logs.0.lock().unwrap();
        if lines
            .iter()
            .any(|l| l.starts_with("DEBUG") && l.contains(&needle))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line `{needle}` in {lines:?}"
        );
    }
}

#[test]
fn handled_signals_are_not_exits() {
    if !privileged("handled_signals_are_not_exits") {
        return;
    }
    let mut monitor = ExitMonitor::start(ExitScope::All).expect("start exit monitor");
    // A shell that traps SEGV survives it and then exits normally.
    let child = std::process::Command::new("sh")
        .args(["-c", "trap 'exit 3' SEGV; kill -SEGV $$; sleep 1"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(3));
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        if let Some(event) = monitor.next_timeout(Duration::from_millis(100)) {
            assert_ne!(event.pid, pid, "a handled SIGSEGV was reported: {event:?}");
        }
    }
}

/// Run `sh -c 'kill -SEGV $$'` inside the cgroup `dir`, without a core
/// (RLIMIT_CORE 0); returns its pid once it died.
fn segv_in_cgroup(dir: &std::path::Path) -> u32 {
    use std::os::unix::process::CommandExt as _;
    let procs = dir.join("cgroup.procs");
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "kill -SEGV $$"]);
    // SAFETY: only raw syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            std::fs::write(&procs, "0")
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGSEGV)
    );
    pid
}

/// A nested cgroup, removed (before its parent) on drop.
struct Nested(std::path::PathBuf);

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn only_enabled_cgroups_and_their_descendants_are_reported() {
    if !privileged("only_enabled_cgroups_and_their_descendants_are_reported") {
        return;
    }
    use ops_tests::coredump::TestCgroup;
    use ops_user::tasks::coredump::cgroup::id_of;
    let group = TestCgroup::new("ex-group");
    let leaf = Nested(group.dir.join("leaf"));
    std::fs::create_dir(&leaf.0).unwrap();
    let other = TestCgroup::new("ex-other");
    let (group_id, leaf_id) = (id_of(&group.dir).unwrap(), id_of(&leaf.0).unwrap());

    let mut monitor = ExitMonitor::start(ExitScope::EnabledCgroups).expect("start exit monitor");
    let filter = monitor.cgroup_filter();
    filter.add(group_id).unwrap();

    let outside = segv_in_cgroup(&other.dir);
    let inside = segv_in_cgroup(&leaf.0);
    let event = wait_for(&mut monitor, inside);
    assert_eq!(event.sig, libc::SIGSEGV);
    assert_eq!(event.cgroup_id, leaf_id, "the task's own cgroup");
    assert_eq!(event.group_cgroup_id, group_id, "the enabled ancestor");

    // Nothing from the other cgroup, and nothing once the group is removed.
    filter.remove(group_id).unwrap();
    let after = segv_in_cgroup(&leaf.0);
    let deadline = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < deadline {
        if let Some(e) = monitor.next_timeout(Duration::from_millis(100)) {
            assert!(
                e.pid != outside && e.pid != after,
                "reported outside the enabled cgroups: {e:?}"
            );
        }
    }
    drop(leaf);
}
