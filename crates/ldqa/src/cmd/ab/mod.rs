//! `ldqa ab`: the seed tutorial end to end. Recommend; start the baseline server; wait until
//! it is ready; run the workload; stop it; the same with LMCache; compare; gate.
//!
//! Servers come from the recommender (`vllm serve …`), from `--baseline-cmd`/`--lmcache-cmd`
//! (shell strings), or, with `--sim`, are `ldqa serve` child processes.

mod args;
mod engine;
mod server;
mod verdict;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ldqa_loadgen::Cancel;
use ldqa_metrics::Gains;
use ldqa_model::Api;
use ldqa_recommend::{plan, PlanInput, VllmKnobs, Workload as RecWorkload};
use ldqa_report::{AbResult, Comparison, EngineOutcome, RunResult, AB_SCHEMA_VERSION};
use ldqa_specs::{catalog, resolve_model, ResolveOptions};
use ldqa_workload::{RepeatMode, TextSource, Workload, WorkloadConfig};

use crate::exit::ExitStatus;
pub use args::AbArgs;
use engine::{result_path, run_engine, EngineJob, Shared};
use server::ServerCommand;

const GIB: f64 = (1u64 << 30) as f64;

/// Everything decided before a server starts.
struct AbPlan {
    workload: WorkloadConfig,
    baseline: ServerCommand,
    lmcache: ServerCommand,
    time_scale: f64,
    working_set_exceeds_gpu_cache: Option<bool>,
    config: serde_json::Value,
}

