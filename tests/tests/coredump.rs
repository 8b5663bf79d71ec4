//! The coredump engine end to end, on real crashes: a C crasher with
//! symbols dies of SIGSEGV, SIGABRT, SIGBUS and SIGQUIT in a test cgroup;
//! gdb reads the stored core; the eBPF exit event completes each record;
//! `core_pattern` is always put back byte for byte.
//!
//! Every test touches the machine-wide `core_pattern`, so they run one at a
//! time (a process-wide lock) under a guard that restores it on panic.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ops_tests::{
    coredump::{
        build_crasher, core_pattern_lock, ops_binary, read_sysctl, run_in, SysctlGuard, TempDir,
        TestCgroup, CORE_PATTERN,
    },
    kernel, privileged, sh,
};
use ops_user::{
    api::error::ApiError,
    ebpf::exits::{ExitMonitor, ExitScope},
    tasks::coredump::{
        Coredump, CoredumpConfig, CoredumpSettings, CrashRecord, EnableOptions, Limits, Mode,
        ModeChoice, NoCoreReason,
    },
};

fn engine(data: &Path, mode: ModeChoice, limits: Limits, min_interval_secs: u64) -> Coredump {
    let monitor = ExitMonitor::start(ExitScope::EnabledCgroups).expect("exit monitor");
    Coredump::start(
        CoredumpConfig {
            data_dir: data.to_path_buf(),
            settings: CoredumpSettings {
                mode,
                handler_exe: Some(ops_binary()),
                min_interval_secs,
                limits,
            },
        },
        monitor,
    )
    .expect("start the coredump engine")
}

/// The core_pattern modes this kernel offers, each with a tag: socket and
/// pipe on 6.16+, the pipe alone before (said on stderr, not hidden).
fn modes_here() -> Vec<(ModeChoice, &'static str)> {
    if kernel::has_core_socket() {
        vec![(ModeChoice::Socket, "s"), (ModeChoice::Pipe, "p")]
    } else {
        kernel::report_path(
            "core_pattern socket mode",
            "absent from this kernel; pipe only",
        );
        vec![(ModeChoice::Pipe, "p")]
    }
}

fn test_limits() -> Limits {
    Limits {
        max_use: 256 << 20,
        keep_free: 1 << 20,
        dump_timeout_secs: 20,
        ..Limits::default()
    }
}

