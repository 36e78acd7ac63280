//! `ldqa sweep`: one Long Doc QA workload along one axis (usually the working set; a
//! second axis makes a grid), on vLLM and on vLLM + LMCache, and where LMCache starts and
//! stops paying off.
//!
//! Flow: flags → the axes swept ([`axes::Grid`]) → every point's setting, with the engines
//! of its deployment resolved once ([`points::tasks`]; the document counts given, or chosen
//! per curve around the GPU cache's and the CPU tier's edges) → each point run in the
//! simulator (in parallel across cores; on one engine, or on a simulated cluster whose
//! `--instances`, `--router` and `--remote-gib` may be axes too, each instance's share of
//! every round kept) or on running servers ([`servers`], one after the
//! other) → [`SweepPoint`]s → one [`ldqa_metrics::Crossovers`] per curve → the table,
//! `sweep.json`, `sweep.csv`, `sweep.png` and `sweep.html`. `--resume` keeps the points
//! an earlier run of the same sweep left in `sweep.json`.

mod axes;
mod points;
mod range;
mod resume;
mod servers;
mod started;
mod trace;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ldqa_metrics::SweepPoint;
use ldqa_model::Api;
use ldqa_report::sweep::SweepReport;
use ldqa_workload::{HitMissRatio, RepeatMode, WorkloadConfig};
use serde_json::json;

use super::deployment_args::DEFAULT_MODEL;
use super::engine_args::EngineArgs;
use super::predict_trace::TraceArgs;
use super::run_args::parse_repeat_mode;
use crate::exit::ExitStatus;
use axes::{Grid, Setting};
pub(crate) use points::simulate;
use points::Task;
use range::List;

/// Arguments of `ldqa sweep`. The axis flags take one value or several: a list (`8,16,32`),
/// `START:STOP:STEP` or `START..STOPxN` for counts; lists for sizes, names and ratios. The
/// deployment's own `--model`, `--gpu`, `--tensor-parallel-size` and `--lmcache-cpu-gib`
/// are replaced by these (they are hidden under other names).
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
#[command(mut_arg("model", |a| a.long("deployment-model").hide(true)))]
#[command(mut_arg("gpu", |a| a.long("deployment-gpu").hide(true)))]
#[command(mut_arg("tensor_parallel_size", |a| a.long("deployment-tensor-parallel-size").hide(true)))]
#[command(mut_arg("lmcache_cpu_gib", |a| a.long("deployment-lmcache-cpu-gib").hide(true)))]
pub struct SweepArgs {
    /// Working sets, in documents: a list (8,16,32), START:STOP:STEP (10:50:10) or
    /// START..STOPxN (N evenly spaced, 10..200x8). Default: about 16 points from a quarter
    /// of the GPU prefix cache to twice the LMCache CPU tier, denser around both edges.
    #[arg(long, value_name = "RANGE", value_parser = range::parse_range, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub num_documents: Option<range::Range>,

    /// Length of each document, in "hi" words (exact tokens with --tokenizer).
    #[arg(long, default_value = "10000", value_name = "RANGE", value_parser = range::parse_range, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub document_length: range::Range,

    /// Maximum requests in flight (the seed's 4).
    #[arg(long, default_value = "4", value_name = "RANGE", value_parser = range::parse_range, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub max_inflight_requests: range::Range,

    /// Hit:miss ratios of the query round (1:1,4:1); default: every query may hit.
    #[arg(long, value_name = "H:M,…", value_parser = range::parse_ratios, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub hit_miss_ratio: Option<List<HitMissRatio>>,

    /// LMCache's CPU tier per GPU, GiB (20,50,100); default: as `recommend` plans it.
    #[arg(long = "lmcache-cpu-gib", id = "sweep_lmcache_cpu_gib", value_name = "GIB,…", value_parser = range::parse_gibs, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub lmcache_cpu_gib: Option<List<f64>>,

    /// Tensor-parallel sizes (1,2,4); default: the smallest at which vLLM starts.
    #[arg(long = "tensor-parallel-size", id = "sweep_tensor_parallel_size", value_name = "RANGE", value_parser = range::parse_range, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub tensor_parallel_size: Option<range::Range>,

    /// GPUs, catalog names (h100-80gb,h200,a100-80gb); default: h100-80gb.
    #[arg(long = "gpu", id = "sweep_gpu", value_name = "NAME,…", value_parser = range::parse_names, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub gpu: Option<List<String>>,

