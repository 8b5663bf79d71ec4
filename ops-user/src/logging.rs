//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`),
//! with `log` records (aya-log's kernel-side lines among them) bridged in.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call more than once (tests): later
/// calls are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
