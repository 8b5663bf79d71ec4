//! Command-line interface: one module per subcommand.

mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ops",
    version,
    about = "eBPF tcpdump and coredump tasks for container groups"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node daemon until SIGINT or SIGTERM.
    Serve(serve::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
