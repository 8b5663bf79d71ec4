//! Command-line interface: one module per subcommand.

mod core_handler;
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
    /// The pipe helper named in `core_pattern` (run by the kernel).
    #[command(name = "core-handler", hide = true)]
    CoreHandler(core_handler::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::CoreHandler(args) => core_handler::run(args),
    }
}
