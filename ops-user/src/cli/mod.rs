//! Command-line interface: one module per subcommand. Every client command
//! talks to the daemon over its socket and accepts `--socket` and
//! `--output json`.

mod client;
mod core_handler;
mod instance;
mod output;
mod records;
mod serve;
mod task;
mod tcpdump;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use output::Output;

#[derive(Parser, Debug)]
#[command(
    name = "ops",
    version,
    about = "eBPF tcpdump and coredump tasks for container groups"
)]
pub struct Cli {
    /// The daemon's socket.
    #[arg(
        long,
        global = true,
        default_value = "/run/ops/ops.sock",
        env = "OPS_SOCKET"
    )]
    socket: PathBuf,
    /// Output format of client commands.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node daemon until SIGINT or SIGTERM.
    Serve(serve::Args),
    /// Register, list and remove container groups on this node.
    #[command(subcommand)]
    Instance(instance::Command),
    /// Create an O&M task (CreateInstanceOpsTask).
    Task(task::Args),
    /// List, show and download task records.
    #[command(subcommand)]
    Records(records::Command),
    /// Capture a container group's packets; follow progress or stream pcap.
    Tcpdump(tcpdump::Args),
    /// The pipe helper named in `core_pattern` (run by the kernel).
    #[command(name = "core-handler", hide = true)]
    CoreHandler(core_handler::Args),
}

/// Run the command. Client errors carry the API's Code and Message.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        client: client::Client::new(&cli.socket),
        output: cli.output,
    };
    match cli.command {
        Command::Serve(args) => serve::run(args, &cli.socket),
        Command::CoreHandler(args) => core_handler::run(args),
        Command::Instance(cmd) => block_on(instance::run(cmd, &ctx)),
        Command::Task(args) => block_on(task::run(args, &ctx)),
        Command::Records(cmd) => block_on(records::run(cmd, &ctx)),
        Command::Tcpdump(args) => block_on(tcpdump::run(args, &ctx)),
    }
}

pub struct Ctx {
    client: client::Client,
    output: Output,
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
