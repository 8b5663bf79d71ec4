//! `ops`: the node daemon and its command-line client.

mod cli;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    ops_user::logging::init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // API errors print as `Code: Message`, so scripts can match them.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