    /// Models: catalog names, local folders or Hugging Face ids.
    #[arg(long = "model", id = "sweep_model", default_value = DEFAULT_MODEL, value_name = "NAME,…", value_parser = range::parse_names, help_heading = "Axes (several values sweep one; two make a grid)")]
    pub model: List<String>,

    /// Simulate both engines (the default; with `--profile`, on step costs measured on a
    /// server).
    #[arg(long, help_heading = "Target", conflicts_with_all = ["vllm_url", "lmcache_url", "start"])]
    pub sim: bool,

    /// Start the servers: sim (`ldqa serve`, the simulated engine over HTTP, as `ab --sim`)
    /// or vllm (`vllm serve` with and without LMCache, as `ab`). One server at a time, one
    /// pair per deployment (a new pair for each value of a deployment axis); logs in
    /// --output-dir/servers/.
    #[arg(long, value_enum, value_name = "KIND", help_heading = "Target")]
    pub start: Option<started::StartKind>,

    /// With --start: start the vLLM arm's server with this shell command instead (e.g. your
    /// own `vllm serve …`); it is looked for at --vllm-url, else the URL it prints as
    /// `listening on http://…`, else http://127.0.0.1:8000/v1.
    #[arg(long, value_name = "CMD", help_heading = "Target", requires = "start")]
    pub vllm_cmd: Option<String>,

    /// With --start: the LMCache arm's server command, the same way (--lmcache-url).
    #[arg(long, value_name = "CMD", help_heading = "Target", requires = "start")]
    pub lmcache_cmd: Option<String>,

    /// With --start: a fresh pair of servers for every point, instead of emptying their
    /// prefix cache (for servers without POST /reset_prefix_cache).
    #[arg(long, help_heading = "Target", requires = "start")]
    pub restart_each_point: bool,

    /// With --start sim (default 2): simulated time runs this many times faster than the
    /// wall clock (times reported are simulated seconds, as in `ab --sim`).
    #[arg(long, value_name = "F", help_heading = "Target")]
    pub time_scale: Option<f64>,

    /// With --start (default 600): seconds a server has to answer /health.
    #[arg(long, value_name = "SECONDS", help_heading = "Target")]
    pub ready_timeout: Option<f64>,

    /// Measure the vLLM arm on this running server (its OpenAI base URL) instead: its
    /// prefix cache is emptied (POST /reset_prefix_cache) before every point. Describe it
    /// with the deployment flags, for the capacities and the table. Given once per server,
    /// each round is spread over them (request i to server i mod N). With --start: where
    /// the started server listens.
    #[arg(long, value_name = "URL", help_heading = "Target")]
    pub vllm_url: Vec<String>,

    /// Measure the LMCache arm on this running server (vLLM + LMCache), the same way
    /// (several: once each). An arm given no URL is left out when the other has one.
    #[arg(long, value_name = "URL", help_heading = "Target")]
    pub lmcache_url: Vec<String>,

    /// Read this Prometheus endpoint of the vLLM arm around each round, for each point's
    /// per-instance counters (requests, prefix-cache hits; in sweep.json and on stderr):
    /// once per --vllm-url, or, behind a router, once per instance behind it.
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Target",
        requires = "vllm_url"
    )]
    pub vllm_metrics_url: Vec<String>,

    /// The same for the LMCache arm's instances.
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Target",
        requires = "lmcache_url"
    )]
    pub lmcache_metrics_url: Vec<String>,

    /// Keep the points an earlier run of this same sweep wrote to --output-dir's
    /// sweep.json (e.g. one stopped with Ctrl-C) and run only the others.
    #[arg(long, help_heading = "Target")]
    pub resume: bool,

    /// Build documents of exactly --document-length tokens with this tokenizer (a
    /// tokenizer.json or a model folder), as `ldqa run --tokenizer` does.
    #[arg(long, value_name = "PATH", help_heading = "Workload")]
    pub tokenizer: Option<PathBuf>,

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

    /// Use /v1/completions instead of /v1/chat/completions.
    #[arg(long, help_heading = "Workload")]
    pub completions: bool,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Folder for sweep.json, sweep.csv, sweep.png (query TTFT along the axis),
    /// sweep-round-time.png and sweep.html.
    #[arg(long, default_value = ".", value_name = "DIR", help_heading = "Output")]
    pub output_dir: PathBuf,

    /// Print sweep.json on stdout instead of the table.
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    // `--trace TRACE` sweeps a recorded trace instead of Long Doc QA, along one deployment
    // axis, in the simulator (sweep/trace.rs).
    #[command(flatten)]
    pub trace: TraceArgs,
}

