//! Building what the guest runs, and finding it from cargo's JSON messages
//! rather than guessing file names in target/ (test binaries carry a hash).

use std::{
    io::BufRead as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::util::{cargo, show, with_ebpf};

/// One executable cargo built.
pub struct Artifact {
    /// The target name: the test file's stem, or the binary's name.
    pub name: String,
    pub path: PathBuf,
}

/// Every integration test binary of `ops-tests` (one per
/// `tests/tests/*.rs`), built with the real eBPF objects embedded.
///
/// Built as `cargo xtask test` builds them (the whole workspace), so the
/// features unify the same way and the host run's binaries are reused
/// instead of being built a second time with other features.
pub fn integration_tests() -> Result<Vec<Artifact>> {
    let tests = executables(
        cargo().args([
            "test",
            "--workspace",
            "--exclude",
            "ops-ebpf",
            "--tests",
            "--no-run",
        ]),
        |message| {
            package_is(message, "ops-tests")
                && message["profile"]["test"] == true
                && kinds(message).any(|k| k == "test")
        },
    )?;
    if tests.is_empty() {
        bail!("cargo built no integration test binaries for ops-tests");
    }
    Ok(tests)
}

/// The `ops` binary, in the same (dev) profile as the tests.
pub fn ops() -> Result<Artifact> {
    executables(
        cargo().args(["build", "--workspace", "--exclude", "ops-ebpf", "--bins"]),
        |message| {
            package_is(message, "ops-user")
                && kinds(message).any(|k| k == "bin")
                && message["target"]["name"] == "ops"
        },
    )?
    .pop()
    .context("cargo built no `ops` binary")
}

/// Package ids look like `path+file:///…/tests#ops-tests@0.1.0`, or
/// `path+file:///…/ops-user#0.1.0` when the directory is the package's name
/// (or, from older cargo, `ops-tests 0.1.0 (path+file:///…)`).
fn package_is(message: &Value, package: &str) -> bool {
    let id = message["package_id"].as_str().unwrap_or_default();
    id.contains(&format!("#{package}@"))
        || id.contains(&format!("/{package}#"))
        || id.starts_with(&format!("{package} "))
}

fn kinds(message: &Value) -> impl Iterator<Item = &str> {
    message["target"]["kind"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Run a cargo build command and collect the executables of the artifacts
/// `wanted` accepts.
fn executables(cmd: &mut Command, wanted: impl Fn(&Value) -> bool) -> Result<Vec<Artifact>> {
    with_ebpf(cmd).arg("--message-format=json-render-diagnostics");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    let stdout = child.stdout.take().context("cargo stdout")?;
    let mut found = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" || !wanted(&message) {
            continue;
        }
        if let (Some(name), Some(path)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            found.push(Artifact {
                name: name.to_owned(),
                path: path.into(),
            });
        }
    }
    if !child.wait()?.success() {
        bail!("{} failed", show(cmd));
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}
