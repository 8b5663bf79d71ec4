//! `cargo xtask lint`: formatting and clippy with warnings denied, for the
//! host crates and for the eBPF crate on its own target.

use std::process::Command;

use anyhow::Result;

use crate::{
    setup::TOOLCHAIN,
    util::{cargo, run_cmd, with_ebpf, workspace},
};

pub fn run_lint() -> Result<()> {
    run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_cmd(with_ebpf(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "ops-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])))?;
    // The eBPF crate only compiles for bpfel with Debian's compiler (and its
    // clippy, rust-web-clippy), exactly as aya-build compiles it.
    run_cmd(
        Command::new("rustup")
            .current_dir(workspace())
            .args(["run", TOOLCHAIN, "cargo", "clippy"])
            .args([
                "--package",
                "ops-ebpf",
                "--release",
                "--target",
                "bpfel-unknown-none",
            ])
            .arg("--target-dir")
            .arg(workspace().join("target/ebpf-clippy"))
            .args(["--", "-D", "warnings"])
            .env("RUSTC_BOOTSTRAP", "aya_ebpf")
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                "--cfg=bpf_target_arch=\"x86_64\"\u{1f}-Cdebuginfo=2",
            )
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER"),
    )
}

pub fn run() -> Result<()> {
    crate::setup::run_setup()?;
    run_lint()
}
