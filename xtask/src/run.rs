//! `cargo xtask run`: build, then become `ops serve`.

use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::{Context as _, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for `ops` (default: `serve`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ops_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let ops = crate::build::run()?;
    let ops_args = if args.ops_args.is_empty() {
        vec!["serve".to_owned()]
    } else {
        args.ops_args
    };
    // exec, not spawn: Ctrl-C then reaches the daemon alone, which detaches
    // everything and exits; no parent is left to race it.
    let err = Command::new(&ops).args(&ops_args).exec();
    Err(err).with_context(|| format!("exec {}", ops.display()))
}