/// The record of `pid`, once the exit monitor has completed it.
fn wait_record(cd: &Coredump, group: &str, pid: u32) -> CrashRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = cd
            .records(group)
            .into_iter()
            .find(|r| r.pid == pid && r.exit.is_some())
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no complete record for pid {pid}: {:#?}",
            cd.records(group)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// gdb's backtrace and `$pc` for a stored (zstd) core.
fn gdb(exe: &Path, core_zst: &Path, work: &Path) -> (String, u64) {
    let core = work.join("core.raw");
    sh(&[
        "zstd",
        "-q",
        "-f",
        "-d",
        core_zst.to_str().unwrap(),
        "-o",
        core.to_str().unwrap(),
    ]);
    let out = sh(&[
        "gdb",
        "-batch",
        "-nx",
        "-ex",
        "bt",
        "-ex",
        "p/x $pc",
        exe.to_str().unwrap(),
        core.to_str().unwrap(),
    ]);
    let pc = out
        .lines()
        .rev()
        .find_map(|l| l.split_once("= 0x"))
        .map(|(_, hex)| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no $pc in gdb output:\n{out}"));
    let _ = std::fs::remove_file(&core);
    (out, pc)
}

fn crashes_are_stored_and_gdb_reads_them(mode: ModeChoice, tag: &str) {
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let work = TempDir::new(&format!("{tag}-work"));
    let data = TempDir::new(&format!("{tag}-data"));
    let crasher = build_crasher(&work.0);
    let cgroup = TestCgroup::new(tag);
    let cd = engine(&data.0, mode, test_limits(), 0);
    assert_eq!(
        cd.mode(),
        if mode == ModeChoice::Pipe {
            Mode::Pipe
        } else {
            Mode::Socket
        }
    );
    let group = format!("eci-{tag}");
    cd.apply(&group, &cgroup.dir, "enable").unwrap();
    let installed = cd.installed_pattern().unwrap();
    assert_eq!(read_sysctl(CORE_PATTERN).trim_end(), installed);
    if mode == ModeChoice::Socket {
        // This kernel (6.18) speaks the request protocol.
        assert!(installed.starts_with("@@/"), "{installed}");
    }

    for (what, sig, function) in [
        ("segv", libc::SIGSEGV, "crash_segv"),
        ("abrt", libc::SIGABRT, "crash_abrt"),
        ("bus", libc::SIGBUS, "crash_bus"),
        ("quit", libc::SIGQUIT, "crash_quit"),
    ] {
        let (pid, status) = run_in(Some(&cgroup.dir), &work.0, &crasher, &[what]);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(sig)
        );
        assert!(std::os::unix::process::ExitStatusExt::core_dumped(&status));
        let r = wait_record(&cd, &group, pid);
        assert_eq!(r.signal, Some(sig), "{what}: {r:#?}");
        assert_eq!(r.no_core_reason, None, "{what}: {r:#?}");
        let core = r.core.as_ref().expect("a stored core");
        assert!(!core.truncated && core.zstd && core.size > 0, "{r:#?}");
        let path = cd.group_dir(&group).join(&core.file);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        assert_eq!(meta.len(), core.stored_size);
        // The eBPF exit event was seen, with the core flag.
        let exit = r.exit.as_ref().unwrap();
        assert_eq!(exit.signal, sig);
        assert_eq!(exit.core_dumped, Some(true), "{r:#?}");
        assert_eq!(r.exe.as_deref(), Some(crasher.to_str().unwrap()));
        assert!(
            r.mapped_files
                .iter()
                .any(|f| f == crasher.to_str().unwrap()),
            "{r:#?}"
        );
        // gdb, independently, on the stored core.
        let (bt, pc) = gdb(&crasher, &path, &work.0);
        assert!(
            bt.contains(function),
            "{what}: gdb bt lacks {function}:\n{bt}"
        );
        assert_eq!(r.pc, Some(pc), "{what}: record pc vs gdb $pc");
        if sig == libc::SIGSEGV {
            assert_eq!(r.fault_addr, Some(0));
        }
    }
    cd.disable(&group).unwrap();
    assert!(guard.unchanged(), "core_pattern not restored after disable");
    cd.shutdown();
    assert!(guard.unchanged());
}

#[test]
fn socket_mode_crashes_are_stored_and_gdb_reads_them() {
    if !privileged("socket_mode_crashes_are_stored_and_gdb_reads_them") {
        return;
    }
    if !kernel::has_core_socket() {
        // Before 6.16 the socket mode cannot exist: the engine must refuse
        // it plainly rather than fall back behind the caller's back.
        let _lock = core_pattern_lock();
        let guard = SysctlGuard::new();
        let data = TempDir::new("cd-sock-none");
        let monitor = ExitMonitor::start(ExitScope::EnabledCgroups).expect("exit monitor");
        let err = Coredump::start(
            CoredumpConfig {
                data_dir: data.0.clone(),
                settings: CoredumpSettings {
                    mode: ModeChoice::Socket,
                    handler_exe: Some(ops_binary()),
                    min_interval_secs: 0,
                    limits: test_limits(),
                },
            },
            monitor,
        )
        .err()
        .expect("socket mode refused without kernel support");
        assert!(err.to_string().contains("socket"), "{err}");
        assert!(guard.unchanged());
        kernel::report_path(
            "core_pattern",
            "socket refused: no coredump socket before 6.16",
        );
        return;
    }
    kernel::report_path("core_pattern", "socket");
    crashes_are_stored_and_gdb_reads_them(ModeChoice::Socket, "cd-sock");
}

#[test]
fn pipe_mode_crashes_are_stored_and_gdb_reads_them() {
    if !privileged("pipe_mode_crashes_are_stored_and_gdb_reads_them") {
        return;
    }
    kernel::report_path("core_pattern", "pipe");
    crashes_are_stored_and_gdb_reads_them(ModeChoice::Pipe, "cd-pipe");
}

/// A previous pipe handler of our own: it saves the core and its args.
fn previous_handler(dir: &Path) -> String {
    let script = dir.join("prev.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > {d}/prev-$1.core\necho \"$1 $2\" > {d}/prev-$1.marker\n",
            d = dir.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "755", script.to_str().unwrap()]);
    format!("|{} %p %s", script.display())
}

fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn other_cores_go_to_the_previous_pipe_handler() {
    if !privileged("other_cores_go_to_the_previous_pipe_handler") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let work = TempDir::new("cd-prev-work");
    let crasher = build_crasher(&work.0);
    let previous = previous_handler(&work.0);
    std::fs::write(CORE_PATTERN, &previous).unwrap();
    let enabled = TestCgroup::new("cd-prev-on");
    let disabled = TestCgroup::new("cd-prev-off");
    for (mode, tag) in modes_here() {
        let data = TempDir::new(&format!("cd-prev-data-{tag}"));
        let cd = engine(&data.0, mode, test_limits(), 0);
        cd.enable("eci-prev", &enabled.dir, EnableOptions::default())
            .unwrap();
        for cgroup in [Some(disabled.dir.as_path()), None] {
            let (pid, _) = run_in(cgroup, &work.0, &crasher, &["segv"]);
            let marker = wait_file(&work.0.join(format!("prev-{pid}.marker")));
            assert_eq!(marker.trim(), format!("{pid} 11"), "{tag}");
            // The whole core went through: an ELF core of the crasher.
            let core = std::fs::read(work.0.join(format!("prev-{pid}.core"))).unwrap();
            assert!(core.starts_with(b"\x7fELF") && core.len() > 4096, "{tag}");
            assert!(!cd.records("eci-prev").iter().any(|r| r.pid == pid));
        }
        assert!(
            std::fs::read_dir(cd.group_dir("eci-prev"))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
            "no core of ours"
        );
        cd.disable("eci-prev").unwrap();
        assert_eq!(read_sysctl(CORE_PATTERN).trim_end(), previous);
        cd.shutdown();
    }
    drop(guard);
}

#[test]
fn crashes_without_cores_are_recorded_with_the_reason() {
    if !privileged("crashes_without_cores_are_recorded_with_the_reason") {
        return;
    }
    let _lock = core_pattern_lock();
    let _guard = SysctlGuard::new();
    let work = TempDir::new("cd-why-work");
    let data = TempDir::new("cd-why-data");
    let crasher = build_crasher(&work.0);
    let cgroup = TestCgroup::new("cd-why");
    let cd = engine(&data.0, ModeChoice::Auto, test_limits(), 0);
    cd.apply("eci-why", &cgroup.dir, "enable").unwrap();

    let (pid, _) = run_in(Some(&cgroup.dir), &work.0, &crasher, &["segv", "limit0"]);
    let r = wait_record(&cd, "eci-why", pid);
    assert_eq!(
        r.no_core_reason,
        Some(NoCoreReason::CoreLimitZero),
        "{r:#?}"
    );
    assert!(r.core.is_none());
    assert_eq!(r.exit.as_ref().unwrap().signal, libc::SIGSEGV);

    let (pid, _) = run_in(Some(&cgroup.dir), &work.0, &crasher, &["segv", "nodump"]);
    let r = wait_record(&cd, "eci-why", pid);
    assert_eq!(
        r.no_core_reason,
        Some(NoCoreReason::NotDumpedByKernel),
        "{r:#?}"
    );
    assert_eq!(r.exit.as_ref().unwrap().core_dumped, Some(false));
    cd.shutdown();
}

