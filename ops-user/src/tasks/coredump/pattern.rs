//! Ownership of the machine-wide `core_pattern`.
//!
//! [`CorePatternOwner`] remembers the pattern and `core_pipe_limit` it found,
//! installs ours, and puts the old values back when dropped, unless someone
//! else rewrote the pattern meanwhile: we never fight another owner.

use std::io;

pub const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
pub const CORE_PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";
pub const CORE_MODES: &str = "/proc/sys/kernel/core_modes";
/// The kernel's `CORENAME_MAX_SIZE`: longer patterns are rejected.
pub const CORENAME_MAX_SIZE: usize = 128;

/// Read a sysctl, without its trailing newline.
pub fn read(path: &str) -> io::Result<String> {
    let mut s = std::fs::read_to_string(path)?;
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// Write a sysctl in one write(2), as the kernel wants.
pub fn write(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(path, value.as_bytes())
}

/// Whether the kernel accepts `@/socket` patterns (6.16+).
pub fn kernel_has_socket_mode() -> bool {
    read(CORE_MODES).is_ok_and(|m| m.split_whitespace().any(|w| w == "socket"))
}

/// Our `core_pattern`, installed; restored on drop.
#[derive(Debug)]
pub struct CorePatternOwner {
    previous_pattern: String,
    previous_pipe_limit: String,
    ours: String,
    restored: bool,
}

impl CorePatternOwner {
    /// Install `ours` (and `pipe_limit`, if given). `persist` runs after the
    /// old values are read and before anything is written, so that a crash
    /// at any point leaves enough on disk to restore them.
    pub fn install(
        ours: &str,
        pipe_limit: Option<u32>,
        persist: impl FnOnce(&str, &str) -> io::Result<()>,
    ) -> io::Result<Self> {
        if ours.len() >= CORENAME_MAX_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("core_pattern `{ours}` is longer than {CORENAME_MAX_SIZE} bytes"),
            ));
        }
        let previous_pattern = read(CORE_PATTERN)?;
        let previous_pipe_limit = read(CORE_PIPE_LIMIT)?;
        persist(&previous_pattern, &previous_pipe_limit)?;
        let owner = Self {
            previous_pattern,
            previous_pipe_limit,
            ours: ours.to_owned(),
            restored: false,
        };
        if let Some(limit) = pipe_limit {
            write(CORE_PIPE_LIMIT, &limit.to_string())?;
        }
        if let Err(e) = write(CORE_PATTERN, ours) {
            let mut owner = owner;
            owner.restored = true;
            let _ = write(CORE_PIPE_LIMIT, &owner.previous_pipe_limit);
            return Err(e);
        }
        Ok(owner)
    }

    pub fn previous_pattern(&self) -> &str {
        &self.previous_pattern
    }

    pub fn previous_pipe_limit(&self) -> &str {
        &self.previous_pipe_limit
    }

    /// Whether `core_pattern` still holds what we wrote.
    pub fn still_ours(&self) -> bool {
        read(CORE_PATTERN).is_ok_and(|p| p == self.ours)
    }

    /// Give the pattern up without touching it (someone else owns it now).
    pub fn abandon(mut self) {
        self.restored = true;
    }

    /// Put the previous values back (if the pattern is still ours).
    pub fn restore(mut self) -> io::Result<()> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> io::Result<()> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        restore_if_ours(
            &self.ours,
            &self.previous_pattern,
            &self.previous_pipe_limit,
        )
    }
}

impl Drop for CorePatternOwner {
    fn drop(&mut self) {
        if let Err(e) = self.restore_inner() {
            tracing::error!("restoring core_pattern `{}`: {e}", self.previous_pattern);
        }
    }
}

/// Write back `previous` values if `core_pattern` is `ours`; used on drop
/// and, from the persisted state, after a crash of the daemon.
pub fn restore_if_ours(ours: &str, previous: &str, previous_pipe_limit: &str) -> io::Result<()> {
    let current = read(CORE_PATTERN)?;
    if current != ours {
        tracing::warn!(
            current,
            ours,
            "core_pattern was changed by someone else; leaving it alone"
        );
        return Ok(());
    }
    write(CORE_PATTERN, previous)?;
    write(CORE_PIPE_LIMIT, previous_pipe_limit)?;
    tracing::info!(core_pattern = previous, "core_pattern restored");
    Ok(())
}
