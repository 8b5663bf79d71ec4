//! `cargo xtask test`: lint, unit tests, and the privileged integration
//! tests (real programs, namespaces and traffic). As root they always run;
//! under `CI=true` without root this fails instead of skipping.

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use crate::util::{cargo, is_ci, is_root, show, with_ebpf};

#[derive(clap::Args)]
pub struct Args {
    /// Skip rustfmt and clippy.
    #[arg(long)]
    no_lint: bool,
    /// Then run the privileged suite again on Debian's 6.1 kernel in QEMU
    /// (`cargo xtask vm-test`).
    #[arg(long)]
    vm: bool,
    /// Only run tests whose name contains this.
    filter: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let privileged = is_root();
    if !privileged && is_ci() {
        bail!("CI=true but not root: the privileged integration tests cannot run, and must not be skipped");
    }
    crate::setup::run_setup()?;
    if !args.no_lint {
        crate::lint::run_lint()?;
    }

    // The coredump tests run `ops` itself (the daemon, and the pipe helper
    // the kernel starts): build it, with its eBPF programs, next to them.
    crate::util::run_cmd(with_ebpf(&mut cargo()).args(["build", "-p", "ops-user", "--bins"]))?;

    let mut cmd = cargo();
    with_ebpf(&mut cmd).args([
        "test",
        "--workspace",
        "--exclude",
        "ops-ebpf",
        "--no-fail-fast",
    ]);
    if !privileged {
        eprintln!(
            "not root: running unit tests only; the privileged integration tests are skipped"
        );
        cmd.args(["--exclude", "ops-tests"]);
    }
    cmd.arg("--");
    if let Some(filter) = &args.filter {
        cmd.arg(filter);
    }
    let tally = run_counting(&mut cmd)?;
    eprintln!(
        "\nxtask test: {} passed, {} failed, {} ignored, in {} test binaries{} ({:.0?})",
        tally.passed,
        tally.failed,
        tally.ignored,
        tally.binaries,
        if privileged {
            ", privileged tests included"
        } else {
            ""
        },
        started.elapsed()
    );
    if !tally.ok || tally.failed > 0 {
        bail!("tests failed");
    }
    if tally.ignored > 0 && is_ci() {
        bail!(
            "{} tests are #[ignore]d: CI must run them all",
            tally.ignored
        );
    }
    if args.vm {
        crate::vm::run(&crate::vm::Args::with_filter(args.filter.clone()))?;
    }
    if privileged && args.filter.is_none() {
        crate::smoke::run()?;
    }
    eprintln!("xtask test: all passed ({:.0?})", started.elapsed());
    Ok(())
}

#[derive(Default)]
struct Tally {
    ok: bool,
    binaries: u32,
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Run cargo test, passing its output through and adding up the
/// "test result:" lines.
fn run_counting(cmd: &mut std::process::Command) -> Result<Tally> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            tally.binaries += 1;
            for part in rest.split([';', '.']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    let Ok(n) = n.parse::<u64>() else { continue };
                    match what {
                        "passed" => tally.passed += n,
                        "failed" => tally.failed += n,
                        "ignored" => tally.ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    tally.ok = child.wait()?.success();
    Ok(tally)
}