#[test]
fn a_crash_storm_is_rate_limited_and_every_crash_recorded() {
    if !privileged("a_crash_storm_is_rate_limited_and_every_crash_recorded") {
        return;
    }
    let _lock = core_pattern_lock();
    let _guard = SysctlGuard::new();
    let work = TempDir::new("cd-storm-work");
    let data = TempDir::new("cd-storm-data");
    let crasher = build_crasher(&work.0);
    let cgroup = TestCgroup::new("cd-storm");
    let limits = Limits {
        rate_burst: 10,
        rate_interval_secs: 600,
        max_use: 64 << 20,
        ..test_limits()
    };
    let cd = engine(&data.0, ModeChoice::Pipe, limits, 0);
    cd.apply("eci-storm", &cgroup.dir, "enable").unwrap();
    let started = Instant::now();
    let pids: Vec<u32> = (0..50)
        .map(|_| run_in(Some(&cgroup.dir), &work.0, &crasher, &["segv"]).0)
        .collect();
    let crashing = started.elapsed();
    for &pid in &pids {
        wait_record(&cd, "eci-storm", pid);
    }
    eprintln!(
        "50 crashes in {crashing:.1?}, all recorded after {:.1?}",
        started.elapsed()
    );
    let records = cd.records("eci-storm");
    let with_core = records.iter().filter(|r| r.core.is_some()).count();
    let limited = records
        .iter()
        .filter(|r| r.no_core_reason == Some(NoCoreReason::RateLimited))
        .count();
    assert_eq!(records.len(), 50, "{records:#?}");
    assert_eq!(with_core, 10);
    assert_eq!(limited, 40);
    let stored: u64 = records
        .iter()
        .filter_map(|r| r.core.as_ref())
        .map(|c| c.stored_size)
        .sum();
    assert!(stored <= 64 << 20);
    cd.shutdown();
}

#[test]
fn requests_are_checked_and_a_taken_over_pattern_is_not_fought() {
    if !privileged("requests_are_checked_and_a_taken_over_pattern_is_not_fought") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let data = TempDir::new("cd-req-data");
    let a = TestCgroup::new("cd-req-a");
    let b = TestCgroup::new("cd-req-b");
    let cd = engine(&data.0, ModeChoice::Auto, test_limits(), 30);
    assert_eq!(
        cd.apply("eci-a", &a.dir, "on").unwrap_err().code(),
        "Ops.OpsValueInvalid"
    );
    assert_eq!(
        cd.apply(
            "eci-a",
            &a.dir,
            r#"{"Enable": true, "CorePattern": "|/bin/x"}"#
        )
        .unwrap_err()
        .code(),
        "Coredump.InvalidCorePatternType"
    );
    assert_eq!(
        cd.apply(
            "eci-a",
            &a.dir,
            r#"{"Enable": true, "CorePattern": "/a/../b"}"#
        )
        .unwrap_err()
        .code(),
        "InvalidCorePatternValue"
    );
    cd.apply("eci-a", &a.dir, "enable").unwrap();
    assert_eq!(
        cd.apply("eci-a", &a.dir, "disable").unwrap_err(),
        ApiError::CoredumpRefreshIntervalTooShort
    );
    // Someone else takes core_pattern: we do not fight, and say so.
    std::fs::write(CORE_PATTERN, "core.other.%p").unwrap();
    let err = cd.apply("eci-b", &b.dir, "enable").unwrap_err();
    assert_eq!(err.code(), "CorePattern.UpdateFail", "{err}");
    assert_eq!(read_sysctl(CORE_PATTERN), "core.other.%p\n");
    cd.shutdown();
    assert_eq!(read_sysctl(CORE_PATTERN), "core.other.%p\n");
    drop(guard);
}

/// `ops serve` with one group enabled from the command line.
fn serve(data: &Path, cgroup: Option<&Path>, mode: &str) -> std::process::Child {
    let mut cmd = Command::new(ops_binary());
    cmd.args(["serve", "--data-dir", data.to_str().unwrap()])
        .env("OPS_COREDUMP_MODE", mode)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(c) = cgroup {
        cmd.arg("--coredump")
            .arg(format!("eci-serve={}", c.display()));
    }
    cmd.spawn().unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &mut std::process::Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    child.wait().unwrap();
}

