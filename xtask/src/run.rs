//! `cargo xtask run`: build, then become `ops serve`.

use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::{Context as _, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for `ops` (default: `serve`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ops_args: Vec<String>,
}

/// The development daemon: the embedded defaults (socket, data directory),
/// plus the signed API on loopback with a documented key, so the SDK works
/// out of the box (see README).
pub const DEV_ARGS: [&str; 5] = [
    "serve",
    "--listen",
    "127.0.0.1:8941",
    "--access-key",
    "ops-dev:ops-dev-secret",
];

pub fn run(args: Args) -> Result<()> {
    let ops = crate::build::run()?;
    let ops_args = if args.ops_args.is_empty() {
        DEV_ARGS.iter().map(|s| s.to_string()).collect()
    } else {
        args.ops_args
    };
    // exec, not spawn: Ctrl-C then reaches the daemon alone, which detaches
    // everything and exits; no parent is left to race it.
    let err = Command::new(&ops).args(&ops_args).exec();
    Err(err).with_context(|| format!("exec {}", ops.display()))
}
