//! `cargo xtask build`: the eBPF objects (Debian's compiler, via aya-build
//! in ops-user/build.rs) embedded in `target/release/ops`.

use std::path::PathBuf;

use anyhow::Result;

use crate::{
    setup,
    util::{cargo, run_cmd, with_ebpf, workspace},
};

/// Build and return the path of the `ops` binary.
pub fn run_build() -> Result<PathBuf> {
    run_cmd(with_ebpf(cargo().args([
        "build",
        "--release",
        "--package",
        "ops-user",
        "--bin",
        "ops",
    ])))?;
    Ok(workspace().join("target/release/ops"))
}

pub fn run() -> Result<PathBuf> {
    setup::run_setup()?;
    let ops = run_build()?;
    eprintln!("built {}", ops.display());
    Ok(ops)
}
