//! The ops node daemon: loads the kernel-side programs, attaches them to
//! container groups, and serves the tasks built on them.
//!
//! The core is plain synchronous code (loading, attaching, parsing); tokio
//! lives only at the edges that wait on file descriptors and signals.

pub mod api;
pub mod config;
pub mod daemon;
pub mod ebpf;
pub mod files;
pub mod instances;
pub mod logging;
pub mod records;
pub mod store;
pub mod tasks;
