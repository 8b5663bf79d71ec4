//! tcpdump task: capture a container group's packets, filtered in the
//! kernel by the `ops-tc` classifiers, into a pcapng file.
//!
//! - [`options`]: the OpsValue JSON and its validation;
//! - [`filter`]: validated options to the kernel's capture configuration;
//! - [`capture`]: one running capture (attach, read, write, stop);
//! - [`pcap`]: the pcapng writer with its size limit;
//! - [`summary`]: what a finished capture reports;
//! - [`registry`]: one capture per container group.
//!
//! Everything is synchronous: the API layer calls [`Tcpdump::start`] and
//! [`Tcpdump::stop`] from a blocking task.

pub mod capture;
pub mod filter;
pub mod options;
pub mod pcap;
pub mod registry;
pub mod summary;

pub use capture::{Capture, CaptureHandle, OnFinish, Progress, Tuning};
pub use options::{CaptureOptions, TcpdumpRequest};
pub use registry::Tcpdump;
pub use summary::{StopReason, Summary};
