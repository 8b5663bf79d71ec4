use std::path::PathBuf;

use ops_user::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// TOML file whose keys override the embedded default configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for records and artifacts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    tokio::runtime::Runtime::new()?.block_on(ops_user::daemon::serve(config, args.coredump))
}
