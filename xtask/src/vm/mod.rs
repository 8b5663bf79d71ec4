//! `cargo xtask vm-test`: the privileged integration suite on Debian's
//! 6.1 LTS cloud kernel, in QEMU.
//!
//! Node operators run older kernels than this project's development host,
//! and the fallbacks for them (clsact attach over netlink where there is no
//! TCX, a pipe `core_pattern` where there is no coredump socket) must run
//! for real. The run:
//!
//! 1. installs qemu, cpio, busybox-static (apt, only what is missing);
//! 2. builds every integration test binary of `ops-tests` and the `ops`
//!    binary, found through cargo's JSON messages, so a new
//!    `tests/tests/*.rs` is picked up with no change here;
//! 3. downloads the cloud kernel package and unpacks it under `target/vm/`
//!    (never installed; cached until the package version changes);
//! 4. packs an initramfs: busybox, `/init` (`init.sh`), the kernel modules
//!    the tests need, iproute2 and the other [`TOOLS`], the test binaries
//!    and `ops`, each with the shared libraries `ldd` lists;
//! 5. boots it (TCG unless KVM proves it works) and reads the serial
//!    console for `/init`'s marker lines, a kernel panic, or the time limit.
//!
//! Inside the guest, paths are the host's: a test binary at
//! `<target>/debug/deps/x-HASH` finds `ops` at `<target>/debug/ops` as it
//! does on the host, and `OPS_BIN` names that `ops` too. `CI=true` is set,
//! so a privileged test can never skip. Each binary runs with
//! `--test-threads=1 --nocapture`, so every test's stderr reaches the
//! console, and lines starting with `ops-path: ` (the mechanism a test took
//! on this kernel, e.g. TCX or clsact) are repeated in the summary.

mod binaries;
mod initramfs;
mod kernel;
mod qemu;

use std::{
    fs,
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context as _, Result};

use crate::util::is_root;
use initramfs::Initramfs;
use qemu::{Accel, End};

/// Host packages the VM run needs on top of `cargo xtask setup`'s
/// (binutils for objcopy, which strips the test binaries' DWARF).
const PACKAGES: &[&str] = &["qemu-system-x86", "cpio", "busybox-static", "binutils"];

/// Modules of the cloud kernel the tests need (veth pairs, the clsact
/// qdisc, cls_bpf filters with direct action). AF_PACKET, used by tcpdump,
/// is built in.
const MODULES: &[&str] = &["veth", "sch_ingress", "cls_bpf", "act_bpf"];

/// Host programs the tests run: iproute2, procps' sysctl, `sh` (the
/// host's dash, not busybox's: see initramfs.rs), the oracles tcpdump,
/// tshark and gdb (with its Python), and the traffic and compression tools
/// `cargo xtask setup` installs for the tests. More with `--tool`.
const TOOLS: &[&str] = &[
    "ip", "tc", "sysctl", "sh", "tcpdump", "tshark", "dumpcap", "gdb", "iperf3", "trafgen", "zstd",
];

/// Data directories of tools, shipped with them.
const TOOL_DATA: &[(&str, &str)] = &[
    ("gdb", "/usr/share/gdb"),
    ("tshark", "/usr/share/wireshark"),
];

/// Tests that cannot run in the guest at all, with the reason. They are
/// passed to every binary as `--skip` and listed in the summary, never
/// dropped silently. A test that can adapt to the kernel should adapt
/// instead (and say which path it took).
const VM_SKIPS: &[(&str, &str)] = &[];

/// Test binaries that do not run in the guest, with the reason, listed in
/// the summary. Only binaries that exercise nothing kernel-specific belong
/// here.
const VM_SKIP_BINARIES: &[(&str, &str)] = &[
    (
        "api_sdk",
        "drives the daemon through the official Python SDK from PyPI, which the guest \
         lacks; the API layer does not depend on the kernel (the host run covers it)",
    ),
    (
        "api_tasks",
        "drives the daemon through the official Python SDK from PyPI, which the guest \
         lacks; the engines it calls run in the guest through their own test binaries",
    ),
];