fn make_plan(args: &AbArgs) -> anyhow::Result<AbPlan> {
    if args.repeat == 0 || args.max_inflight_requests == 0 || args.output_len == 0 {
        bail!("--repeat, --max-inflight-requests and --output-len must be at least 1");
    }
    if !(args.ready_timeout.is_finite() && args.ready_timeout > 0.0) {
        bail!("--ready-timeout must be a positive number of seconds");
    }
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        bail!("--time-scale must be a positive factor");
    }
    crate::cmd::run_args::check_gain_gates(args.expected_ttft_gain, args.expected_latency_gain)?;
    let gpu_name = args
        .gpu
        .clone()
        .or_else(|| args.sim.then(|| "h100-80gb".to_string()));
    // The recommender: GPU KV capacity, LMCache size and document count.
    let rec = match &gpu_name {
        Some(name) => {
            let (model, _) = resolve_model(&args.model, &ResolveOptions::from_env())?;
            let gpu = catalog::gpu(name)?;
            let cpu = args
                .cpu_ram_gib
                .or(args.sim.then_some(1000.0))
                .map(|g| (g * GIB) as u64)
                .or_else(ldqa_recommend::hardware::host_ram_available_bytes);
            let input = PlanInput {
                model,
                gpu,
                num_gpus: None,
                gpus_per_node: 8,
                tp_override: None,
                knobs: VllmKnobs::default(),
                cpu_ram_bytes: cpu,
                memlock_bytes: None,
                workload: RecWorkload {
                    document_length: args.document_length as u64,
                    output_len: u64::from(args.output_len),
                    max_inflight_requests: args.max_inflight_requests as u64,
                },
            };
            Some(plan(&input)?)
        }
        None => None,
    };
    let num_documents = match (args.num_documents, &rec) {
        (Some(n), _) => n,
        (None, Some(p)) => usize::try_from(p.num_documents.max(1)).unwrap_or(1),
        (None, None) => bail!(
            "pass --num-documents, or --gpu so that the recommender can choose it (or use --sim)"
        ),
    };
    let working_set_exceeds_gpu_cache = rec
        .as_ref()
        .map(|p| (num_documents * args.document_length) as u64 > p.kv.tokens);
    let cpu_gib = rec.as_ref().map(|p| p.offload.max_local_cpu_size_gib);
    let (baseline, lmcache) = if args.sim {
        let exe = std::env::current_exe().context("finding the ldqa executable")?;
        let gpu = gpu_name.clone().unwrap_or_default();
        let sim = |engine: &str| {
            let mut v: Vec<std::ffi::OsString> = vec![exe.clone().into()];
            for a in [
                "serve",
                "--model",
                &args.model,
                "--gpu",
                &gpu,
                "--engine",
                engine,
                "--port",
                "0",
            ] {
                v.push(a.into());
            }
            v.push("--time-scale".into());
            v.push(args.time_scale.to_string().into());
            if engine == "lmcache" {
                v.push("--lmcache-cpu-gib".into());
                v.push(cpu_gib.unwrap_or(0).to_string().into());
            }
            ServerCommand::Argv(v)
        };
        (sim("vllm"), sim("lmcache"))
    } else {
        let tp = rec.as_ref().map_or(1, |p| p.tp);
        let serve = format!(
            "PYTHONHASHSEED=0 vllm serve {} --tensor-parallel-size {tp} --load-format dummy --port 8000",
            args.model
        );
        let lm = format!(
            "PYTHONHASHSEED=0 LMCACHE_MAX_LOCAL_CPU_SIZE={} {serve} --kv-transfer-config \
             '{{\"kv_connector\": \"LMCacheConnectorV1\", \"kv_role\": \"kv_both\"}}'",
            cpu_gib.unwrap_or(5)
        );
        (ServerCommand::Shell(serve), ServerCommand::Shell(lm))
    };
    let baseline = args
        .baseline_cmd
        .clone()
        .map_or(baseline, ServerCommand::Shell);
    let lmcache = args
        .lmcache_cmd
        .clone()
        .map_or(lmcache, ServerCommand::Shell);
    let workload = WorkloadConfig {
        num_documents,
        document_length: args.document_length,
        repeat_count: args.repeat_count,
        repeat_mode: RepeatMode::Tile,
        shuffle_seed: 0,
        hit_miss: None,
        text: TextSource::Hi,
        tokenizer: None,
    };
    workload.validate()?;
    let time_scale = if args.sim { args.time_scale } else { 1.0 };
    let config = serde_json::json!({
        "command": "ab",
        "model": args.model,
        "gpu": gpu_name,
        "sim": args.sim,
        "time_scale": time_scale,
        "workload": workload,
        "output_len": args.output_len,
        "max_inflight_requests": args.max_inflight_requests,
        "repeat": args.repeat,
        "lmcache_max_local_cpu_size_gib": cpu_gib,
        "gpu_kv_tokens": rec.as_ref().map(|p| p.kv.tokens),
        "baseline_cmd": baseline.display(),
        "lmcache_cmd": lmcache.display(),
        "expected_ttft_gain": args.expected_ttft_gain,
        "expected_latency_gain": args.expected_latency_gain,
    });
    Ok(AbPlan {
        workload,
        baseline,
        lmcache,
        time_scale,
        working_set_exceeds_gpu_cache,
        config,
    })
}

fn engine_dir(out: &Path, engine: &str, repeat: usize, repeats: usize) -> PathBuf {
    if repeats == 1 {
        out.join(engine)
    } else {
        out.join(engine).join(format!("repeat-{}", repeat + 1))
    }
}

/// Entry point of `ldqa ab`.
pub fn run(args: AbArgs) -> anyhow::Result<ExitStatus> {
    let plan = make_plan(&args)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    crate::runtime::run(execute(args, plan))
}

