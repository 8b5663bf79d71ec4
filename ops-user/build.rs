//! Builds the eBPF object that `ops` embeds, or a stub.
//!
//! The eBPF crate needs Debian's compiler with its prebuilt bpfel `core` and
//! bpf-linker (`cargo xtask setup`). Requiring that for every `cargo check`
//! or `cargo clippy` of the host crates would be a tax, so, as aya's own
//! integration tests do, the real build happens only when asked:
//! `OPS_BUILD_EBPF=1` (set by `cargo xtask build|run|test`). Otherwise an
//! empty object is embedded and loading it fails with a clear error.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, Result};

/// Name of the rustup toolchain that `cargo xtask setup` links to /usr.
const TOOLCHAIN: &str = "debian-bpf";
const PACKAGE: &str = "ops-ebpf";
/// The binaries of the eBPF crate, one object each.
const OBJECTS: [&str; 2] = ["ops-tc", "ops-exit"];

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed=OPS_BUILD_EBPF");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    if env::var("OPS_BUILD_EBPF").as_deref() != Ok("1") {
        for object in OBJECTS {
            fs::write(out_dir.join(object), []).context("writing a stub eBPF object")?;
        }
        return Ok(());
    }

    // aya-ebpf needs `#![feature(asm_experimental_arch)]`. Naming the crate
    // (not "1") unlocks it for aya-ebpf alone and keeps aya-build from adding
    // `-Z build-std=core`: the prebuilt core from libstd-rust-web-dev-bpf is
    // used instead, since rustup has no rust-src here.
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf") };

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let workspace = manifest_dir.parent().context("no workspace dir")?;
    // aya-build watches the eBPF crate; the shared types are watched here.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("ops-common").display()
    );
    let ebpf_dir = workspace.join("ops-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: PACKAGE,
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(TOOLCHAIN),
    )
}
