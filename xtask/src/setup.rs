//! `cargo xtask setup`: the recipe that builds aya eBPF programs on Debian
//! with Debian's Rust (which ships a prebuilt bpfel `core`), plus the tools
//! the tests use. Every step checks first, so a second run takes seconds.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::util::{is_root, run_cmd, succeeds};

/// Debian packages: the eBPF compiler and its bpf `core`, LLVM for
/// bpf-linker, and the independent oracles and tools of the test suite.
const PACKAGES: &[&str] = &[
    // Debian's rustc (LLVM 22) with a prebuilt core for bpfel-unknown-none.
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "rust-web-clippy",
    "llvm-22-dev",
    "libllvm22",
    // Tests: namespaces and TC, packet oracles, debugger, traffic.
    "iproute2",
    "tcpdump",
    "tshark",
    "gdb",
    "iperf3",
    "netsniff-ng",
    "zstd",
    // The coredump tests compile a crasher with symbols.
    "gcc",
    "libc6-dev",
];

/// rustup toolchain name for /usr, used by aya-build (ops-user/build.rs).
pub const TOOLCHAIN: &str = "debian-bpf";

pub fn run_setup() -> Result<()> {
    check_platform()?;
    apt_install(PACKAGES)?;
    bpf_linker()?;
    toolchain_link()?;
    tracefs()?;
    Ok(())
}

pub fn run() -> Result<()> {
    let started = std::time::Instant::now();
    run_setup()?;
    eprintln!("setup: ready in {:.1?}", started.elapsed());
    Ok(())
}

fn check_platform() -> Result<()> {
    let mut missing = Vec::new();
    if !std::path::Path::new("/etc/debian_version").exists() {
        missing.push("a Debian system (apt, and Debian's rustc-web with a prebuilt bpf core)");
    }
    if !is_root() {
        missing.push("root (apt-get install, loading eBPF, network namespaces)");
    }
    if !succeeds("rustup", &["--version"]) {
        missing.push("rustup (the host crates build with its stable toolchain)");
    }
    if !missing.is_empty() {
        bail!(
            "cargo xtask setup cannot prepare this machine; it needs {}",
            missing.join(", and ")
        );
    }
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"install ok installed"))
}

/// Install whichever of `packages` are missing (nothing to do, no apt call,
/// when all are there).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
    run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        })
}

/// bpf-linker, built against Debian's LLVM 22 (its default is LLVM 23,
/// which Debian does not ship).
fn bpf_linker() -> Result<()> {
    let path = cargo_home().join("bin/bpf-linker");
    if succeeds(&path, &["--version"]) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker against LLVM 22");
    let path_var = format!(
        "/usr/lib/llvm-22/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    run_cmd(
        Command::new("cargo")
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("PATH", path_var)
            .args([
                "install",
                "bpf-linker",
                "--version",
                "0.13.0",
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ]),
    )
    .context("installing bpf-linker")
}

fn toolchain_link() -> Result<()> {
    let list = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .context("rustup toolchain list")?;
    if String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(TOOLCHAIN))
    {
        return Ok(());
    }
    run_cmd(Command::new("rustup").args(["toolchain", "link", TOOLCHAIN, "/usr"]))
}

/// Tracepoints need tracefs; the daemon mounts it too, but tests and
/// tools expect it from the start.
fn tracefs() -> Result<()> {
    if std::path::Path::new("/sys/kernel/tracing/events").is_dir() {
        return Ok(());
    }
    run_cmd(Command::new("mount").args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]))
}
