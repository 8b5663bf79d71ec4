//! Forwarding aya-log records from the eBPF programs to the daemon's log.
//!
//! aya-log writes records through the `log` crate; `crate::logging` bridges
//! `log` into `tracing`, so kernel-side lines appear at their level (the
//! programs log at debug) next to the daemon's own.

use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::io::{unix::AsyncFd, Interest};

/// A task draining one object's `AYA_LOGS` ring buffer; stops on drop.
pub struct LogForwarder {
    task: tokio::task::JoinHandle<()>,
}

impl LogForwarder {
    /// Start forwarding the logs of `ebpf`. Needs a tokio runtime.
    ///
    /// An object whose programs never log has no `AYA_LOGS` map; that is not
    /// an error, and `None` is returned.
    pub fn start(ebpf: &mut Ebpf, object: &'static str) -> Option<Self> {
        let logger = match EbpfLogger::init(ebpf) {
            Ok(logger) => logger,
            Err(aya_log::Error::MapNotFound) => {
                tracing::trace!(object, "no eBPF log map");
                return None;
            }
            Err(e) => {
                tracing::warn!(object, "eBPF logs unavailable: {e}");
                return None;
            }
        };
        // SAFETY: the fd is the log ring buffer's, owned by `logger`, which
        // the AsyncFd owns unchanged until the task ends.
        let mut fd = match unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(object, "eBPF logs unavailable: {}", std::io::Error::from(e));
                return None;
            }
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok(mut guard) = fd.readable_mut().await else {
                    break;
                };
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
        });
        Some(Self { task })
    }
}

impl Drop for LogForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
