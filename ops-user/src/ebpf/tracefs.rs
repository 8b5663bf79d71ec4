//! Tracepoint attachment needs tracefs; some systems (containers, minimal
//! VMs) do not mount it. Mount it where the kernel expects it if it is absent.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::EbpfError;

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// Make sure tracefs is reachable, mounting it at `/sys/kernel/tracing` when
/// neither it nor the debugfs path is.
pub fn ensure_mounted() -> Result<(), EbpfError> {
    if is_tracefs(TRACEFS) || is_tracefs(DEBUGFS_TRACING) {
        return Ok(());
    }
    mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| EbpfError::Tracefs(errno.into()))?;
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(())
}

fn is_tracefs(path: &str) -> bool {
    Path::new(path).join("events").is_dir()
}