/// Marker lines from `/init` start with this and the run's nonce.
const MARKER: &str = "OPS-VM";
/// Tests announce the mechanism they exercised with lines starting so.
const PATH_PREFIX: &str = "ops-path: ";

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Only run tests whose name contains this (passed to every binary).
    pub filter: Option<String>,
    /// Another host program (a name on PATH, or an absolute path) to put in
    /// the guest at the same path, with its libraries; repeatable.
    #[arg(long = "tool")]
    pub tools: Vec<String>,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: Accel,
    /// Time limit for the whole VM run, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Time limit for one test binary inside the guest, in seconds.
    #[arg(long, default_value_t = 600)]
    pub test_timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
}

impl Args {
    /// The defaults, as `cargo xtask test --vm` uses them.
    pub fn with_filter(filter: Option<String>) -> Self {
        Self {
            filter,
            tools: Vec::new(),
            accel: Accel::Auto,
            timeout: 1800,
            test_timeout: 600,
            memory: 1024,
            cpus: 2,
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    if !is_root() {
        bail!("cargo xtask vm-test needs root (apt, mknod for the initramfs)");
    }
    crate::setup::run_setup()?;
    crate::setup::apt_install(PACKAGES)?;

    let phase = Instant::now();
    let mut tests = binaries::integration_tests()?;
    tests.retain(|t| !VM_SKIP_BINARIES.iter().any(|(name, _)| t.name == *name));
    let ops = binaries::ops()?;
    let built = phase.elapsed();

    let profile_dir = ops.path.parent().context("ops has a directory")?;
    let target = profile_dir.parent().context("profile has a directory")?;
    let vm_dir = target.join("vm");
    fs::create_dir_all(&vm_dir)?;

    let phase = Instant::now();
    let kernel = kernel::fetch(&vm_dir.join("kernel"))?;
    let modules = kernel::modules_in_load_order(&kernel, MODULES)?;
    let fetched = phase.elapsed();

    let phase = Instant::now();
    let nonce = nonce();
    let initrd = vm_dir.join("initrd.gz");
    let size = stage(args, &vm_dir, &tests, &ops.path, &modules, &nonce)?.pack(&initrd)?;
    let packed = phase.elapsed();
    eprintln!(
        "vm: {} test binaries, initramfs {:.1} MiB, kernel {}",
        tests.len(),
        size as f64 / (1 << 20) as f64,
        kernel.release
    );
    for (test, why) in VM_SKIPS.iter().chain(VM_SKIP_BINARIES) {
        eprintln!("vm: SKIPPED in the guest: {test}: {why}");
    }

    let accel = qemu::choose(args.accel, &kernel.vmlinuz, &vm_dir.join("accel.probe"));
    let log = vm_dir.join("console.log");
    let boot = qemu::Boot {
        vmlinuz: &kernel.vmlinuz,
        initrd: Some(&initrd),
        accel,
        // panic=-1 with -no-reboot: a panic ends QEMU at once. oops=panic:
        // an oops in a test's kernel path must not pass unnoticed.
        append: "console=ttyS0 panic=-1 oops=panic loglevel=4",
        memory_mb: args.memory,
        cpus: args.cpus,
        time_limit: Duration::from_secs(args.timeout),
        log: Some(log.clone()),
        echo: true,
    };
    eprintln!(
        "vm: booting {} ({accel:?}, {} MiB, {} CPUs, limit {}s); console copied to {}",
        kernel.package,
        args.memory,
        args.cpus,
        args.timeout,
        log.display()
    );
    let console = qemu::run(&boot)?;
    let report = Report::parse(&console.lines, &nonce);
    report.print(&tests);
    eprintln!(
        "vm: timings: build {:.1?}, kernel {:.1?}, initramfs {:.1?}, boot+tests {:.1?}, total {:.1?}",
        built,
        fetched,
        packed,
        console.elapsed,
        started.elapsed()
    );
    let mut problems = report.problems(&tests);
    match &console.end {
        End::Exited => {}
        End::Fatal(line) => problems.push(format!("the guest kernel died: {line}")),
        End::TimedOut => problems.push(format!(
            "the VM ran past its {}s limit (--timeout)",
            args.timeout
        )),
    }
    if problems.is_empty() {
        eprintln!("vm-test: PASSED on {}", kernel.release);
        Ok(())
    } else {
        for p in &problems {
            eprintln!("vm-test: {p}");
        }
        bail!(
            "vm-test FAILED on {} (console: {})",
            kernel.release,
            log.display()
        )
    }
}

/// Fill the staging directory: see the module documentation.
fn stage(
    args: &Args,
    vm_dir: &Path,
    tests: &[binaries::Artifact],
    ops: &Path,
    modules: &[std::path::PathBuf],
    nonce: &str,
) -> Result<Initramfs> {
    let mut fs = Initramfs::new(&vm_dir.join("root"))?;
    for tool in TOOLS
        .iter()
        .copied()
        .chain(args.tools.iter().map(String::as_str))
    {
        fs.add_tool(tool)?;
        for (_, dir) in TOOL_DATA.iter().filter(|(t, _)| *t == tool) {
            fs.add_tree(Path::new(dir), &[])?;
        }
    }
    for test in tests {
        fs.add_program(&test.path, true)?;
    }
    fs.add_program(ops, true)?;
    // The coredump tests' crasher: the guest has no compiler, so the same
    // source is built here, with symbols, and named by OPS_CRASHER.
    let crasher = vm_dir.join("crasher");
    crate::util::run_cmd(
        std::process::Command::new("gcc")
            .args(["-g", "-O0", "-o"])
            .arg(&crasher)
            .arg(crate::util::workspace().join("tests/crasher.c")),
    )?;
    fs.add_program(&crasher, false)?;
    // A release build next to it, as tests may look for either.
    if let Some(release) = ops
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("release/ops"))
        .filter(|p| p.is_file())
    {
        fs.add_program(&release, true)?;
    }
    let mut module_list = String::new();
    for ko in modules {
        let guest = Path::new("/ops-vm/ko").join(ko.file_name().context("module name")?);
        fs.add_file(ko, &guest)?;
        module_list.push_str(&format!("{}\n", guest.display()));
    }
    fs.write("/ops-vm/modules.list", &module_list, 0o644)?;
    let list: String = tests
        .iter()
        .map(|t| format!("{} {}\n", t.name, t.path.display()))
        .collect();
    fs.write("/ops-vm/tests.list", &list, 0o644)?;
    fs.write("/ops-vm/env", &guest_env(args, ops, &crasher, nonce), 0o644)?;

    // tcpdump drops privileges to its own user by default.
    fs.write(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\ntcpdump:x:100:101::/nonexistent:/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
        0o644,
    )?;
    fs.write(
        "/etc/group",
        "root:x:0:\ntcpdump:x:101:\nnogroup:x:65534:\n",
        0o644,
    )?;
    fs.write("/etc/hosts", "127.0.0.1 localhost\n", 0o644)?;
    for file in ["/etc/protocols", "/etc/services"] {
        fs.add_host_file_if_present(Path::new(file))?;
    }
    fs.write("/init", include_str!("init.sh"), 0o755)?;
    fs.add_busybox()?;
    Ok(fs)
}

/// `/ops-vm/env`, sourced by `/init`.
fn guest_env(args: &Args, ops: &Path, crasher: &Path, nonce: &str) -> String {
    let mut test_args = vec!["--test-threads=1".to_owned(), "--nocapture".to_owned()];
    for (test, _) in VM_SKIPS {
        test_args.extend(["--skip".to_owned(), (*test).to_owned()]);
    }
    if let Some(filter) = &args.filter {
        test_args.push(filter.clone());
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    [
        ("CI", "true".to_owned()),
        ("RUST_BACKTRACE", "1".to_owned()),
        ("HOME", "/root".to_owned()),
        ("OPS_BIN", ops.display().to_string()),
        // Programs keep their host paths in the guest.
        ("OPS_CRASHER", crasher.display().to_string()),
        ("OPS_VM_NONCE", nonce.to_owned()),
        ("OPS_VM_TEST_TIMEOUT", args.test_timeout.to_string()),
        ("OPS_VM_TEST_ARGS", test_args.join(" ")),
    ]
    .iter()
    .map(|(k, v)| {
        // The runner's own settings stay unexported: a test that could read
        // the nonce could print a marker line.
        let export = if k.starts_with("OPS_VM_") {
            ""
        } else {
            "export "
        };
        format!("{export}{k}={}\n", quote(v))
    })
    .collect()
}

/// Unique per run, so test output can never pass for a marker line.
fn nonce() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}", t ^ (u128::from(std::process::id()) << 64))
}