impl SweepArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.repeat_count >= 1, "--repeat-count must be at least 1");
        anyhow::ensure!(self.output_len >= 1, "--output-len must be at least 1");
        anyhow::ensure!(
            self.start.is_none() || (self.vllm_url.len() <= 1 && self.lmcache_url.len() <= 1),
            "--start starts one server per arm: give --vllm-url and --lmcache-url at most once each with it"
        );
        for (urls, metrics, flag) in [
            (&self.vllm_url, &self.vllm_metrics_url, "--vllm"),
            (&self.lmcache_url, &self.lmcache_metrics_url, "--lmcache"),
        ] {
            anyhow::ensure!(
                metrics.is_empty() || self.start.is_none(),
                "{flag}-metrics-url is for servers already running, not with --start"
            );
            anyhow::ensure!(
                metrics.is_empty() || urls.len() == 1 || metrics.len() == urls.len(),
                "{flag}-metrics-url is given for {} of {} servers: once per {flag}-url, in the same order (or, through one router, once per instance behind it)",
                metrics.len(),
                urls.len()
            );
            for url in metrics {
                ldqa_loadgen::Endpoint::new(url, None)
                    .with_context(|| format!("{flag}-metrics-url {url}"))?;
            }
        }
        for (value, flag, needs) in [
            (
                self.time_scale,
                "--time-scale",
                Some(started::StartKind::Sim),
            ),
            (self.ready_timeout, "--ready-timeout", self.start),
        ] {
            let Some(v) = value else { continue };
            anyhow::ensure!(
                v.is_finite() && v > 0.0,
                "{flag} must be a positive number, not {v}"
            );
            anyhow::ensure!(
                self.start.is_some() && self.start == needs,
                "{flag} is for servers the sweep starts ({}): it would be ignored here",
                if flag == "--time-scale" {
                    "--start sim"
                } else {
                    "--start"
                }
            );
        }
        Ok(())
    }

    /// `--time-scale`, or `ab --sim`'s default.
    fn time_scale(&self) -> f64 {
        self.time_scale.unwrap_or(2.0)
    }

    /// `--ready-timeout`, or `ab`'s default.
    fn ready_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.ready_timeout.unwrap_or(600.0))
    }

    /// Every axis at its first value.
    fn base_setting(&self) -> Setting {
        Setting {
            num_documents: self.num_documents.as_ref().map_or(1, |r| r.0[0]),
            document_length: self.document_length.0[0],
            max_inflight_requests: self.max_inflight_requests.0[0],
            hit_miss: self.hit_miss_ratio.as_ref().map(|r| r.0[0]),
            lmcache_cpu_gib: self.lmcache_cpu_gib.as_ref().map(|g| g.0[0]),
            tensor_parallel_size: self
                .tensor_parallel_size
                .as_ref()
                .and_then(|r| u32::try_from(r.0[0]).ok()),
            gpu: self.gpu.as_ref().map(|g| g.0[0].clone()),
            model: self.model.0[0].clone(),
            instances: self.trace.cluster.instance_count(),
            router: self.trace.cluster.router_arg(),
            remote_gib: self.trace.cluster.remote_gib(),
            remote_gbps: self.trace.cluster.remote_gbps(),
        }
    }

    fn workload(&self, s: &Setting) -> WorkloadConfig {
        WorkloadConfig {
            num_documents: s.num_documents,
            document_length: s.document_length,
            repeat_count: self.repeat_count,
            repeat_mode: self.repeat_mode,
            hit_miss: s.hit_miss,
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

    /// Whether the points are measured on servers (given by URL, or started).
    fn on_servers(&self) -> bool {
        self.given_servers() || self.start.is_some()
    }

    /// Whether servers were given by URL (one deployment).
    fn given_servers(&self) -> bool {
        self.start.is_none() && !(self.vllm_url.is_empty() && self.lmcache_url.is_empty())
    }
}

/// Entry point of `ldqa sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<ExitStatus> {
    args.validate()?;
    if let Some(path) = &args.trace.trace {
        anyhow::ensure!(
            !args.on_servers() && !args.resume,
            "--trace sweeps in the simulator: leave out the servers (--vllm-url, --lmcache-url, --start) and --resume"
        );
        return trace::run(&args, path);
    }
    args.trace.cluster.validate()?;
    if args.on_servers() && !args.trace.cluster.is_single_engine() {
        anyhow::bail!(
            "--instances and --remote-gib shape the simulated cluster, which servers do not follow: sweep it in the simulator (--sim); to measure a real cluster, give its router as --vllm-url/--lmcache-url, with --vllm-metrics-url/--lmcache-metrics-url once per instance behind it"
        );
    }
    let base = args.base_setting();
    let grid = Grid::of(&points::given_axes(&args), args.num_documents.is_some())?;
    if let Some(axis) = grid.cluster_axes().first().filter(|_| args.on_servers()) {
        anyhow::bail!(
            "{axis} shapes the simulated cluster, which servers do not follow: sweep it in the simulator (--sim)"
        );
    }
    let changing = grid.deployment_axes();
    let varying: Vec<&str> = changing
        .iter()
        .copied()
        .chain(grid.cluster_axes())
        .collect();
    let own_commands = args.vllm_cmd.is_some() || args.lmcache_cmd.is_some();
    if own_commands && !changing.is_empty() {
        anyhow::bail!(
            "{} changes the deployment, but --vllm-cmd/--lmcache-cmd start one deployment: leave them out to have each value's servers started as `recommend` prints them",
            changing.join(" and ")
        );
    }
    if args.given_servers() && !changing.is_empty() {
        anyhow::bail!(
            "{} changes the deployment, but the servers at --vllm-url/--lmcache-url are one deployment: sweep it in the simulator (--sim), or let the sweep start a server per value (--start sim|vllm)",
            changing.join(" and ")
        );
    }
    let tasks = points::tasks(&args, &base, &grid)?;
    let mut report = SweepReport::new(
        describe(&args, &tasks, &varying),
        workload_json(&args, &base, &grid),
        grid.x.0.swept(),
        grid.series.as_ref().map(|s| s.0.swept()),
        Vec::new(),
    );
    let previous = if args.resume {
        resume::previous_points(&args.output_dir, &report)?
    } else {
        Vec::new()
    };
    let (todo, kept) = resume::split(&tasks, previous);
    eprintln!(
        "Sweeping {} point{} along {}{}{}",
        tasks.len(),
        if tasks.len() == 1 { "" } else { "s" },
        grid.x.0.flag(),
        grid.series
            .as_ref()
            .map_or(String::new(), |s| format!(" × {}", s.0.flag())),
        if kept.is_empty() {
            String::new()
        } else {
            format!(" ({} kept from sweep.json)", kept.len())
        }
    );
    let (fresh, interrupted) = if args.on_servers() {
        measure_on_servers(&args, &todo, &report, &kept)?
    } else {
        (points::simulate_all(&args, &todo)?, false)
    };
    report = SweepReport::new(
        report.description,
        report.workload,
        report.axis,
        report.series_axis,
        resume::in_task_order(&tasks, kept, fresh),
    );
    write_outputs(&args, &report)?;
    if interrupted {
        eprintln!(
            "interrupted: {} of {} points done; run again with --resume to do the rest",
            report.points.len(),
            tasks.len()
        );
        return Ok(ExitStatus::Interrupted);
    }
    Ok(ExitStatus::Success)
}

