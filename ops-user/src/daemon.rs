//! `ops serve`: the node daemon's main loop.
//!
//! Shutdown fans out from SIGINT/SIGTERM: the loop ends, and every piece of
//! kernel state is released by its owner's Drop, in reverse order of setup.

use std::os::unix::fs::DirBuilderExt as _;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    config::Config,
    ebpf::{exits::ExitMonitor, logs::LogForwarder},
};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;

    let mut monitor = ExitMonitor::start().context("starting the exit monitor")?;
    let _logs = LogForwarder::start(monitor.ebpf_mut(), "ops-exit");
    let mut monitor = monitor.into_async()?;
    tracing::info!(data_dir = %config.data_dir.display(), "ops daemon ready");

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            event = monitor.next() => {
                let e = event.context("reading exit events")?;
                tracing::info!(
                    pid = e.pid,
                    tid = e.tid,
                    comm = %String::from_utf8_lossy(e.comm()),
                    signal = e.sig,
                    si_code = e.si_code,
                    exit_code = e.exit_code,
                    cgroup_id = e.cgroup_id,
                    "abnormal exit"
                );
            }
        }
    }
    tracing::info!("shutting down");
    drop(monitor);
    tracing::info!("stopped; nothing left attached");
    Ok(())
}
