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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    tokio::runtime::Runtime::new()?.block_on(ops_user::daemon::serve(config))
}
