//! `ldqa predict --trace TRACE`: a recorded trace (Mooncake or Qwen Bailian) replayed in
//! virtual time on the simulated engine(s): every request sent at its recorded arrival
//! (over `--speedup`), its prompt the trace's blocks, so the caches see the trace's sharing.
//! Prints per engine the requests, TTFT statistics, where the prompt tokens came from and
//! the hit rate; writes `trace_prediction.json` in --output-dir.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ldqa_sim::cluster::{CacheAwareParams, ClusterSpec, RoutingPolicy};
use ldqa_sim::remote_tier::RemoteTierConfig;
use ldqa_sim::trace::{stream_trace, TraceOptions};
use ldqa_trace::{TraceFormat, TraceSource};
use serde::Serialize;

use super::engine_replay::{finish_shares, EngineReplay, Tally};
use super::predict::PredictArgs;
use crate::exit::ExitStatus;

/// The trace-replay flags of `ldqa predict` (`--trace` replaces the Long Doc QA workload).
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// Replay this trace (JSONL, Mooncake's or Bailian's fields) instead of the Long Doc QA
    /// workload: the workload flags are then not used.
    #[arg(long, value_name = "TRACE", help_heading = "Trace replay")]
    pub trace: Option<PathBuf>,

    /// mooncake or bailian (default: told from the first line).
    #[arg(
        long,
        value_name = "FORMAT",
        requires = "trace",
        help_heading = "Trace replay"
    )]
    pub trace_format: Option<TraceFormat>,

    #[command(flatten)]
    pub selection: TraceSelection,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `--remote-gbps`'s default: a 25 Gbit/s data-centre link.
const DEFAULT_REMOTE_GBPS: f64 = 25.0;
/// `--remote-latency-ms`'s default.
const DEFAULT_REMOTE_LATENCY_MS: f64 = 1.0;

/// A simulated cluster: N instances of the deployment behind a router.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Simulate this many instances of the deployment, each with its own GPU cache, LMCache
    /// tier and front end, behind a router (--router): a trace, or the Long Doc QA workload.
    /// `sweep` takes several (1,2,4,8) as its axis.
    #[arg(
        long,
        default_value = "1",
        value_delimiter = ',',
        value_name = "N",
        help_heading = "Many instances"
    )]
    pub instances: Vec<usize>,

    /// How the router picks an instance: round-robin, least-loaded (fewest in flight at
    /// the router), random, power-of-two (vllm-router's: the less loaded of two drawn),
    /// cache-aware (vllm-router's: the instance whose tree of prompts sent
    /// matches most of this one, the least loaded on a tie, unless loads are out of
    /// balance), kv-aware (vllm-router's: the least new prefill times load, from what each
    /// GPU cache holds), session (production-stack's: a conversation on one instance).
    /// docs/cluster.md describes each. `sweep` takes several as its axis.
    #[arg(
        long,
        value_enum,
        default_value = "round-robin",
        value_delimiter = ',',
        value_name = "POLICY",
        help_heading = "Many instances"
    )]
    pub router: Vec<RouterArg>,

    /// A remote KV tier of this many GiB that every instance's LMCache shares (as
    /// LMCache's remote backends: an LMCache server, Redis, Mooncake store): chunks the
    /// local CPU tier lacks are looked up there, and every chunk stored is put there. 0:
    /// none. `sweep` takes several (0,64,256) as its axis.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "GIB",
        help_heading = "Many instances"
    )]
    pub remote_gib: Vec<f64>,

    /// The remote tier's network link, Gbit/s, one queue shared by all instances' loads.
    /// `sweep` takes several (10,25,100,400) as its axis.
    #[arg(
        long,
        default_value = "25",
        value_delimiter = ',',
        value_name = "GBPS",
        requires = "remote_gib",
        help_heading = "Many instances"
    )]
    pub remote_gbps: Vec<f64>,

    /// Time to the first byte of each load from the remote tier, milliseconds.
    #[arg(
        long,
        default_value_t = DEFAULT_REMOTE_LATENCY_MS,
        value_name = "MS",
        requires = "remote_gib",
        help_heading = "Many instances"
    )]
    pub remote_latency_ms: f64,
}

/// `--router`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterArg {
    RoundRobin,
    LeastLoaded,
    Random,
    PowerOfTwo,
    CacheAware,
    KvAware,
    Session,
}

