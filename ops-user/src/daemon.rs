//! `ops serve`: the node daemon.
//!
//! Shutdown fans out from SIGINT/SIGTERM: the servers stop accepting, the
//! tasks finish (captures flushed and recorded, core_pattern restored), and
//! every piece of kernel state is released by its owner's Drop.

use std::{
    collections::HashMap, os::unix::fs::DirBuilderExt as _, path::PathBuf, sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    api::{
        actions::Api,
        presign::Presigner,
        server::{self, Server},
        signature::Verifier,
    },
    config::Config,
    ebpf::{
        exits::{ExitMonitor, ExitScope},
        logs::LogForwarder,
    },
    instances::{LocalSource, Registry},
    records::Records,
    store::Store,
    tasks::{
        coredump::{Coredump, CoredumpConfig, EnableOptions},
        tcpdump::Tcpdump,
        Tasks,
    },
};

/// Accepted distance between a request's `x-acs-date` and our clock.
const CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// How often engine records are synced and expiries applied.
const MAINTAIN_EVERY: Duration = Duration::from_secs(2);

/// Run the daemon; `coredump_groups` (group id, cgroup path) are enabled at
/// start, outside the API (for tests and static setups).
pub async fn serve(config: Config, coredump_groups: Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    // Before anything is taken: a SIGTERM during startup must still stop
    // the daemon through the path that gives everything back.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    // A daemon that crashed while owning a socket core_pattern would be
    // dumped to itself and never finish: it is not dumpable.
    // SAFETY: prctl(PR_SET_DUMPABLE) has no memory arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let keys: HashMap<String, String> = config.keys()?.into_iter().collect();
    if config.listen.is_some() && keys.is_empty() {
        anyhow::bail!(
            "--listen needs at least one --access-key ID:SECRET: every network request must be signed"
        );
    }

    let store = Arc::new(Store::open(&config.data_dir).context("opening the database")?);
    let records = Arc::new(Records::with_ttl(
        store.clone(),
        (config.record_ttl as i64).saturating_mul(1000),
    ));
    let interrupted = records
        .fail_interrupted(
            "tcpdump",
            "the daemon stopped while the capture was running",
        )
        .context("recovering records")?;
    if interrupted > 0 {
        tracing::warn!(interrupted, "captures of an earlier run marked Failed");
    }
    let presigner = Presigner::load_or_create(&config.data_dir).context("presign key")?;
    let registry = Registry::new(Arc::new(LocalSource::new(store.clone())));

    let mut monitor =
        ExitMonitor::start(ExitScope::EnabledCgroups).context("starting the exit monitor")?;
    let _logs = LogForwarder::start(monitor.ebpf_mut(), "ops-exit");
    let mut coredump_settings = config.coredump.clone();
    // One minimum interval for the API and the engine.
    coredump_settings.min_interval_secs = config.min_interval;
    let coredump = Coredump::start(
        CoredumpConfig {
            data_dir: config.data_dir.clone(),
            settings: coredump_settings,
        },
        monitor,
    )
    .context("starting the coredump engine")?;
    for (group, cgroup) in &coredump_groups {
        coredump
            .enable(group, cgroup, EnableOptions::default())
            .with_context(|| format!("enabling coredump for {group} ({})", cgroup.display()))?;
    }
    let tc_attach = config
        .tc_attach
        .from_env_or()
        .map_err(|e| anyhow::anyhow!(e))?;
    let tasks = Tasks::new(config.data_dir.clone(), Tcpdump::new(tc_attach), coredump);
    if let Err(e) = tasks.rearm(&registry, &records) {
        tracing::warn!("re-arming coredump groups: {e}");
    }
    let api = Arc::new(Api::new(
        config.region.clone(),
        registry,
        records.clone(),
        presigner,
        tasks,
        Duration::from_secs(config.min_interval),
    ));

    let socket = server::bind_socket(&config.socket)
        .with_context(|| format!("binding {}", config.socket.display()))?;
    let tcp = match config.listen {
        Some(addr) => Some(
            server::bind_tcp(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
        ),
        None => None,
    };
    let public_base = match &tcp {
        Some(l) => format!("http://{}", l.local_addr()?),
        None => "http://localhost".to_owned(),
    };
    let server = Arc::new(Server {
        api: api.clone(),
        verifier: (!keys.is_empty()).then(|| Verifier::new(keys, CLOCK_SKEW)),
        host_id: hostname(),
        public_base,
    });
    tracing::info!(
        socket = %config.socket.display(),
        listen = ?config.listen,
        data_dir = %config.data_dir.display(),
        region = %config.region,
        "ops daemon ready"
    );

    let maintainer = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MAINTAIN_EVERY);
            loop {
                tick.tick().await;
                let api = api.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = api.tasks.maintain(&api.records, None) {
                        tracing::warn!("record maintenance: {e}");
                    }
                })
                .await;
            }
        })
    };
    let shutdown = async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    };
    server::serve(server, socket, tcp, shutdown).await?;
    tracing::info!("shutting down");
    maintainer.abort();
    let api2 = api.clone();
    // Blocking: finishes captures, restores core_pattern, joins threads.
    tokio::task::spawn_blocking(move || api2.tasks.shutdown(&api2.records)).await?;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("stopped; core_pattern restored, nothing left attached");
    Ok(())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "ops".into())
}