#[test]
fn core_pattern_survives_sigterm_and_sigkill_of_the_daemon() {
    if !privileged("core_pattern_survives_sigterm_and_sigkill_of_the_daemon") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let cgroup = TestCgroup::new("cd-serve");
    let work = TempDir::new("cd-serve-work");
    let crasher = build_crasher(&work.0);
    for mode in modes_here().into_iter().map(|(m, _)| match m {
        ModeChoice::Socket => "socket",
        _ => "pipe",
    }) {
        let data = TempDir::new(&format!("cd-serve-{mode}"));
        // SIGTERM: a clean stop restores.
        let mut daemon = serve(&data.0, Some(&cgroup.dir), mode);
        wait_until("ops serve to take core_pattern", || !guard.unchanged());
        kill(&mut daemon, libc::SIGTERM);
        assert!(guard.unchanged(), "{mode}: not restored after SIGTERM");

        // SIGKILL: the pattern stays ours until the next start restores it.
        let mut daemon = serve(&data.0, Some(&cgroup.dir), mode);
        wait_until("ops serve to take core_pattern", || !guard.unchanged());
        kill(&mut daemon, libc::SIGKILL);
        assert!(!guard.unchanged(), "{mode}: nothing ran at SIGKILL");
        let state: PathBuf = data.0.join("coredump/state.json");
        assert!(state.exists());
        if mode == "pipe" {
            // The pipe helper needs no daemon: a crash meanwhile is stored.
            let (pid, _) = run_in(Some(&cgroup.dir), &work.0, &crasher, &["segv"]);
            let dir = data.0.join("coredump/groups/eci-serve");
            let records = CrashRecord::load_all(&dir);
            let r = records
                .iter()
                .find(|r| r.pid == pid)
                .unwrap_or_else(|| panic!("no record while the daemon was down: {records:#?}"));
            assert!(r.core.is_some(), "{r:#?}");
        }
        let mut daemon = serve(&data.0, None, mode);
        wait_until("the restart to restore core_pattern", || guard.unchanged());
        wait_until("the state file to go", || !state.exists());
        kill(&mut daemon, libc::SIGTERM);
        assert!(guard.unchanged(), "{mode}");
    }
    drop(guard);
}

