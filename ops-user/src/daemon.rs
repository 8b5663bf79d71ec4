//! `ops serve`: the node daemon.
//!
//! Shutdown fans out from SIGINT/SIGTERM: the servers stop accepting, the
//! tasks finish (captures flushed and recorded, core_pattern restored), and
//! every piece of kernel state is released by its owner's Drop.

use std::{collections::HashMap, os::unix::fs::DirBuilderExt as _, sync::Arc, time::Duration};

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
    instances::{LocalSource, Registry},
    records::Records,
    store::Store,
    tasks::Tasks,
};

/// Accepted distance between a request's `x-acs-date` and our clock.
const CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let keys: HashMap<String, String> = config.keys()?.into_iter().collect();
    if config.listen.is_some() && keys.is_empty() {
        anyhow::bail!("--listen needs at least one --access-key ID:SECRET: every network request must be signed");
    }

    let store = Arc::new(Store::open(&config.data_dir).context("opening the database")?);
    let records = Arc::new(Records::new(store.clone()));
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
    let tasks = Tasks::new();
    let registry = Registry::new(Arc::new(LocalSource::new(store.clone())));
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

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    };
    server::serve(server, socket, tcp, shutdown).await?;
    tracing::info!("shutting down");
    let api2 = api.clone();
    tokio::task::spawn_blocking(move || api2.tasks.shutdown(&api2.records)).await?;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("stopped; nothing left attached");
    Ok(())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "ops".into())
}
