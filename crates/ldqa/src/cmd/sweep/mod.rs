//! `ldqa sweep`: one Long Doc QA workload over a range of working sets, on vLLM and on
//! vLLM + LMCache, and where LMCache starts and stops paying off.
//!
//! Flow: flags → one deployment and both engines ([`EngineArgs::resolve`]) → the document
//! counts (given, or [`default_counts`] around the GPU cache's and the CPU tier's edges) →
//! per count the plan `ldqa predict` would run, simulated on both engines (in parallel
//! across cores) → [`SweepPoint`]s → [`Crossovers`] → the table, `sweep.csv`, `sweep.json`.
//! The target is the simulator (with `--profile`, on a server's measured step costs), or
//! running servers (`--vllm-url`, `--lmcache-url`: [`servers`], one point after the other,
//! each server's prefix cache emptied before each point).

mod range;
mod servers;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ldqa_metrics::{ArmPoint, Crossovers, SweepPoint};
use ldqa_model::{Api, RoundKind};
use ldqa_report::sweep::{Capacities, SweepReport};
use ldqa_sim::protocol::{run_protocol, SimClient};
use ldqa_sim::{EngineKind, Scenario};
use ldqa_workload::{RepeatMode, Workload, WorkloadConfig};
use serde_json::json;

use super::engine_args::EngineArgs;
use super::run_args::parse_repeat_mode;
use crate::exit::ExitStatus;

/// Arguments of `ldqa sweep`.
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
pub struct SweepArgs {
    /// Working sets to sweep, in documents: a list (8,16,32), START:STOP:STEP (10:50:10)
    /// or START..STOPxN (N evenly spaced, 10..200x8). Default: about 16 points from a
    /// quarter of the GPU prefix cache to twice the LMCache CPU tier, denser around both
    /// edges.
    #[arg(long, value_name = "RANGE", value_parser = range::parse_range, help_heading = "Sweep")]
    pub num_documents: Option<range::Range>,

    /// Simulate both engines (the default; with `--profile`, on step costs measured on a
    /// server).
    #[arg(long, help_heading = "Sweep", conflicts_with_all = ["vllm_url", "lmcache_url"])]
    pub sim: bool,

    /// Measure the vLLM arm on this running server (its OpenAI base URL) instead: its
    /// prefix cache is emptied (POST /reset_prefix_cache) before every point. Describe it
    /// with the deployment flags, for the capacities and the table.
    #[arg(long, value_name = "URL", help_heading = "Servers")]
    pub vllm_url: Option<String>,

    /// Measure the LMCache arm on this running server (vLLM + LMCache), the same way. An
    /// arm given no URL is left out when the other has one.
    #[arg(long, value_name = "URL", help_heading = "Servers")]
    pub lmcache_url: Option<String>,

    /// Build documents of exactly --document-length tokens with this tokenizer (a
    /// tokenizer.json or a model folder), as `ldqa run --tokenizer` does.
    #[arg(long, value_name = "PATH", help_heading = "Servers")]
    pub tokenizer: Option<PathBuf>,

    /// Length of each document, in "hi" words.
    #[arg(
        long,
        default_value_t = 10_000,
        value_name = "TOKENS",
        help_heading = "Workload"
    )]
    pub document_length: usize,

    /// Maximum tokens generated per request.
    #[arg(
        long,
        default_value_t = 100,
        value_name = "TOKENS",
        help_heading = "Workload"
    )]
    pub output_len: u32,

    /// Times each document is repeated in the query round.
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Workload")]
    pub repeat_count: usize,

    /// Order of the query round: tile (1 2 3 1 2 3; the seed's), interleave or random.
    #[arg(long, default_value = "tile", value_name = "MODE", value_parser = parse_repeat_mode, help_heading = "Workload")]
    pub repeat_mode: RepeatMode,

    /// Maximum requests in flight (the seed's 4).
    #[arg(long, default_value_t = 4, value_name = "N", help_heading = "Workload")]
    pub max_inflight_requests: usize,

    /// Use /v1/completions instead of /v1/chat/completions.
    #[arg(long, help_heading = "Workload")]
    pub completions: bool,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Folder for sweep.json, sweep.csv and sweep.png (query TTFT against the working set).
    #[arg(long, default_value = ".", value_name = "DIR", help_heading = "Output")]
    pub output_dir: PathBuf,

    /// Print sweep.json on stdout instead of the table.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