#[derive(Default)]
struct BinaryResult {
    name: String,
    status: Option<i32>,
    seconds: Option<u64>,
    /// libtest's "test result:" line.
    result: Option<String>,
    passed: u64,
    failed: u64,
    ignored: u64,
}

#[derive(Default)]
struct Report {
    kernel: Option<String>,
    binaries: Vec<BinaryResult>,
    result: Option<String>,
    paths: Vec<String>,
    leftovers: Vec<String>,
}

impl Report {
    fn parse(lines: &[String], nonce: &str) -> Self {
        let marker = format!("{MARKER}[{nonce}] ");
        let mut report = Self::default();
        for line in lines {
            // find, not strip_prefix: firmware escapes without a newline
            // can precede the first marker. The nonce keeps it exact.
            if let Some(rest) = line.find(&marker).map(|at| &line[at + marker.len()..]) {
                let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
                match key {
                    "kernel" => report.kernel = Some(value.to_owned()),
                    "run" => report.binaries.push(BinaryResult {
                        name: value.to_owned(),
                        ..Default::default()
                    }),
                    "done" => {
                        let mut words = value.split_whitespace();
                        let name = words.next().unwrap_or_default();
                        if let Some(b) = report.binaries.iter_mut().rfind(|b| b.name == name) {
                            for word in words {
                                match word.split_once('=') {
                                    Some(("status", v)) => b.status = v.parse().ok(),
                                    Some(("seconds", v)) => b.seconds = v.parse().ok(),
                                    _ => {}
                                }
                            }
                        }
                    }
                    "result" => report.result = Some(value.to_owned()),
                    "leftover-netns" => report.leftovers.push(value.to_owned()),
                    _ => {}
                }
            } else if let Some(rest) = line.strip_prefix("test result: ") {
                if let Some(b) = report.binaries.last_mut() {
                    b.result = Some(rest.to_owned());
                    for part in rest.split([';', '.']) {
                        let mut words = part.split_whitespace();
                        if let (Some(n), Some(what)) = (words.next(), words.next()) {
                            let Ok(n) = n.parse::<u64>() else { continue };
                            match what {
                                "passed" => b.passed += n,
                                "failed" => b.failed += n,
                                "ignored" => b.ignored += n,
                                _ => {}
                            }
                        }
                    }
                }
            } else if let Some(at) = line.find(PATH_PREFIX) {
                report.paths.push(line[at + PATH_PREFIX.len()..].to_owned());
            }
        }
        report
    }

