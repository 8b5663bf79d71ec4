//! `ops serve`: the node daemon's main loop.
//!
//! Shutdown fans out from SIGINT/SIGTERM: the loop ends, and every piece of
//! kernel state is released by its owner's Drop, in reverse order of setup.

use std::os::unix::fs::DirBuilderExt as _;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    config::Config,
    ebpf::{
        exits::{ExitMonitor, ExitScope},
        logs::LogForwarder,
    },
    tasks::coredump::{Coredump, CoredumpConfig, EnableOptions},
};

/// Run the daemon; `coredump_groups` (group id, cgroup path) are enabled at
/// start.
pub async fn serve(
    config: Config,
    coredump_groups: Vec<(String, std::path::PathBuf)>,
) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;

    // Before anything is taken: a SIGTERM during startup must still stop
    // the daemon through the path that gives everything back.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    // A daemon that crashed while owning a socket core_pattern would be
    // dumped to itself and never finish: it is not dumpable.
    // SAFETY: prctl(PR_SET_DUMPABLE) has no memory arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };

    let mut monitor =
        ExitMonitor::start(ExitScope::EnabledCgroups).context("starting the exit monitor")?;
    let _logs = LogForwarder::start(monitor.ebpf_mut(), "ops-exit");
    let coredump = Coredump::start(
        CoredumpConfig {
            data_dir: config.data_dir.clone(),
            settings: config.coredump.clone(),
        },
        monitor,
    )
    .context("starting the coredump engine")?;
    for (group, cgroup) in &coredump_groups {
        coredump
            .enable(group, cgroup, EnableOptions::default())
            .with_context(|| format!("enabling coredump for {group} ({})", cgroup.display()))?;
    }
    tracing::info!(data_dir = %config.data_dir.display(), "ops daemon ready");

    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    tracing::info!("shutting down");
    // Blocking: restores core_pattern and joins the engine's threads.
    tokio::task::block_in_place(|| coredump.shutdown());
    tracing::info!("stopped; core_pattern restored, nothing left attached");
    Ok(())
}