impl RouterArg {
    /// The simulated router's policy.
    pub fn policy(self) -> RoutingPolicy {
        match self {
            RouterArg::RoundRobin => RoutingPolicy::RoundRobin,
            RouterArg::LeastLoaded => RoutingPolicy::LeastLoaded,
            RouterArg::Random => RoutingPolicy::Random,
            RouterArg::PowerOfTwo => RoutingPolicy::PowerOfTwo,
            RouterArg::CacheAware => RoutingPolicy::CacheAware(CacheAwareParams::default()),
            RouterArg::KvAware => RoutingPolicy::KvAware,
            RouterArg::Session => RoutingPolicy::Session,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        self.policy().name()
    }
}

impl ClusterArgs {
    /// `instances` behind `router`, sharing a remote tier of `remote_gib` (none: no remote
    /// tier) over the default link.
    pub fn of(instances: usize, router: RouterArg, remote_gib: Option<f64>) -> ClusterArgs {
        ClusterArgs {
            instances: vec![instances],
            router: vec![router],
            remote_gib: remote_gib.into_iter().collect(),
            remote_gbps: vec![DEFAULT_REMOTE_GBPS],
            remote_latency_ms: DEFAULT_REMOTE_LATENCY_MS,
        }
    }

    /// Instances: the first value (`sweep` takes the others one at a time, [`ClusterArgs::at`]).
    pub fn instance_count(&self) -> usize {
        self.instances.first().copied().unwrap_or(1)
    }

    /// The router: the first value.
    pub fn router_arg(&self) -> RouterArg {
        self.router
            .first()
            .copied()
            .unwrap_or(RouterArg::RoundRobin)
    }

    /// The shared remote tier's size, GiB: the first value (none when it is 0).
    pub fn remote_gib(&self) -> Option<f64> {
        self.remote_gib.first().copied().filter(|&g| g > 0.0)
    }

    /// The remote tier's link, Gbit/s: the first value.
    pub fn remote_gbps(&self) -> f64 {
        self.remote_gbps
            .first()
            .copied()
            .unwrap_or(DEFAULT_REMOTE_GBPS)
    }

    /// The same cluster with `instances` behind `router`, sharing a remote tier of
    /// `remote_gib` (none: no remote tier) over a link of `remote_gbps`.
    pub fn at(
        &self,
        instances: usize,
        router: RouterArg,
        remote_gib: Option<f64>,
        remote_gbps: f64,
    ) -> ClusterArgs {
        ClusterArgs {
            instances: vec![instances],
            router: vec![router],
            remote_gib: remote_gib.into_iter().collect(),
            remote_gbps: vec![remote_gbps],
            ..self.clone()
        }
    }