#[test]
fn group_core_pattern_copy_and_previous_file_pattern() {
    if !privileged("group_core_pattern_copy_and_previous_file_pattern") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let work = TempDir::new("cd-file-work");
    let data = TempDir::new("cd-file-data");
    let crasher = build_crasher(&work.0);
    // The previous pattern is a plain file name, relative to the crashing
    // process's cwd.
    std::fs::write(CORE_PATTERN, "core.prev").unwrap();
    let uses_pid = read_sysctl("/proc/sys/kernel/core_uses_pid").trim() == "1";
    let enabled = TestCgroup::new("cd-file-on");
    let copies = work.0.join("copies");
    std::fs::create_dir(&copies).unwrap();
    let cd = engine(&data.0, ModeChoice::Auto, test_limits(), 0);
    let value = format!(
        r#"{{"Enable": true, "CorePattern": "{}/core.%e.%p"}}"#,
        copies.display()
    );
    cd.apply("eci-file", &enabled.dir, &value).unwrap();

    // In the group: stored, and a full copy at the group's own pattern
    // (through the process's root, which is the host's here).
    let (pid, _) = run_in(Some(&enabled.dir), &work.0, &crasher, &["segv"]);
    let r = wait_record(&cd, "eci-file", pid);
    let copy = copies.join(format!("core.crasher.{pid}"));
    assert_eq!(
        r.container_copy.as_deref(),
        Some(copy.to_str().unwrap()),
        "{r:#?}"
    );
    let bytes = std::fs::read(&copy).unwrap();
    assert!(bytes.starts_with(b"\x7fELF"));
    assert_eq!(bytes.len() as u64, r.core.as_ref().unwrap().size);

    // Outside: the previous file pattern's behaviour, in the cwd.
    let (pid, _) = run_in(None, &work.0, &crasher, &["segv"]);
    let name = if uses_pid {
        format!("core.prev.{pid}")
    } else {
        "core.prev".to_owned()
    };
    let file = work.0.join(name);
    wait_until("the previous pattern's core file", || file.exists());
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let out = sh(&[
        "gdb",
        "-batch",
        "-nx",
        "-ex",
        "bt",
        crasher.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("crash_segv"), "{out}");
    cd.shutdown();
    assert_eq!(read_sysctl(CORE_PATTERN), "core.prev\n");
    drop(guard);
}

#[test]
fn size_and_space_limits_cut_or_refuse_cores() {
    if !privileged("size_and_space_limits_cut_or_refuse_cores") {
        return;
    }
    let _lock = core_pattern_lock();
    let _guard = SysctlGuard::new();
    let work = TempDir::new("cd-size-work");
    let data = TempDir::new("cd-size-data");
    let crasher = build_crasher(&work.0);
    let cgroup = TestCgroup::new("cd-size");
    const CUT: u64 = 256 << 10;
    let limits = Limits {
        process_size_max: CUT,
        max_use: CUT + 1,
        zstd_level: 0,
        ..test_limits()
    };
    let cd = engine(&data.0, ModeChoice::Auto, limits, 0);
    cd.apply("eci-size", &cgroup.dir, "enable").unwrap();
    let (pid, _) = run_in(Some(&cgroup.dir), &work.0, &crasher, &["segv"]);
    let r = wait_record(&cd, "eci-size", pid);
    let core = r.core.as_ref().expect("a cut core");
    assert!(core.truncated && !core.zstd, "{r:#?}");
    assert_eq!(core.truncated_by.as_deref(), Some("process_size_max"));
    assert_eq!(core.size, CUT);
    // The notes come first, so the record's metadata is complete anyway.
    assert_eq!(r.signal, Some(libc::SIGSEGV));
    assert!(r.pc.is_some() && !r.mapped_files.is_empty(), "{r:#?}");

    // MaxUse is now reached: the next crash is recorded without a core.
    let (pid, _) = run_in(Some(&cgroup.dir), &work.0, &crasher, &["abrt"]);
    let r = wait_record(&cd, "eci-size", pid);
    assert_eq!(r.no_core_reason, Some(NoCoreReason::MaxUse), "{r:#?}");
    assert_eq!(r.exit.as_ref().unwrap().signal, libc::SIGABRT);
    cd.shutdown();
}

#[test]
fn a_stalled_previous_handler_does_not_hang_the_crashing_process() {
    if !privileged("a_stalled_previous_handler_does_not_hang_the_crashing_process") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let work = TempDir::new("cd-stall-work");
    let crasher = build_crasher(&work.0);
    // A previous handler that never reads its stdin.
    let script = work.0.join("stall.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    sh(&["chmod", "755", script.to_str().unwrap()]);
    std::fs::write(CORE_PATTERN, format!("|{}", script.display())).unwrap();
    let enabled = TestCgroup::new("cd-stall");
    for (mode, tag) in modes_here() {
        let data = TempDir::new(&format!("cd-stall-data-{tag}"));
        let limits = Limits {
            dump_timeout_secs: 2,
            ..test_limits()
        };
        let cd = engine(&data.0, mode, limits, 0);
        cd.apply("eci-stall", &enabled.dir, "enable").unwrap();
        let started = Instant::now();
        // Outside the group: the core goes to the stalled handler.
        let (_, status) = run_in(None, &work.0, &crasher, &["segv"]);
        let took = started.elapsed();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGSEGV)
        );
        eprintln!("{tag}: crash with a stalled previous handler took {took:.1?}");
        assert!(took < Duration::from_secs(10), "{tag}: {took:?}");
        cd.shutdown();
    }
    drop(guard);
}
