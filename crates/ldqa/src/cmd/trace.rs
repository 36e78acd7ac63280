//! `ldqa trace stats TRACE`: what a recorded trace (Mooncake or Qwen Bailian JSONL) implies
//! without any engine: its requests and tokens, and how much of its prompts a prefix cache
//! serves, unbounded and LRU at the deployment's GPU KV cache and GPU + LMCache CPU tier
//! (the `predict` deployment flags), or at the `--capacity` sizes given.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ldqa_report::trace_stats::TraceStatsReport;
use ldqa_sim::EngineKind;
use ldqa_trace::{Trace, TraceFormat, TraceStats};

use super::engine_args::EngineArgs;
use crate::exit::ExitStatus;

/// Arguments of `ldqa trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(subcommand)]
    command: TraceCommand,
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Requests, tokens, and the prefix-cache hit rate unbounded and at given capacities.
    Stats(Box<StatsArgs>),
}

/// Arguments of `ldqa trace stats`.
#[derive(Debug, Args)]
struct StatsArgs {
    /// A trace: JSONL, one request per line, Mooncake's or Bailian's fields.
    #[arg(value_name = "TRACE")]
    trace: PathBuf,

    /// mooncake (timestamp ms, 512-token hash_ids) or bailian (chat_id, timestamp s,
    /// 16-token hash_ids). Default: told from the first line.
    #[arg(long, value_name = "FORMAT")]
    format: Option<TraceFormat>,

    /// LRU caches of these sizes, in tokens (e.g. 422096,962768). Default: the deployment's
    /// GPU prefix cache, and GPU + LMCache's CPU tier.
    #[arg(long, value_name = "TOKENS,…", value_delimiter = ',')]
    capacity: Vec<u64>,

    #[command(flatten)]
    engine: EngineArgs,

    /// Print the JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// Entry point of `ldqa trace`.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitStatus> {
    match args.command {
        TraceCommand::Stats(a) => stats(&a),
    }
}

fn stats(args: &StatsArgs) -> anyhow::Result<ExitStatus> {
    let (capacities, labels, deployment) = caches(args)?;
    let trace = Trace::read(&args.trace, args.format)
        .with_context(|| format!("trace {}", args.trace.display()))?;
    let report = TraceStatsReport {
        schema: "ldqa-trace-stats",
        schema_version: 1,
        trace: args.trace.display().to_string(),
        lru_labels: labels,
        deployment,
        stats: TraceStats::of(&trace, &capacities),
    };
    let text = if args.json {
        report.to_json()?
    } else {
        report.table()
    };
    crate::stdout::write(&text)?;
    Ok(ExitStatus::Success)
}

/// The LRU sizes, what each stands for, and the deployment they came from (when they did).
fn caches(args: &StatsArgs) -> anyhow::Result<(Vec<u64>, Vec<String>, Option<String>)> {
    if !args.capacity.is_empty() {
        let labels = args
            .capacity
            .iter()
            .map(|c| format!("LRU of {c} tokens"))
            .collect();
        return Ok((args.capacity.clone(), labels, None));
    }
    let resolved = args
        .engine
        .resolve(&[EngineKind::Vllm, EngineKind::Lmcache])?;
    let [(_, vllm), (_, lmcache)] = resolved.engines.as_slice() else {
        anyhow::bail!("invariant: two engines were asked for");
    };
    let gpu = vllm.config.gpu_kv_tokens;
    // LMCache's tier holds every block it stored, those the GPU holds too: together they
    // hold as many distinct blocks as the larger of the two.
    let both = gpu.max(lmcache.cpu_tier_tokens());
    Ok((
        vec![gpu, both],
        vec![
            "GPU prefix cache".to_string(),
            "GPU + LMCache CPU tier".to_string(),
        ],
        Some(resolved.description),
    ))
}
