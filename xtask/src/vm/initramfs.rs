//! The guest's whole userspace: an initramfs (gzip'd newc cpio) staged in a
//! directory and packed with `cpio`.
//!
//! Programs keep their host paths inside the guest, and their shared
//! libraries (what `ldd` lists, the loader included) are copied to the paths
//! `ldd` printed, so the dynamic loader finds them with no ld.so.cache. The
//! host's merged-/usr symlinks (`/bin -> usr/bin`, ...) are reproduced first,
//! so a library reached through `/lib` and one reached through `/usr/lib`
//! land in the same place.
//!
//! busybox-static supplies everything else (mount, insmod, timeout,
//! poweroff, cat...), one symlink per applet, except where a real program is
//! shipped: busybox's own `ip`/`tc` understand too little of iproute2 for
//! the tests, and its `sh` would run those applets even when a real
//! `/usr/sbin/ip` comes first in PATH. So `sh` is the host's (dash), and no
//! applet symlink is made for a name a real program already has.

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    os::unix::fs::{symlink, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use crate::util::{run_cmd, show};

/// Parts of a Python standard library an embedded interpreter never
/// imports at start-up or in gdb: leaving them out keeps the image small.
const PYTHON_UNUSED: &[&str] = &[
    "config-",
    "__pycache__",
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "pydoc_data",
    "ensurepip",
    "distutils",
    "dist-packages",
    "site-packages",
];

pub struct Initramfs {
    staging: PathBuf,
    /// Basenames of real programs shipped; busybox must not shadow them.
    programs: BTreeSet<String>,
}

impl Initramfs {
    /// Start from an empty staging directory at `staging`.
    pub fn new(staging: &Path) -> Result<Self> {
        if staging.exists() {
            fs::remove_dir_all(staging)
                .with_context(|| format!("removing {}", staging.display()))?;
        }
        fs::create_dir_all(staging)?;
        let fs = Self {
            staging: staging.to_owned(),
            programs: BTreeSet::new(),
        };
        for dir in [
            "usr/bin",
            "usr/sbin",
            "usr/lib",
            "usr/lib64",
            "dev",
            "proc",
            "sys",
            "run",
            "root",
            "etc",
            "var",
        ] {
            fs::create_dir_all(fs.staged(dir))?;
        }
        fs::create_dir_all(fs.staged("tmp"))?;
        fs::set_permissions(fs.staged("tmp"), fs::Permissions::from_mode(0o1777))?;
        // /var/run/netns is where `ip netns` and the tests look.
        symlink("../run", fs.staged("var/run"))?;
        for top in ["bin", "sbin", "lib", "lib64"] {
            let host = Path::new("/").join(top);
            match fs::read_link(&host) {
                Ok(target) => symlink(target, fs.staged(top))?,
                Err(_) => fs::create_dir_all(fs.staged(top))?,
            }
        }
        // The kernel opens /dev/console for init's stdio before init can
        // mount devtmpfs; without the node init starts with no output.
        run_cmd(
            Command::new("mknod")
                .args(["-m", "600"])
                .arg(fs.staged("dev/console"))
                .args(["c", "5", "1"]),
        )?;
        Ok(fs)
    }

    /// Where the guest path `guest` lives in the staging directory.
    fn staged(&self, guest: impl AsRef<Path>) -> PathBuf {
        let guest = guest.as_ref();
        self.staging.join(guest.strip_prefix("/").unwrap_or(guest))
    }

    /// Copy a host file to `guest`, creating parent directories.
    fn copy(&self, host: &Path, guest: &Path, strip_debug: bool) -> Result<()> {
        let to = self.staged(guest);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        if to.exists() {
            return Ok(());
        }
        if strip_debug {
            // Debug test binaries are ~60 MB, mostly DWARF; the guest only
            // needs symbols for backtraces. Smaller means a faster boot.
            run_cmd(
                Command::new("objcopy")
                    .arg("--strip-debug")
                    .arg(host)
                    .arg(&to),
            )?;
        } else {
            fs::copy(host, &to)
                .with_context(|| format!("copying {} to {}", host.display(), to.display()))?;
        }
        Ok(())
    }

    /// A host program at the same path in the guest, with its libraries.
    pub fn add_program(&mut self, host: &Path, strip_debug: bool) -> Result<()> {
        self.copy(host, host, strip_debug)?;
        for lib in shared_libraries(host)? {
            self.copy(&lib, &lib, false)?;
            // An embedded Python (gdb's) aborts at start-up without its
            // standard library.
            if let Some(version) = lib
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("libpython"))
                .and_then(|n| n.split(".so").next())
            {
                self.add_tree(
                    &Path::new("/usr/lib").join(format!("python{version}")),
                    PYTHON_UNUSED,
                )?;
            }
        }
        if let Some(name) = host.file_name() {
            self.programs.insert(name.to_string_lossy().into_owned());
        }
        Ok(())
    }

    /// A program found on the host's PATH, shipped at the path where it was
    /// found. Returns that path.
    pub fn add_tool(&mut self, name: &str) -> Result<PathBuf> {
        let host =
            find_program(name).with_context(|| format!("`{name}` is not installed on the host"))?;
        self.add_program(&host, false)?;
        // Also keep the name it was asked by (`sh` found as /usr/bin/sh
        // is dash).
        self.programs.insert(name.to_owned());
        Ok(host)
    }

    /// A host directory at the same path in the guest, recursively, except
    /// entries named in `skip`. Symlinks stay symlinks.
    pub fn add_tree(&mut self, host: &Path, skip: &[&str]) -> Result<()> {
        if self.staged(host).exists() {
            return Ok(());
        }
        fs::create_dir_all(self.staged(host))?;
        for entry in fs::read_dir(host).with_context(|| format!("reading {}", host.display()))? {
            let entry = entry?;
            if skip
                .iter()
                .any(|s| entry.file_name().to_string_lossy().starts_with(s))
            {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                symlink(fs::read_link(&path)?, self.staged(&path))?;
            } else if kind.is_dir() {
                self.add_tree(&path, skip)?;
            } else if kind.is_file() {
                self.copy(&path, &path, false)?;
            }
        }
        Ok(())
    }

    /// A host file at the guest path `guest`.
    pub fn add_file(&mut self, host: &Path, guest: &Path) -> Result<()> {
        self.copy(host, guest, false)
    }

    /// A host file at the same path in the guest, if it exists.
    pub fn add_host_file_if_present(&mut self, host: &Path) -> Result<()> {
        if host.is_file() {
            self.copy(host, host, false)?;
        }
        Ok(())
    }

    /// A file with `contents` at `guest`.
    pub fn write(&mut self, guest: &str, contents: &str, mode: u32) -> Result<()> {
        let to = self.staged(guest);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&to, contents).with_context(|| format!("writing {}", to.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    /// busybox-static at /bin/busybox, and a symlink per applet where no
    /// real program is shipped. Call after all programs are added.
    pub fn add_busybox(&mut self) -> Result<()> {
        let busybox = find_program("busybox").context("busybox is not installed")?;
        self.copy(&busybox, Path::new("/bin/busybox"), false)?;
        // busybox-static needs none, but a dynamic busybox would.
        for lib in shared_libraries(&busybox)? {
            self.copy(&lib, &lib, false)?;
        }
        let mut cmd = Command::new(&busybox);
        cmd.arg("--list-full");
        let out = cmd
            .output()
            .with_context(|| format!("spawning {}", show(&cmd)))?;
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            let guest = Path::new("/").join(applet);
            let Some(name) = guest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            // The list names busybox itself: a symlink there would replace
            // the binary with a link to itself, and init would not start.
            if name == "busybox" || self.programs.contains(&name) {
                continue;
            }
            let at = self.staged(&guest);
            if at.symlink_metadata().is_ok() {
                continue;
            }
            if let Some(parent) = at.parent() {
                fs::create_dir_all(parent)?;
            }
            symlink("/bin/busybox", &at)?;
        }
        Ok(())
    }

    /// Pack the staging directory into a gzip'd newc cpio at `out`.
    pub fn pack(&self, out: &Path) -> Result<u64> {
        let mut entries = Vec::new();
        walk(&self.staging, Path::new("."), &mut entries)?;
        entries.sort();
        let mut cpio = Command::new("cpio");
        cpio.current_dir(&self.staging)
            .args(["--quiet", "-o", "-H", "newc", "--owner=0:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut cpio_child = cpio
            .spawn()
            .with_context(|| format!("spawning {}", show(&cpio)))?;
        let archive = cpio_child.stdout.take().context("cpio stdout")?;
        let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut gzip = Command::new("gzip");
        // -n: no name or timestamp, so equal inputs give equal images.
        // -1: half the time of -6 for a 10% larger image, which the guest
        // unpacks no slower.
        gzip.args(["-n", "-1"]).stdin(archive).stdout(file);
        let mut gzip_child = gzip
            .spawn()
            .with_context(|| format!("spawning {}", show(&gzip)))?;
        {
            let mut stdin = cpio_child.stdin.take().context("cpio stdin")?;
            for entry in &entries {
                writeln!(stdin, "{}", entry.display())?;
            }
        }
        if !cpio_child.wait()?.success() {
            bail!("{} failed", show(&cpio));
        }
        if !gzip_child.wait()?.success() {
            bail!("{} failed", show(&gzip));
        }
        Ok(fs::metadata(out)?.len())
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        out.push(path.clone());
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// A program on the host's PATH, or in the sbin directories a non-root
/// PATH lacks.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// The shared libraries `ldd` lists for `program` (none when static).
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new("ldd");
    cmd.arg(program);
    let out = cmd
        .output()
        .with_context(|| format!("spawning {}", show(&cmd)))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": a static program needs nothing.
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("=> not found") {
            bail!("{}: missing library: {line}", program.display());
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no path.
        let path = match line.split_once("=> ") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}
