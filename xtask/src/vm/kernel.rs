//! The guest kernel: Debian's cloud kernel (the 6.1 LTS line on bookworm),
//! fetched with `apt-get download` and unpacked with `dpkg -x` under
//! `target/vm/kernel/`. It is never installed: nothing lands in /boot or
//! /lib/modules of the host.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::util::{run_cmd, show};

/// The metapackage that names the current cloud kernel ABI
/// (`linux-image-<version>-cloud-amd64`). The cloud flavour boots fast and
/// carries what the suite needs: BPF, BTF, tracepoints, cgroup2, and the TC
/// and veth modules.
pub const METAPACKAGE: &str = "linux-image-cloud-amd64";

/// An unpacked kernel package.
pub struct Kernel {
    /// e.g. `linux-image-6.1.0-57-cloud-amd64`
    pub package: String,
    /// e.g. `6.1.0-57-cloud-amd64`
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the unpacked package.
    pub modules: PathBuf,
}

/// Download and unpack the kernel the metapackage depends on, unless that
/// exact package is already unpacked under `dir`.
pub fn fetch(dir: &Path) -> Result<Kernel> {
    let package = resolve_package()?;
    let root = dir.join(&package);
    let done = root.join(".unpacked");
    if !done.exists() {
        download_and_unpack(dir, &package, &root)?;
        fs::write(&done, "")?;
    } else {
        eprintln!("vm: kernel {package} already unpacked");
    }
    let boot = root.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("kernel image name")?
        .to_owned();
    let modules = root.join("lib/modules").join(&release);
    Ok(Kernel {
        package,
        release,
        vmlinuz,
        modules,
    })
}

/// The versioned kernel package behind [`METAPACKAGE`]. The package lists
/// may be missing on a fresh machine, so on failure refresh them once.
fn resolve_package() -> Result<String> {
    if let Some(package) = depends_of(METAPACKAGE)? {
        return Ok(package);
    }
    run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
    depends_of(METAPACKAGE)?
        .with_context(|| format!("apt knows no kernel package behind {METAPACKAGE}"))
}

fn depends_of(metapackage: &str) -> Result<Option<String>> {
    let mut cmd = Command::new("apt-cache");
    cmd.args(["depends", metapackage]);
    let out = cmd
        .output()
        .with_context(|| format!("spawning {}", show(&cmd)))?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Depends: ")
            .filter(|p| p.starts_with("linux-image-"))
            .map(str::to_owned)
    }))
}

fn download_and_unpack(dir: &Path, package: &str, root: &Path) -> Result<()> {
    let debs = dir.join("debs");
    fs::create_dir_all(&debs)?;
    eprintln!("vm: downloading {package}");
    // As root, apt drops to the `_apt` user for downloads, which cannot
    // write into target/; the sandbox user option keeps it root (and quiet).
    run_cmd(Command::new("apt-get").current_dir(&debs).args([
        "-q",
        "-o",
        "APT::Sandbox::User=root",
        "download",
        package,
    ]))?;
    let prefix = format!("{package}_");
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
        })
        .with_context(|| format!("apt-get download left no {prefix}*.deb"))?;
    // Unpack next to the final place and rename, so an interrupted run never
    // leaves a half-unpacked kernel that looks complete.
    let partial = dir.join(format!("{package}.partial"));
    let _ = fs::remove_dir_all(&partial);
    let _ = fs::remove_dir_all(root);
    run_cmd(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    fs::rename(&partial, root)?;
    fs::remove_file(&deb)?;
    Ok(())
}

/// The `.ko` files for `names`, dependencies first, ready to `insmod` in
/// order. `dpkg -x` leaves no modules.dep (depmod never ran), so
/// dependencies come from each module's own `.modinfo` `depends=` entry.
/// Names built into the kernel (`modules.builtin`) need nothing.
pub fn modules_in_load_order(kernel: &Kernel, names: &[&str]) -> Result<Vec<PathBuf>> {
    let builtin = fs::read_to_string(kernel.modules.join("modules.builtin")).unwrap_or_default();
    let builtin: Vec<String> = builtin
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|f| normalize(f.trim_end_matches(".ko")))
        .collect();
    let mut files = Vec::new();
    collect_ko(&kernel.modules.join("kernel"), &mut files)?;
    let mut order = Vec::new();
    for name in names {
        add_with_deps(name, &files, &builtin, &mut order, 0)?;
    }
    Ok(order)
}

fn add_with_deps(
    name: &str,
    files: &[PathBuf],
    builtin: &[String],
    order: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<()> {
    let wanted = normalize(name);
    if builtin.contains(&wanted) {
        return Ok(());
    }
    if depth > 16 {
        bail!("module dependency chain too deep at {name}");
    }
    let file = files
        .iter()
        .find(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
                .is_some_and(|n| normalize(n) == wanted)
        })
        .with_context(|| format!("kernel module {name} is neither built in nor a .ko file"))?;
    if order.contains(file) {
        return Ok(());
    }
    let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    for dep in depends(&bytes) {
        add_with_deps(&dep, files, builtin, order, depth + 1)?;
    }
    order.push(file.clone());
    Ok(())
}

/// Module names use `-` and `_` interchangeably.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The comma-separated `depends=` value of a module's `.modinfo` section,
/// where every entry is a NUL-terminated `key=value` string.
fn depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &ko[at + KEY.len()..];
    let value = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
    String::from_utf8_lossy(value)
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

fn collect_ko(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_ko(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_depends_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=nf_conntrack,libcrc32c\0name=x\0";
        assert_eq!(depends(ko), ["nf_conntrack", "libcrc32c"]);
        assert!(depends(b"\0license=GPL\0depends=\0name=veth\0").is_empty());
        assert!(depends(b"no modinfo at all").is_empty());
    }
}