    /// Checks every value (each --instances, the remote tier's flags); the error names
    /// the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        for &n in &self.instances {
            anyhow::ensure!(
                (1..=1024).contains(&n),
                "--instances must be 1 to 1024, not {n}"
            );
        }
        for &gib in &self.remote_gib {
            anyhow::ensure!(
                gib.is_finite() && gib >= 0.0,
                "--remote-gib must be a number of GiB, 0 or more (0: no remote tier), not {gib}"
            );
        }
        if !self.remote_gib.is_empty() {
            for &gbps in &self.remote_gbps {
                anyhow::ensure!(
                    gbps.is_finite() && gbps > 0.0,
                    "--remote-gbps must be a positive number, not {gbps}"
                );
            }
            anyhow::ensure!(
                self.remote_latency_ms.is_finite() && self.remote_latency_ms >= 0.0,
                "--remote-latency-ms must be 0 or more, not {}",
                self.remote_latency_ms
            );
        }
        Ok(())
    }

    /// [`ClusterArgs::validate`], and one value each where one cluster is simulated
    /// (`predict`).
    pub fn check_single(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.instances.len() == 1
                && self.router.len() <= 1
                && self.remote_gib.len() <= 1
                && self.remote_gbps.len() <= 1,
            "predict simulates one cluster: give one --instances, one --router, one --remote-gib and one --remote-gbps (ldqa sweep takes several)"
        );
        self.validate()
    }

    /// The routing policy.
    pub fn policy(&self) -> RoutingPolicy {
        self.router_arg().policy()
    }

    /// The cluster `scenario`'s engines form (the remote tier sized for its model), for a
    /// client that sends `text_prompts` (or token ids); the values were checked by
    /// [`ClusterArgs::validate`].
    pub fn spec(&self, scenario: &ldqa_sim::Scenario, text_prompts: bool) -> ClusterSpec {
        let remote = self.remote_gib().map(|gib| {
            let bytes_per_token = scenario.config.model.kv_bytes_per_token.max(1);
            let chunk = u64::from(scenario.config.lmcache_chunk_tokens);
            let tokens = gib * f64::from(1u32 << 30) / bytes_per_token as f64;
            RemoteTierConfig {
                capacity_chunks: (tokens / chunk as f64) as u64,
                bytes_per_token,
                bytes_per_s: self.remote_gbps() * 1e9 / 8.0,
                latency_ns: (self.remote_latency_ms * 1e6).round() as u64,
            }
        });
        ClusterSpec {
            instances: self.instance_count(),
            policy: self.policy(),
            remote,
            text_prompts,
        }
    }

    /// Whether this is one engine alone: one instance, no remote tier (the router then
    /// decides nothing).
    pub fn is_single_engine(&self) -> bool {
        self.instances.iter().all(|&n| n == 1) && self.remote_gib.iter().all(|&g| g == 0.0)
    }

    /// What the cluster is, in words (nothing for one engine alone).
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.instance_count() > 1 {
            parts.push(format!(
                "{} instances behind a {} router",
                self.instance_count(),
                self.policy().name()
            ));
        }
        if let Some(gib) = self.remote_gib() {
            parts.push(format!(
                "LMCache sharing a remote tier of {gib} GiB over {} Gbit/s, {} ms to first byte",
                self.remote_gbps(),
                self.remote_latency_ms
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// `trace` on `scenario`, on the instances behind the router: the arm's summary named
    /// `name`, with one per instance when there are several. The trace is read as it is
    /// replayed and each record folded in as its request ends.
    pub(crate) fn replay(
        &self,
        name: &str,
        scenario: &ldqa_sim::Scenario,
        trace: &TraceSource,
        options: &TraceOptions,
    ) -> anyhow::Result<EngineReplay> {
        let n = self.instance_count();
        let mut total = Tally::default();
        let mut each: Vec<Tally> = (0..n).map(|_| Tally::default()).collect();
        let mut read_error = None;
        let requests = trace.requests(&mut read_error)?;
        let span = stream_trace(
            scenario,
            trace.format(),
            requests,
            options,
            // `ldqa replay` sends token ids.
            &self.spec(scenario, false),
            &mut |i, instance, record| {
                total.add(i, &record);
                if let Some(t) = each.get_mut(instance as usize).filter(|_| n > 1) {
                    t.add(i, &record);
                }
            },
        )
        .with_context(|| format!("replaying the trace on {name}"))?;
        if let Some(e) = read_error {
            return Err(e).context("the trace changed while it was replayed");
        }
        let summary = total.finish(name, span.end.ns_since(span.start));
        Ok(if n > 1 {
            summary.with_instances(finish_shares(each, |k| format!("  #{}", k + 1)))
        } else {
            summary
        })
    }
}

/// Which part of a trace to replay, and how fast: the flags `predict --trace` and `replay`
/// share.
#[derive(Debug, Clone, Args)]
pub struct TraceSelection {
    /// Arrivals this many times faster than recorded.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "F",
        help_heading = "Trace replay"
    )]
    pub speedup: f64,

    /// Replay only the first N requests.
    #[arg(long, value_name = "N", help_heading = "Trace replay")]
    pub max_requests: Option<usize>,

    /// Replay only the requests that arrive within this many seconds of the first.
    #[arg(long, value_name = "SECONDS", help_heading = "Trace replay")]
    pub time_window: Option<f64>,
}

impl TraceSelection {
    /// Checks the values; the error names the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.speedup.is_finite() && self.speedup > 0.0,
            "--speedup must be a positive number, not {}",
            self.speedup
        );
        if let Some(w) = self.time_window {
            anyhow::ensure!(
                w.is_finite() && w > 0.0,
                "--time-window must be a positive number of seconds, not {w}"
            );
        }
        anyhow::ensure!(
            self.max_requests != Some(0),
            "--max-requests must be at least 1"
        );
        Ok(())
    }
}

impl TraceArgs {
    /// The replay's options; `max_concurrency` is the workload's `--max-concurrency` (no
    /// cap: the trace's arrivals as recorded).
    fn options(&self, max_concurrency: Option<usize>) -> anyhow::Result<TraceOptions> {
        self.selection.validate()?;
        anyhow::ensure!(
            max_concurrency != Some(0),
            "--max-concurrency must be at least 1"
        );
        let s = &self.selection;
        Ok(TraceOptions {
            speedup: s.speedup,
            max_requests: s.max_requests,
            time_window_s: s.time_window,
            max_concurrency,
        })
    }
}

