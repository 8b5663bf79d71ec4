use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use ops_user::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// TOML file whose keys override the embedded default configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for records and artifacts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Serve the signed API on this TCP address too (off by default).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// An AccessKey accepted on --listen, as ID:SECRET (repeatable).
    #[arg(long = "access-key", value_name = "ID:SECRET")]
    access_keys: Vec<String>,
    /// The region this node serves.
    #[arg(long)]
    region: Option<String>,
    /// Minimum seconds between two settings of one group and OpsType.
    #[arg(long)]
    min_interval: Option<u64>,
    /// Seconds a record and its download URL live.
    #[arg(long)]
    record_ttl: Option<u64>,
    /// Enable crash dumps at start for a container group, as
    /// `<group id>=<cgroup v2 path>` (repeatable).
    #[arg(long = "coredump", value_name = "GROUP=CGROUP", value_parser = group_and_cgroup)]
    coredump: Vec<(String, PathBuf)>,
}

fn group_and_cgroup(s: &str) -> Result<(String, PathBuf), String> {
    let (group, cgroup) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not GROUP=CGROUP"))?;
    Ok((group.to_owned(), PathBuf::from(cgroup)))
}

pub fn run(args: Args, socket: &Path) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    // --socket is global: it names the socket clients use and the daemon binds.
    if socket != Path::new("/run/ops/ops.sock") || std::env::var_os("OPS_SOCKET").is_some() {
        config.socket = socket.to_owned();
    }
    if args.listen.is_some() {
        config.listen = args.listen;
    }
    config.access_keys.extend(args.access_keys);
    if let Some(region) = args.region {
        config.region = region;
    }
    if let Some(s) = args.min_interval {
        config.min_interval = s;
    }
    if let Some(s) = args.record_ttl {
        config.record_ttl = s;
    }
    tokio::runtime::Runtime::new()?.block_on(ops_user::daemon::serve(config, args.coredump))
}