impl SweepArgs {
    fn validate(&self) -> anyhow::Result<()> {
        for (value, flag) in [
            (self.document_length, "--document-length"),
            (self.repeat_count, "--repeat-count"),
            (self.max_inflight_requests, "--max-inflight-requests"),
        ] {
            anyhow::ensure!(value >= 1, "{flag} must be at least 1");
        }
        anyhow::ensure!(self.output_len >= 1, "--output-len must be at least 1");
        Ok(())
    }

    fn workload(&self, num_documents: usize) -> WorkloadConfig {
        WorkloadConfig {
            num_documents,
            document_length: self.document_length,
            repeat_count: self.repeat_count,
            repeat_mode: self.repeat_mode,
            tokenizer: self.tokenizer.clone(),
            ..WorkloadConfig::default()
        }
    }

    fn api(&self) -> Api {
        if self.completions {
            Api::Completions
        } else {
            Api::Chat
        }
    }
}

/// Entry point of `ldqa sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<ExitStatus> {
    args.validate()?;
    let resolved = args
        .engine
        .resolve(&[EngineKind::Vllm, EngineKind::Lmcache])?;
    let [(_, vllm), (_, lmcache)] = resolved.engines.as_slice() else {
        anyhow::bail!("invariant: two engines were asked for");
    };
    let client = SimClient {
        output_len: args.output_len,
        template: super::predict::prompt_template(&args.engine.deployment.model, args.api())?,
    };
    let capacities = Capacities {
        tokens_per_document: prompt_tokens(&args, &client)?,
        gpu_kv_tokens: vllm.config.gpu_kv_tokens,
        cpu_tier_tokens: lmcache.cpu_tier_tokens(),
    };
    let counts = match &args.num_documents {
        Some(range::Range(counts)) => counts.clone(),
        None => default_counts(&capacities),
    };
    eprintln!(
        "Sweeping {} working sets from {} to {} documents: {}",
        counts.len(),
        counts.first().copied().unwrap_or(0),
        counts.last().copied().unwrap_or(0),
        resolved.description
    );
    let on_servers = args.vllm_url.is_some() || args.lmcache_url.is_some();
    let points = if on_servers {
        measure_on_servers(&args, &counts)?
    } else {
        simulate_points(&args, &counts, &client, vllm, lmcache)?
    };
    let description = if on_servers {
        let arm = |url: &Option<String>| url.as_deref().unwrap_or("not measured").to_string();
        format!(
            "Measured: vLLM {}, LMCache {}; capacities as described: {}",
            arm(&args.vllm_url),
            arm(&args.lmcache_url),
            resolved.description
        )
    } else {
        format!("Simulated: {}", resolved.description)
    };
    let report = SweepReport {
        schema: "ldqa-sweep",
        schema_version: 1,
        description,
        workload: json!({
            "document_length": args.document_length,
            "output_len": args.output_len,
            "repeat_count": args.repeat_count,
            "repeat_mode": args.repeat_mode.as_str(),
            "max_inflight_requests": args.max_inflight_requests,
            "api": if args.completions { "completions" } else { "chat" },
        }),
        capacities,
        crossovers: Crossovers::find(&points),
        points,
    };
    write_outputs(&args, &report)?;
    Ok(ExitStatus::Success)
}

/// The points measured on the servers given; what finished before Ctrl-C is kept.
fn measure_on_servers(args: &SweepArgs, counts: &[usize]) -> anyhow::Result<Vec<SweepPoint>> {
    let args = args.clone();
    let counts = counts.to_vec();
    crate::runtime::run(async move {
        let connect = |url: &Option<String>| {
            let url = url.clone();
            let args = &args;
            async move {
                match url {
                    Some(u) => servers::Server::connect(&u, args).await.map(Some),
                    None => Ok(None),
                }
            }
        };
        let vllm = connect(&args.vllm_url).await.context("--vllm-url")?;
        let lmcache = connect(&args.lmcache_url).await.context("--lmcache-url")?;
        let cancel = ldqa_loadgen::Cancel::new();
        crate::runtime::on_interrupt(cancel.clone(), "stopping after this point", || {});
        servers::measure_points(&args, &counts, vllm.as_ref(), lmcache.as_ref(), &cancel).await
    })
}

