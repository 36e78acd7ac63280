//! The `ldqa` binary: parse arguments, dispatch to a command, print the error once,
//! map the outcome ([`ExitStatus`]) to an exit code. This is the only place that does.
//!
//! Exit codes (the same table is in README.md, "Exit codes"):
//!
//! | code | meaning | commands |
//! |---|---|---|
//! | 0 | ok; also a reader that closed stdout early (`\| head`) | all |
//! | 1 | the run finished but a gate (`--expected-*-gain`) failed | run, predict, ab |
//! | 2 | error: usage, I/O, unreachable target, every request of a round failed, an undeployable plan (recommend), a failed engine or a mismatched `--resume` (ab) | all |
//! | 130 | interrupted by Ctrl-C, partial results written | run, ab |

mod cmd;
mod exit;
mod observe;
mod output;
mod progress;
mod recorded;
mod runtime;
mod stdout;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::ExitStatus;

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
    /// Predict a run with the simulated engine in virtual time (no GPU; it takes milliseconds).
    Predict(Box<cmd::predict::PredictArgs>),
    /// Where KV offloading pays off: one workload along an axis (working set, GPU, …), vLLM vs LMCache.
    Sweep(Box<cmd::sweep::SweepArgs>),
    /// LMCache's multi-round QA benchmark: users in growing conversations, against a server or simulated.
    MultiRoundQa(Box<cmd::multi_round::MultiRoundArgs>),
    /// Replay a recorded trace (Mooncake, Qwen Bailian) against a server on its schedule.
    Replay(Box<cmd::replay::ReplayArgs>),
    /// Recorded traces (Mooncake, Qwen Bailian): what their prefix sharing implies.
    Trace(cmd::trace::TraceArgs),
    /// Measure a running server through its API and fit the simulator to it (a profile).
    Calibrate(Box<cmd::calibrate::CalibrateArgs>),
    /// Serve the simulated engine as an OpenAI-compatible HTTP server, in real time.
    Serve(Box<cmd::serve::ServeArgs>),
    /// The tutorial end to end: baseline vs LMCache servers, the same workload, compared.
    Ab(Box<cmd::ab::AbArgs>),
    /// Render a saved result (--save-result) as HTML or markdown.
    Report(Box<cmd::report::ReportArgs>),
    /// List the GPUs and models ldqa knows (memory, peaks, KV bytes per token).
    Catalog(cmd::catalog::CatalogArgs),
    /// Compare two saved results side by side.
    Compare(Box<cmd::compare::CompareArgs>),
}

fn main() -> ExitCode {
    keep_large_allocations_mapped();
    let cli = Cli::parse();
    let outcome = dispatch(cli);
    let status = match outcome {
        Ok(status) => status,
        Err(err) if stdout::is_closed(&err) => ExitStatus::Success,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitStatus::Error
        }
    };
    ExitCode::from(status.code())
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::Run(args) => cmd::run::run(*args),
        Command::Recommend(args) => cmd::recommend::run(*args),
        Command::Predict(args) => cmd::predict::run(*args),
        Command::Sweep(args) => cmd::sweep::run(*args),
        Command::MultiRoundQa(args) => cmd::multi_round::run(*args),
        Command::Replay(args) => cmd::replay::run(*args),
        Command::Trace(args) => cmd::trace::run(args),
        Command::Calibrate(args) => cmd::calibrate::run(*args),
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Ab(args) => cmd::ab::run(*args),
        Command::Report(args) => cmd::report::run(*args),
        Command::Catalog(args) => cmd::catalog::run(args),
        Command::Compare(args) => cmd::compare::run(*args),
    }
}
