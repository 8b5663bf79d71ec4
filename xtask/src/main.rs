//! Developer tasks for the ops workspace: `cargo xtask <task>`.

mod build;
mod lint;
mod run;
mod setup;
mod smoke;
mod test;
mod util;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for the ops workspace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain and test tools (idempotent; seconds when done).
    Setup,
    /// Build the eBPF objects and `target/release/ops` with them embedded.
    Build,
    /// Build, then run the daemon with the embedded default configuration.
    Run(run::Args),
    /// rustfmt and clippy (-D warnings) for the host crates and the eBPF crate.
    Lint,
    /// Lint, then every test: unit tests and the privileged integration tests.
    Test(test::Args),
    /// The privileged suite on Debian's 6.1 LTS kernel in QEMU.
    VmTest(vm::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build => build::run().map(|_| ()),
        Task::Run(args) => run::run(args),
        Task::Lint => lint::run(),
        Task::Test(args) => test::run(args),
        Task::VmTest(args) => vm::run(&args),
    }
}
