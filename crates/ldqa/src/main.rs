//! The `ldqa` binary: parse arguments, dispatch to a command, print the error once,
//! map the outcome to an exit code (0 ok, 1 gate failed, 2 error, 130 interrupted).

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measure, predict and plan KV-cache reuse in LLM serving.
#[derive(Debug, Parser)]
#[command(name = "ldqa", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Recommend a deployment: tensor parallelism, GPU KV cache, LMCache CPU size, workload.
    Recommend(cmd::recommend::RecommendArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Recommend(args) => cmd::recommend::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
