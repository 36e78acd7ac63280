//! One module per subcommand: its clap arguments and its `run`.

pub mod recommend;
pub mod run;
mod run_args;
