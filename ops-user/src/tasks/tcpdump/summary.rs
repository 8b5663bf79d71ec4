//! What a finished capture reports.

use std::{fmt, path::PathBuf, time::Duration};

/// Why a capture stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `Duration` elapsed.
    Duration,
    /// `PacketNum` packets were written.
    PacketNum,
    /// The next packet would have taken the file past `FileSize`.
    FileSize,
    /// `{"Enable": false}`.
    Disabled,
    /// The interface disappeared from the group's namespace.
    InterfaceGone,
    /// The group's network namespace is gone.
    NamespaceGone,
    /// The daemon is shutting down.
    Shutdown,
    /// Writing the file or reading the kernel's buffers failed.
    Error(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duration => f.write_str("duration reached"),
            Self::PacketNum => f.write_str("packet count reached"),
            Self::FileSize => f.write_str("file size reached"),
            Self::Disabled => f.write_str("disabled"),
            Self::InterfaceGone => f.write_str("interface gone"),
            Self::NamespaceGone => f.write_str("network namespace gone"),
            Self::Shutdown => f.write_str("daemon shutdown"),
            Self::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// The counters of a finished capture.
///
/// In the kernel, every matched packet is either put in the ring buffer
/// (`captured`) or refused because the ring was full (`lost`), so
/// `matched == captured + lost` exactly. Userspace then writes every
/// captured packet it reads (`written`) until a limit stops it; those left
/// after the limit are `not_written`. So `captured == written + not_written`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub path: PathBuf,
    pub stop_reason: StopReason,
    /// Packets the programs saw on the interface, both directions.
    pub seen: u64,
    /// Packets that satisfied the filter.
    pub matched: u64,
    /// Matched packets put in the ring buffer for userspace.
    pub captured: u64,
    /// Matched packets lost because the buffer was full.
    pub lost: u64,
    /// Captured packets cut short by `Snaplen`; their real length is in the
    /// file.
    pub truncated: u64,
    /// Packets in the file.
    pub written: u64,
    /// Captured packets not written because a limit was reached first.
    pub not_written: u64,
    /// Size of the file.
    pub bytes_written: u64,
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} packets written ({} bytes) to {}; matched {}, captured {}, lost {}, truncated {}; stopped: {}",
            self.written,
            self.bytes_written,
            self.path.display(),
            self.matched,
            self.captured,
            self.lost,
            self.truncated,
            self.stop_reason
        )
    }
}
