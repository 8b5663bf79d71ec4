//! Types shared by the kernel-side programs (`ops-ebpf`) and the node daemon
//! (`ops-user`).
//!
//! Everything here is `#[repr(C)]` plain data with explicit padding, so the
//! byte layout the kernel writes is the layout userspace reads. Sizes are
//! pinned with `const` assertions; with the `user` feature every type is also
//! an [`aya::Pod`] and can be read from maps and ring buffers.
#![no_std]

pub mod exit;
pub mod tc;
