//! The `ldqa` binary: parse arguments, dispatch to a command, print the error once,
//! map the outcome to an exit code.
//!
//! Exit codes: 0 ok; 1 the run finished but a gate failed; 2 error (usage, I/O,
//! unreachable target, every request of a round failed); 130 interrupted.

mod ab;
mod cmd;
mod observe;
mod output;
mod runtime;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc raises its mmap threshold each time a large block is freed, after which big
/// buffers come from the heap and stay there. Fitting 1,000 documents of 100k tokens with
/// the Llama-3 tokenizer peaked at 213 MB that way (the tokenizer itself is ~100 MB), 176 MB
/// with a fixed threshold: blocks of 1 MiB and more are mapped, and unmapped when freed.
#[allow(unsafe_code, reason = "mallopt(3), see the SAFETY comment")]
fn keep_large_allocations_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// A gate (`--expected-ttft-gain`, …) failed.
pub const EXIT_GATE: u8 = 1;
/// Usage, I/O or target error.
pub const EXIT_ERROR: u8 = 2;
/// Ctrl-C: partial results were written.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Measure, predict and plan KV-cache reuse in LLM serving.
///
/// `ldqa run` is LMCache's Long Doc QA benchmark (same flags, same result lines);
/// `ldqa recommend` sizes a vLLM + LMCache deployment without a GPU.
#[derive(Debug, Parser)]
#[command(name = "ldqa", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Long Doc QA benchmark against an OpenAI-compatible server.
    Run(Box<cmd::run::RunArgs>),
    /// Recommend a deployment: tensor parallelism, GPU KV cache, LMCache CPU size, workload.
    Recommend(Box<cmd::recommend::RecommendArgs>),
    /// Predict a run with the simulated engine, in virtual time (milliseconds, no GPU).
    Predict(Box<cmd::predict::PredictArgs>),
    /// Serve the simulated engine as an OpenAI-compatible HTTP server, in real time.
    Serve(Box<cmd::serve::ServeArgs>),
    /// The tutorial end to end: baseline vs LMCache servers, the same workload, compared.
    Ab(Box<cmd::ab::AbArgs>),
    /// Render a saved result (--save-result) as HTML or markdown.
    Report(Box<cmd::report::ReportArgs>),
    /// Compare two saved results side by side.
    Compare(Box<cmd::compare::CompareArgs>),
}

fn main() -> ExitCode {
    keep_large_allocations_mapped();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => cmd::run::run(*args),
        Command::Recommend(args) => cmd::recommend::run(*args),
        Command::Predict(args) => cmd::predict::run(*args),
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Ab(args) => cmd::ab::run(*args),
        Command::Report(args) => cmd::report::run(*args),
        Command::Compare(args) => cmd::compare::run(*args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
