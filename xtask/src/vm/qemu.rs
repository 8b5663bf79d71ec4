//! Booting the guest in QEMU with its serial console on our stdout, under
//! a time limit and a kernel-panic watch.
//!
//! Acceleration: `/dev/kvm` may exist and still refuse ordinary guests
//! (a nested or paravirtualised host: `-cpu host` aborts on an MSR write,
//! other CPU models crawl and die in "emulation failure"). So KVM is used
//! only when a short probe boot reaches the kernel's own "no root fs" panic;
//! otherwise TCG, software emulation, which boots this kernel in ~2 s and is
//! merely slower.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::util::show;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM if a probe boot works, else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// Lines after which the guest is dead or dying; it is stopped after a
/// short grace period that lets the rest of the report reach the console.
const FATAL: &[&str] = &[
    "Kernel panic - not syncing",
    "watchdog: BUG: soft lockup",
    "rcu: INFO: rcu_sched detected stalls",
];

pub struct Boot<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: Option<&'a Path>,
    pub accel: Accel,
    pub append: &'a str,
    pub memory_mb: u32,
    pub cpus: u32,
    pub time_limit: Duration,
    /// Where the console is copied; None for a probe.
    pub log: Option<PathBuf>,
    /// Echo the console to our stdout.
    pub echo: bool,
}

#[derive(Debug)]
pub enum End {
    /// QEMU exited by itself (init powered off, or panic=-1 with -no-reboot).
    Exited,
    /// Stopped after a line of [`FATAL`].
    Fatal(String),
    /// Stopped at the time limit.
    TimedOut,
}

pub struct Console {
    pub lines: Vec<String>,
    pub end: End,
    pub elapsed: Duration,
}

/// Decide the accelerator for `Accel::Auto`. A probe's verdict is kept in
/// `cache` for as long as the host kernel and QEMU stay the same.
pub fn choose(accel: Accel, vmlinuz: &Path, cache: &Path) -> Accel {
    if accel != Accel::Auto {
        return accel;
    }
    if !Path::new("/dev/kvm").exists() {
        eprintln!("vm: no /dev/kvm; using TCG (software emulation)");
        return Accel::Tcg;
    }
    let key = probe_key();
    if let Some(cached) = std::fs::read_to_string(cache)
        .ok()
        .and_then(|c| c.strip_prefix(&key).map(|v| v.trim().to_owned()))
    {
        let accel = if cached == "kvm" {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        eprintln!(
            "vm: using {accel:?} (KVM probe result cached in {})",
            cache.display()
        );
        return accel;
    }
    let accel = probe_kvm(vmlinuz);
    let verdict = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    let _ = std::fs::write(cache, format!("{key}{verdict}\n"));
    accel
}

/// What the probe verdict depends on: the host kernel and the QEMU build.
fn probe_key() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    format!("host {} / {qemu}\n", host.trim())
}

fn probe_kvm(vmlinuz: &Path) -> Accel {
    // With no initrd the kernel panics for want of a root fs; reaching that
    // panic proves KVM runs a guest. A working KVM gets there in ~1 s.
    let probe = Boot {
        vmlinuz,
        initrd: None,
        accel: Accel::Kvm,
        append: "console=ttyS0 panic=-1",
        memory_mb: 256,
        cpus: 1,
        time_limit: Duration::from_secs(8),
        log: None,
        echo: false,
    };
    match run(&probe) {
        Ok(c)
            if c.lines
                .iter()
                .any(|l| l.contains("VFS: Unable to mount root")) =>
        {
            eprintln!("vm: KVM probe booted in {:.1?}; using KVM", c.elapsed);
            Accel::Kvm
        }
        Ok(c) => {
            eprintln!(
                "vm: /dev/kvm does not run a guest here (probe: {:?} after {:.1?}); using TCG",
                c.end, c.elapsed
            );
            Accel::Tcg
        }
        Err(e) => {
            eprintln!("vm: KVM probe failed ({e:#}); using TCG");
            Accel::Tcg
        }
    }
}

pub fn run(boot: &Boot<'_>) -> Result<Console> {
    let mut cmd = Command::new("qemu-system-x86_64");
    match boot.accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg | Accel::Auto => cmd.args(["-accel", "tcg"]),
    };
    // -nic none: the guest gets no NIC at all, so nothing can leave the
    // machine; tests build their own veth pairs inside the guest.
    cmd.args(["-nographic", "-nic", "none", "-no-reboot"])
        .args(["-m", &boot.memory_mb.to_string()])
        .args(["-smp", &boot.cpus.to_string()])
        .arg("-kernel")
        .arg(boot.vmlinuz)
        .args(["-append", boot.append]);
    if let Some(initrd) = boot.initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    // A pipe on stdin rather than the terminal: -nographic would put a
    // terminal in raw mode, and EOF on /dev/null can end the serial input.
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", show(&cmd)))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("qemu stdout")?;

    // The watchdog owns the child: it kills it at the deadline, or sooner
    // when told a fatal line was seen, and reaps it when the reader is done.
    let (tx, rx) = mpsc::channel::<Duration>();
    let limit = boot.time_limit;
    let watchdog = thread::spawn(move || {
        let mut deadline = started + limit;
        let mut killed = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                // A fatal line: leave a few seconds for the rest of the oops.
                Ok(grace) => deadline = deadline.min(Instant::now() + grace),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !killed {
                        let _ = child.kill();
                        killed = true;
                    }
                    deadline = Instant::now() + Duration::from_secs(3600);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = child.wait();
        killed
    });

    let mut log = match &boot.log {
        Some(path) => {
            Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let mut lines = Vec::new();
    let mut fatal = None;
    let mut reader = BufReader::new(stdout);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        // Serial lines end in \r\n, and firmware output has escapes.
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        if boot.echo {
            println!("{line}");
        }
        if let Some(log) = &mut log {
            writeln!(log, "{line}")?;
        }
        if fatal.is_none() && FATAL.iter().any(|f| line.contains(f)) {
            fatal = Some(line.clone());
            let _ = tx.send(Duration::from_secs(5));
        }
        lines.push(line);
    }
    drop(tx);
    drop(stdin);
    let killed = watchdog.join().expect("watchdog thread");
    let end = match (fatal, killed) {
        (Some(line), _) => End::Fatal(line),
        (None, true) => End::TimedOut,
        (None, false) => End::Exited,
    };
    Ok(Console {
        lines,
        end,
        elapsed: started.elapsed(),
    })
}