/// What was swept on what, in words.
fn describe(args: &SweepArgs, tasks: &[Task], changing: &[&str]) -> String {
    let first = tasks.first().map_or(String::new(), |t| {
        let cluster = t.cluster.describe();
        let on = cluster.map_or(String::new(), |c| format!(" × {c}"));
        format!("{}{on}", t.engines.description)
    });
    let varying = if changing.is_empty() {
        String::new()
    } else {
        let verb = if changing.len() > 1 { "vary" } else { "varies" };
        format!(" (the first; {} {verb})", changing.join(" and "))
    };
    if let Some(kind) = args.start {
        let servers = match kind {
            started::StartKind::Sim => format!(
                "ldqa serve (the simulator over HTTP, time scale {})",
                args.time_scale()
            ),
            started::StartKind::Vllm => "vllm serve, with and without LMCache".to_string(),
        };
        return format!("Measured on servers started per deployment: {servers}; {first}{varying}");
    }
    if args.on_servers() {
        let arm = |urls: &[String]| match urls {
            [] => "not measured".to_string(),
            urls => urls.join(" + "),
        };
        format!(
            "Measured: vLLM {}, LMCache {}; capacities as described: {first}",
            arm(&args.vllm_url),
            arm(&args.lmcache_url)
        )
    } else {
        format!("Simulated: {first}{varying}")
    }
}

