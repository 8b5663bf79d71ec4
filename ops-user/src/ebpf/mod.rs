//! Loading and attaching the kernel-side programs.
//!
//! The eBPF objects are built from `ops-ebpf` and embedded in the binary, so
//! a node needs nothing but `ops` itself.

pub mod btf;
pub mod exits;
pub mod logs;
pub mod netlink;
pub mod netns;
pub mod tc;
pub mod tracefs;

use aya::{Ebpf, EbpfLoader};

/// The embedded object of the TC classifiers (`ops-ebpf/src/bin/ops-tc.rs`).
pub static TC_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ops-tc"));
/// The embedded object of the exit tracepoints (`ops-ebpf/src/bin/ops-exit.rs`).
pub static EXIT_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ops-exit"));

/// Errors of the eBPF layer. Each names the step that failed and keeps the
/// kernel's answer as its source.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// `ops` was built without `OPS_BUILD_EBPF=1`, so the object is a stub.
    #[error(
        "this `ops` binary was built without its eBPF programs; build it with `cargo xtask build`"
    )]
    NotBuilt,
    #[error("loading the {object} eBPF object")]
    Load {
        object: &'static str,
        #[source]
        source: aya::EbpfError,
    },
    #[error("the {object} eBPF object has no program `{name}`")]
    MissingProgram {
        object: &'static str,
        name: &'static str,
    },
    #[error("the {object} eBPF object has no map `{name}`")]
    MissingMap {
        object: &'static str,
        name: &'static str,
    },
    #[error("program `{name}`: {action}")]
    Program {
        name: &'static str,
        action: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("network namespace {path}: {action}")]
    Netns {
        path: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("interface `{name}` does not exist in network namespace {netns}")]
    NoSuchInterface { name: String, netns: String },
    #[error("clsact qdisc on `{interface}`")]
    Clsact {
        interface: String,
        #[source]
        source: aya::programs::tc::TcError,
    },
    #[error("netlink: {action}")]
    Netlink {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("tracefs: {0}")]
    Tracefs(#[source] std::io::Error),
}

/// Program `name` of `object`, as its concrete type (`SchedClassifier`,
/// `TracePoint`, ...).
pub fn program_mut<'a, T>(
    ebpf: &'a mut Ebpf,
    object: &'static str,
    name: &'static str,
) -> Result<&'a mut T, EbpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(EbpfError::MissingProgram { object, name })?
        .try_into()
        .map_err(|source| EbpfError::Program {
            name,
            action: "type",
            source,
        })
}

/// Load an embedded object, overriding `globals` (each must exist).
pub fn load(
    object: &'static str,
    bytes: &[u8],
    globals: impl IntoIterator<Item = (&'static str, u32)>,
) -> Result<Ebpf, EbpfError> {
    let values: Vec<(&'static str, u32)> = globals.into_iter().collect();
    load_with(object, bytes, |loader| {
        for (name, value) in &values {
            loader.override_global(name, value, true);
        }
    })
}

/// Load an embedded object after `configure` has set up the loader, e.g. to
/// override a global of a `Pod` struct type.
pub fn load_with<'a>(
    object: &'static str,
    bytes: &[u8],
    configure: impl FnOnce(&mut EbpfLoader<'a>),
) -> Result<Ebpf, EbpfError> {
    if bytes.is_empty() {
        return Err(EbpfError::NotBuilt);
    }
    let mut loader = EbpfLoader::new();
    configure(&mut loader);
    loader
        .load(bytes)
        .map_err(|source| EbpfError::Load { object, source })
}