/// The JSON document (`trace_prediction.json`, `replay.json`).
#[derive(Debug, Serialize)]
pub(crate) struct TracePrediction {
    pub schema: &'static str,
    pub schema_version: u32,
    pub trace: String,
    pub format: TraceFormat,
    pub description: String,
    pub speedup: f64,
    pub engines: Vec<EngineReplay>,
    /// `replay --metrics-url`: each instance's own counters over the replay.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_counters: Vec<super::instance_counters::InstanceCounters>,
}

/// Entry point of `ldqa predict --trace`.
pub fn run(args: &PredictArgs) -> anyhow::Result<ExitStatus> {
    let t = &args.trace;
    let options = t.options(args.workload.max_concurrency)?;
    t.cluster.check_single()?;
    let resolved = args.engine.resolve(args.engine_choice.kinds())?;
    let path = t.trace.as_ref().context("invariant: --trace given")?;
    let trace = TraceSource::open(path, t.trace_format)
        .with_context(|| format!("--trace {}", path.display()))?;
    eprintln!("Simulating: {}", resolved.description);
    if let Some(cluster) = t.cluster.describe() {
        eprintln!("  × {cluster}");
    }
    let mut engines = Vec::new();
    for (kind, scenario) in &resolved.engines {
        engines.push(
            t.cluster
                .replay(kind.as_str(), scenario, &trace, &options)?,
        );
    }
    let prediction = TracePrediction {
        schema: "ldqa-trace-prediction",
        schema_version: 1,
        trace: path.display().to_string(),
        format: trace.format(),
        description: resolved.description.clone(),
        speedup: t.selection.speedup,
        engines,
        instance_counters: Vec::new(),
    };
    let dir = &args.workload.output_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_path = dir.join("trace_prediction.json");
    let json = serde_json::to_string_pretty(&prediction)? + "\n";
    ldqa_report::write_atomically(&json_path, json.as_bytes())
        .with_context(|| format!("writing {}", json_path.display()))?;
    crate::stdout::write(&table(&prediction))?;
    eprintln!("wrote {}", json_path.display());
    Ok(ExitStatus::Success)
}

/// The table for a terminal.
pub(crate) fn table(p: &TracePrediction) -> String {
    let title = format!(
        "Trace {} ({}), {} requests, arrivals ×{} — simulated seconds\n",
        p.trace,
        p.format,
        p.engines.first().map_or(0, |e| e.requests),
        p.speedup
    );
    let engines: Vec<&EngineReplay> = p
        .engines
        .iter()
        .flat_map(|e| std::iter::once(e).chain(&e.instances))
        .collect();
    let mut out = engine_table(&title, &engines);
    for e in &p.engines {
        out.push_str(&e.notes());
    }
    out
}

/// `title`, then a line per engine: requests, TTFT statistics, latency, makespan, where
/// the prompt tokens came from and the hit rate.
pub(crate) fn engine_table(title: &str, engines: &[&EngineReplay]) -> String {
    let mut out = title.to_string();
    out.push_str(&format!(
        "{:<8} {:>8} {:>6} │ {:>9} {:>9} {:>9} {:>9} │ {:>9} {:>10} │ {:>13} {:>13} {:>13} {:>8}\n",
        "engine",
        "requests",
        "failed",
        "TTFT mean",
        "p50",
        "p90",
        "p99",
        "latency",
        "makespan",
        "cached tok",
        "from CPU tier",
        "computed tok",
        "hit rate"
    ));
    // Seconds, or "-" when no request succeeded.
    let secs = |v: f64| {
        if v.is_finite() {
            format!("{v:.3}s")
        } else {
            "-".to_string()
        }
    };
    for e in engines {
        out.push_str(&format!(
            "{:<8} {:>8} {:>6} │ {:>9} {:>9} {:>9} {:>9} │ {:>8.3}s {:>9.1}s │ {:>13} {:>13} {:>13} {:>6.1} %\n",
            e.engine,
            e.requests,
            e.failed,
            secs(e.mean_ttft_s),
            secs(e.p50_ttft_s),
            secs(e.p90_ttft_s),
            secs(e.p99_ttft_s),
            e.mean_latency_s,
            e.makespan_s,
            e.cached_tokens,
            e.cpu_hit_tokens
                .map_or("not said".to_string(), |v| v.to_string()),
            e.computed_tokens,
            e.hit_rate * 100.0
        ));
    }
    out
}
