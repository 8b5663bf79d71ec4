//! The README's `cargo xtask run`, checked for real: start it as a user
//! would, call it with the official SDK (the venv the SDK tests created)
//! using the documented development key, then Ctrl-C it and require a clean
//! exit that leaves no socket behind.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::util::{cargo, workspace};

const SOCKET: &str = "/run/ops/ops.sock";

pub fn run() -> Result<()> {
    let python = workspace().join("target/sdk-venv/bin/python");
    if !python.exists() {
        bail!(
            "the SDK venv ({}) is missing: the API tests create it",
            python.display()
        );
    }
    eprintln!("smoke: cargo xtask run");
    let mut child = cargo()
        .args(["run", "--quiet", "--package", "xtask", "--", "run"])
        .stdout(Stdio::null())
        .spawn()
        .context("spawning cargo xtask run")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !(Path::new(SOCKET).exists() && std::net::TcpStream::connect("127.0.0.1:8941").is_ok()) {
        if let Some(status) = child.try_wait()? {
            bail!("cargo xtask run exited early: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("cargo xtask run did not come up");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let spec = r#"{"endpoint": "127.0.0.1:8941", "ak": "ops-dev", "secret": "ops-dev-secret",
        "region": "cn-hangzhou", "calls": [{"action": "describe",
        "args": {"region_id": "cn-hangzhou", "container_group_id": "eci-smoke-none"}}]}"#;
    let mut sdk = Command::new(&python)
        .arg(workspace().join("tests/sdk/sdk_call.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    sdk.stdin
        .take()
        .context("stdin")?
        .write_all(spec.as_bytes())?;
    let out = sdk.wait_with_output()?;
    let answer = String::from_utf8_lossy(&out.stdout);
    // Interrupt as Ctrl-C would (cargo and xtask exec'd into `ops`: one pid).
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = child.wait()?;
    if !answer.contains("InvalidInstanceId.NotFound") {
        bail!("the SDK did not get the expected answer from `cargo xtask run`: {answer}");
    }
    if !status.success() {
        bail!("`cargo xtask run` did not stop cleanly on SIGINT: {status}");
    }
    if Path::new(SOCKET).exists() {
        bail!("`cargo xtask run` left its socket {SOCKET} behind");
    }
    eprintln!("smoke: cargo xtask run answered the SDK and stopped cleanly on SIGINT");
    Ok(())
}