async fn execute(args: AbArgs, plan: AbPlan) -> anyhow::Result<ExitStatus> {
    let workload = Workload::build(&plan.workload).context("building the documents")?;
    let interrupt = Cancel::new();
    crate::runtime::on_interrupt(
        interrupt.clone(),
        "stopping the server, writing what was measured",
        server::kill_current_group,
    );
    let shared = Shared {
        workload: &workload,
        config: plan.config.clone(),
        output_len: args.output_len,
        max_inflight: args.max_inflight_requests,
        api: if args.completions {
            Api::Completions
        } else {
            Api::Chat
        },
        ready_timeout: Duration::from_secs_f64(args.ready_timeout),
        time_scale: plan.time_scale,
        show_progress: std::io::stderr().is_terminal(),
    };
    let mut outcomes = Vec::new();
    let mut interrupted = false;
    for (engine, command, url) in [
        ("baseline", &plan.baseline, args.baseline_url.as_deref()),
        ("lmcache", &plan.lmcache, args.lmcache_url.as_deref()),
    ] {
        let mut o = EngineOutcome {
            engine: engine.to_string(),
            command: Some(command.display()),
            url: url.map(str::to_string),
            runs: Vec::new(),
            error: None,
        };
        for i in 0..args.repeat {
            if interrupted {
                break;
            }
            let dir = engine_dir(&args.output_dir, engine, i, args.repeat);
            if args.resume {
                if let Ok(r) = ldqa_report::read_json(&result_path(&dir)) {
                    eprintln!("[{engine}] reusing {}", result_path(&dir).display());
                    o.runs.push(r);
                    continue;
                }
            }
            let job = EngineJob {
                engine,
                command,
                url,
                dir,
            };
            let run = run_engine(&shared, &job, &interrupt).await?;
            o.url = run.url.or(o.url);
            interrupted |= run.interrupted;
            if let Some(r) = run.result {
                o.runs.push(r);
            }
            if let Some(e) = run.error {
                eprintln!("error: {e}");
                o.error = Some(e);
                break;
            }
        }
        outcomes.push(o);
    }
    let lmcache = outcomes.pop().expect("invariant: two engines");
    let baseline = outcomes.pop().expect("invariant: two engines");
    finish(&args, &plan, baseline, lmcache, interrupted)
}

fn finish(
    args: &AbArgs,
    plan: &AbPlan,
    baseline: EngineOutcome,
    lmcache: EngineOutcome,
    interrupted: bool,
) -> anyhow::Result<ExitStatus> {
    let both = !baseline.runs.is_empty() && !lmcache.runs.is_empty();
    let comparison = both.then(|| {
        let a: Vec<&RunResult> = baseline.runs.iter().collect();
        let b: Vec<&RunResult> = lmcache.runs.iter().collect();
        Comparison::over_repeats(&a, &b, "baseline", "lmcache")
    });
    let gains = comparison.as_ref().map(|c| Gains {
        ttft_gain: c.row("query mean TTFT").and_then(|r| r.gain),
        latency_gain: c.row("query round time").and_then(|r| r.gain),
    });
    let mut problems: Vec<String> = [&baseline.error, &lmcache.error]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if interrupted {
        problems.push("interrupted (Ctrl-C)".into());
    }
    let verdict = verdict::verdict(
        comparison.as_ref(),
        plan.working_set_exceeds_gpu_cache,
        &problems,
    );
    let ab = AbResult {
        ab_schema_version: AB_SCHEMA_VERSION,
        config: plan.config.clone(),
        baseline,
        lmcache,
        comparison,
        gains,
        working_set_exceeds_gpu_cache: plan.working_set_exceeds_gpu_cache,
        verdict,
    };
    let json = args.output_dir.join("ab_result.json");
    ab.write(&json)
        .with_context(|| format!("writing {}", json.display()))?;
    let html = args.output_dir.join("report.html");
    std::fs::write(&html, ldqa_report::ab_html(&ab))
        .with_context(|| format!("writing {}", html.display()))?;

    let mut out = String::from("=== baseline vs LMCache ===\n");
    if let Some(c) = &ab.comparison {
        out.push_str(&c.to_text());
    }
    if let Some(x) = ab.working_set_exceeds_gpu_cache {
        out.push_str(&format!(
            "working set {} the GPU KV cache\n",
            if x { "exceeds" } else { "fits in" }
        ));
    }
    out.push_str(&format!("verdict: {}\n", ab.verdict));
    out.push_str(&format!(
        "wrote {} and {}\n",
        json.display(),
        html.display()
    ));
    crate::stdout::write(&out)?;
    if interrupted {
        return Ok(ExitStatus::Interrupted);
    }
    if !problems.is_empty() || ab.gains.is_none() {
        return Ok(ExitStatus::Error);
    }
    let failures = ldqa_report::gate_messages(
        ab.gains.as_ref().expect("invariant: checked above"),
        args.expected_ttft_gain,
        args.expected_latency_gain,
    );
    for f in &failures {
        eprintln!("{f}");
    }
    Ok(if failures.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::GateFailed
    })
}