/// Prompt tokens of one document of the swept length, template included.
fn prompt_tokens(args: &SweepArgs, client: &SimClient) -> anyhow::Result<u64> {
    let one = Workload::build(&args.workload(1)).context("building a document")?;
    let plan = one.plan(1, 0);
    let spec = plan
        .rounds
        .iter()
        .find(|r| r.kind == RoundKind::Warmup)
        .and_then(|r| r.requests.first())
        .context("invariant: a warmup request")?;
    Ok(spec.prompt_tokens + client.template.added_tokens)
}

/// About sixteen document counts: fractions of the GPU cache's and the CPU tier's
/// capacity, denser around each edge, from a quarter of the first to twice the second.
fn default_counts(c: &Capacities) -> Vec<usize> {
    let gpu = c.gpu_documents() as f64;
    let cpu = c.cpu_documents() as f64;
    let mut counts: Vec<usize> = [0.25, 0.5, 0.75, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25]
        .iter()
        .map(|f| f * gpu)
        .chain(
            [0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0]
                .iter()
                .map(|f| f * cpu),
        )
        .map(|v| v.round().max(1.0) as usize)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Both engines at every count, spread over the machine's cores.
fn simulate_points(
    args: &SweepArgs,
    counts: &[usize],
    client: &SimClient,
    vllm: &Scenario,
    lmcache: &Scenario,
) -> anyhow::Result<Vec<SweepPoint>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = counts.len().div_ceil(threads).max(1);
    let results: Vec<anyhow::Result<SweepPoint>> = std::thread::scope(|scope| {
        let handles: Vec<_> = counts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&n| simulate_point(args, n, client, vllm, lmcache))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a sweep thread panicked"))
            .collect()
    });
    results.into_iter().collect()
}

fn simulate_point(
    args: &SweepArgs,
    num_documents: usize,
    client: &SimClient,
    vllm: &Scenario,
    lmcache: &Scenario,
) -> anyhow::Result<SweepPoint> {
    let workload = args.workload(num_documents);
    simulate(&workload, args.max_inflight_requests, client, vllm, lmcache)
}

/// `workload` with at most `max_inflight` in flight, on both engines: one point.
pub(crate) fn simulate(
    workload: &WorkloadConfig,
    max_inflight: usize,
    client: &SimClient,
    vllm: &Scenario,
    lmcache: &Scenario,
) -> anyhow::Result<SweepPoint> {
    let num_documents = workload.num_documents;
    let plan = Workload::build(workload)
        .with_context(|| format!("building {num_documents} documents"))?
        .plan(max_inflight, 0);
    let arm = |scenario: &Scenario, name: &str| -> anyhow::Result<ArmPoint> {
        let rounds = run_protocol(scenario, &plan, client)
            .with_context(|| format!("simulating {name} at {num_documents} documents"))?;
        ArmPoint::of(&rounds).context("a round did not run")
    };
    let working_set_tokens = plan
        .rounds
        .iter()
        .find(|r| r.kind == RoundKind::Warmup)
        .map_or(0, |r| {
            r.requests
                .iter()
                .map(|s| s.prompt_tokens + client.template.added_tokens)
                .sum()
        });
    Ok(SweepPoint {
        num_documents,
        working_set_tokens,
        vllm: Some(arm(vllm, "vLLM")?),
        lmcache: Some(arm(lmcache, "LMCache")?),
    })
}

fn write_outputs(args: &SweepArgs, report: &SweepReport) -> anyhow::Result<()> {
    let dir = &args.output_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_text = report.to_json()?;
    let json_path = dir.join("sweep.json");
    ldqa_report::write_atomically(&json_path, json_text.as_bytes())
        .with_context(|| format!("writing {}", json_path.display()))?;
    let csv_path = dir.join("sweep.csv");
    report.write_csv(&csv_path)?;
    let png_path = dir.join("sweep.png");
    ldqa_report::sweep::plot_sweep(report, &png_path)?;
    if args.json {
        crate::stdout::write(&json_text)?;
    } else {
        crate::stdout::write(&report.table())?;
    }
    eprintln!(
        "wrote {}, {} and {}",
        json_path.display(),
        csv_path.display(),
        png_path.display()
    );
    Ok(())
}