    fn print(&self, expected: &[binaries::Artifact]) {
        eprintln!(
            "\nvm: summary (kernel {})",
            self.kernel
                .as_deref()
                .unwrap_or("unknown: init never reported")
        );
        for artifact in expected {
            match self.binaries.iter().find(|b| b.name == artifact.name) {
                Some(b) => eprintln!(
                    "vm:   {:<24} status {:<4} {:>4}s  {} passed, {} failed, {} ignored",
                    b.name,
                    b.status.map_or("?".into(), |s| s.to_string()),
                    b.seconds.map_or("?".into(), |s| s.to_string()),
                    b.passed,
                    b.failed,
                    b.ignored
                ),
                None => eprintln!("vm:   {:<24} never ran", artifact.name),
            }
        }
        for path in &self.paths {
            eprintln!("vm:   path taken: {path}");
        }
        eprintln!(
            "vm:   init result: {}",
            self.result
                .as_deref()
                .unwrap_or("none (init never finished)")
        );
    }

    fn problems(&self, expected: &[binaries::Artifact]) -> Vec<String> {
        let mut problems = Vec::new();
        for artifact in expected {
            match self.binaries.iter().find(|b| b.name == artifact.name) {
                None => problems.push(format!("{} never ran", artifact.name)),
                Some(b) if b.status != Some(0) => problems.push(format!(
                    "{} exited with {}{}",
                    b.name,
                    b.status.map_or("no status".into(), |s| s.to_string()),
                    if b.status == Some(143) {
                        " (killed at --test-timeout)"
                    } else {
                        ""
                    }
                )),
                Some(b) if b.result.is_none() => {
                    problems.push(format!("{} printed no test result", b.name))
                }
                Some(b) if b.ignored > 0 => {
                    problems.push(format!("{} has {} #[ignore]d tests", b.name, b.ignored))
                }
                Some(_) => {}
            }
        }
        if self.binaries.iter().map(|b| b.passed).sum::<u64>() == 0 {
            problems.push("no test passed: nothing was tested".into());
        }
        for ns in &self.leftovers {
            problems.push(format!("network namespace {ns} left behind"));
        }
        if !self
            .result
            .as_deref()
            .is_some_and(|r| r.starts_with("success"))
        {
            problems.push(format!(
                "init reported {}",
                self.result.as_deref().unwrap_or("no result")
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts(names: &[&str]) -> Vec<binaries::Artifact> {
        names
            .iter()
            .map(|n| binaries::Artifact {
                name: (*n).to_owned(),
                path: format!("/t/{n}").into(),
            })
            .collect()
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_clean_run_has_no_problems() {
        let console = lines(
            "\x1b[2JOPS-VM[n1] kernel=6.1.0 cpus=2\n\
             OPS-VM[n1] run=a\n\
             test x ... ops-path: tc attach = clsact (kernel 6.1.0)\n\
             test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
             OPS-VM[n1] done=a status=0 seconds=4\n\
             OPS-VM[n1] result=success binaries=1\n",
        );
        let report = Report::parse(&console, "n1");
        assert_eq!(report.kernel.as_deref(), Some("6.1.0 cpus=2"));
        assert_eq!(report.binaries[0].passed, 3);
        assert_eq!(report.binaries[0].seconds, Some(4));
        assert_eq!(report.paths, ["tc attach = clsact (kernel 6.1.0)"]);
        assert!(report.problems(&artifacts(&["a"])).is_empty());
    }

    #[test]
    fn markers_without_the_nonce_are_ignored() {
        // A test printing a marker line cannot fake a result.
        let console = lines(
            "OPS-VM[n1] run=a\n\
             OPS-VM[other] result=success binaries=1\n\
             test result: ok. 1 passed; 0 failed; 0 ignored\n\
             OPS-VM[n1] done=a status=0 seconds=1\n",
        );
        let problems = Report::parse(&console, "n1").problems(&artifacts(&["a"]));
        assert_eq!(problems, ["init reported no result"]);
    }

    #[test]
    fn failures_missing_binaries_and_leftovers_are_problems() {
        let console = lines(
            "OPS-VM[n] run=a\n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored\n\
             OPS-VM[n] done=a status=101 seconds=1\n\
             OPS-VM[n] leftover-netns=opst-1-x\n\
             OPS-VM[n] result=failure binaries=1 failed=1\n",
        );
        let problems = Report::parse(&console, "n").problems(&artifacts(&["a", "b"]));
        assert_eq!(
            problems,
            [
                "a exited with 101",
                "b never ran",
                "network namespace opst-1-x left behind",
                "init reported failure binaries=1 failed=1",
            ]
        );
    }
}
