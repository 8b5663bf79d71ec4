//! `ops core-handler`: the pipe helper the kernel runs for each core while
//! the daemon owns `core_pattern` in pipe mode. It needs nothing from the
//! daemon but its persisted state, so no core is lost while it is down.

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `<data_dir> %P %i %s %t %c %d`, as the installed pattern passes them.
    #[arg(num_args = 0.., allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ops_user::tasks::coredump::run_pipe_handler(&args.args)
}