/// The workload's flags: the fixed ones, and the values of the axes not swept.
fn workload_json(args: &SweepArgs, base: &Setting, grid: &Grid) -> serde_json::Value {
    let mut w = json!({
        "output_len": args.output_len,
        "repeat_count": args.repeat_count,
        "repeat_mode": args.repeat_mode.as_str(),
        "api": if args.completions { "completions" } else { "chat" },
    });
    let swept = [Some(grid.x.0), grid.series.as_ref().map(|s| s.0)];
    for axis in axes::Axis::ALL {
        if !swept.contains(&Some(axis)) {
            let key = axis.flag().trim_start_matches('-').replace('-', "_");
            w[key] = serde_json::to_value(base.get(axis)).unwrap_or_default();
        }
    }
    w
}

/// The tasks on the servers given or started, one after the other; `sweep.json` is rewritten after
/// each point (with `kept`), so that a stop loses at most the point running. Returns the
/// points and whether Ctrl-C stopped the sweep.
fn measure_on_servers(
    args: &SweepArgs,
    tasks: &[&Task],
    report: &SweepReport,
    kept: &[SweepPoint],
) -> anyhow::Result<(Vec<SweepPoint>, bool)> {
    let (args, report, kept) = (args.clone(), report.clone(), kept.to_vec());
    let tasks: Vec<Task> = tasks.iter().map(|&t| t.clone()).collect();
    crate::runtime::run(async move {
        let (args, report, kept) = (&args, &report, &kept);
        let tasks: Vec<&Task> = tasks.iter().collect();
        let connect = |urls: &[String], metrics: &[String]| {
            let (urls, metrics) = (urls.to_vec(), metrics.to_vec());
            async move {
                match urls.is_empty() {
                    false => servers::Server::connect(&urls, metrics, args)
                        .await
                        .map(Some),
                    true => Ok(None),
                }
            }
        };
        let cancel = ldqa_loadgen::Cancel::new();
        crate::runtime::on_interrupt(
            cancel.clone(),
            "stopping after this point",
            crate::cmd::ab::server::kill_current_group,
        );
        let save = |fresh: &[SweepPoint]| {
            let mut points = kept.to_vec();
            points.extend_from_slice(fresh);
            let partial = SweepReport::new(
                report.description.clone(),
                report.workload.clone(),
                report.axis.clone(),
                report.series_axis.clone(),
                points,
            );
            write_json(args, &partial).map(|_| ())
        };
        let points = match args.start {
            Some(kind) => started::measure(args, kind, &tasks, &cancel, &save).await?,
            None => {
                let vllm = connect(&args.vllm_url, &args.vllm_metrics_url)
                    .await
                    .context("--vllm-url")?;
                let lmcache = connect(&args.lmcache_url, &args.lmcache_metrics_url)
                    .await
                    .context("--lmcache-url")?;
                servers::measure_points(
                    args,
                    &tasks,
                    vllm.as_ref(),
                    lmcache.as_ref(),
                    &cancel,
                    &save,
                )
                .await?
            }
        };
        Ok((points, cancel.is_cancelled()))
    })
}

fn write_json(args: &SweepArgs, report: &SweepReport) -> anyhow::Result<String> {
    let dir = &args.output_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_text = report.to_json()?;
    let json_path = dir.join("sweep.json");
    ldqa_report::write_atomically(&json_path, json_text.as_bytes())
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(json_text)
}

fn write_outputs(args: &SweepArgs, report: &SweepReport) -> anyhow::Result<()> {
    let json_text = write_json(args, report)?;
    let dir = &args.output_dir;
    report.write_csv(&dir.join("sweep.csv"))?;
    for metric in ldqa_report::sweep::SweepMetric::ALL {
        ldqa_report::sweep::plot_sweep(report, metric, &dir.join(metric.file_name()))?;
    }
    let html_path = dir.join("sweep.html");
    ldqa_report::write_atomically(
        &html_path,
        ldqa_report::sweep::sweep_html(report).as_bytes(),
    )
    .with_context(|| format!("writing {}", html_path.display()))?;
    if args.json {
        crate::stdout::write(&json_text)?;
    } else {
        crate::stdout::write(&report.table())?;
    }
    eprintln!(
        "wrote sweep.json, sweep.csv, sweep.png, sweep-round-time.png and sweep.html (p90 TTFT and round times too) in {}",
        dir.display()
    );
    Ok(())
}
