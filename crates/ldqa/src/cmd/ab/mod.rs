//! `ldqa ab`: the seed tutorial end to end. Recommend; start the baseline server; wait until
//! it is ready; run the workload; stop it; the same with LMCache; compare; gate.
//!
//! Servers come from the recommender (`vllm serve …`), from `--baseline-cmd`/`--lmcache-cmd`
//! (shell strings), or, with `--sim`, are `ldqa serve` child processes.
//!
//! Layout: [`args`] the flags; [`plan`] what will run, decided before any server starts;
//! [`resume`] which stored results `--resume` may reuse; [`engine`] one engine's run;
//! [`server`] the server process; [`verdict`] the comparison in words. This file runs the
//! engines one after the other and writes `ab_result.json`.

mod args;
mod engine;
pub(crate) mod plan;
mod resume;
pub(crate) mod server;
mod verdict;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ldqa_loadgen::Cancel;
use ldqa_metrics::Gains;
use ldqa_model::Api;
use ldqa_report::{AbResult, Comparison, EngineOutcome, RunResult, AB_SCHEMA_VERSION};
use ldqa_workload::Workload;

use crate::exit::ExitStatus;
pub use args::AbArgs;
use engine::{run_engine, EngineJob, RunSettings};
use plan::{make_plan, AbPlan};
use resume::StoredRuns;
use server::ServerCommand;

/// The folder of one engine's run.
fn engine_dir(out: &Path, engine: &str, trial: usize, trials: usize) -> PathBuf {
    if trials == 1 {
        out.join(engine)
    } else {
        out.join(engine).join(format!("trial-{}", trial + 1))
    }
}

/// Entry point of `ldqa ab`.
pub fn run(args: AbArgs) -> anyhow::Result<ExitStatus> {
    let plan = make_plan(&args)?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let stored = if args.resume {
        StoredRuns::load(&args, &plan)?
    } else {
        StoredRuns::default()
    };
    crate::runtime::run(execute(args, plan, stored))
}

/// One engine's runs, and what stopped them short, in one line (for the verdict).
struct EngineRuns {
    outcome: EngineOutcome,
    problem: Option<String>,
}

async fn execute(args: AbArgs, plan: AbPlan, mut stored: StoredRuns) -> anyhow::Result<ExitStatus> {
    let workload = Workload::build(&plan.workload).context("building the documents")?;
    let interrupt = Cancel::new();
    crate::runtime::on_interrupt(
        interrupt.clone(),
        "stopping the server, writing what was measured",
        server::kill_current_group,
    );
    let settings = RunSettings {
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
        progress: crate::progress::ProgressMode::for_stderr(false),
    };
    let mut interrupted = false;
    let mut engines = Vec::new();
    for (engine, command, url) in [
        ("baseline", &plan.baseline, args.baseline_url.as_deref()),
        ("lmcache", &plan.lmcache, args.lmcache_url.as_deref()),
    ] {
        let job = (engine, command, url);
        let runs = run_repeats(
            &args,
            &settings,
            job,
            &mut stored,
            &interrupt,
            &mut interrupted,
        );
        engines.push(runs.await?);
    }
    let lmcache = engines.pop().expect("invariant: two engines");
    let baseline = engines.pop().expect("invariant: two engines");
    finish(&args, &plan, baseline, lmcache, interrupted)
}

/// `--trials` runs of one engine, each reused from `--resume`'s stored results or measured;
/// stops at the first failure or at Ctrl-C.
async fn run_repeats(
    args: &AbArgs,
    settings: &RunSettings<'_>,
    (engine, command, url): (&str, &ServerCommand, Option<&str>),
    stored: &mut StoredRuns,
    interrupt: &Cancel,
    interrupted: &mut bool,
) -> anyhow::Result<EngineRuns> {
    let mut outcome = EngineOutcome {
        engine: engine.to_string(),
        command: Some(command.display()),
        url: url.map(str::to_string),
        runs: Vec::new(),
        error: None,
    };
    let mut problem = None;
    for i in 0..args.trials {
        if *interrupted {
            break;
        }
        let dir = engine_dir(&args.output_dir, engine, i, args.trials);
        if let Some(result) = stored.take(&dir) {
            outcome.runs.push(result);
            continue;
        }
        let job = EngineJob {
            engine,
            command,
            url,
            dir,
        };
        let run = run_engine(settings, &job, interrupt).await?;
        outcome.url = run.url.or(outcome.url);
        *interrupted |= run.interrupted;
        outcome.runs.extend(run.result);
        if let Some(e) = run.error {
            eprintln!("error: {e}");
            outcome.error = Some(e.to_string());
            problem = Some(e.summary);
            break;
        }
    }
    Ok(EngineRuns { outcome, problem })
}

/// The comparison of what both engines measured, with its verdict.
fn compare(
    plan: &AbPlan,
    baseline: EngineRuns,
    lmcache: EngineRuns,
    interrupted: bool,
) -> AbResult {
    let both = !baseline.outcome.runs.is_empty() && !lmcache.outcome.runs.is_empty();
    let comparison = both.then(|| {
        let a: Vec<&RunResult> = baseline.outcome.runs.iter().collect();
        let b: Vec<&RunResult> = lmcache.outcome.runs.iter().collect();
        Comparison::over_repeats(&a, &b, "baseline", "lmcache")
    });
    let gains = comparison.as_ref().map(|c| Gains {
        ttft_gain: c.row("query mean TTFT").and_then(|r| r.gain),
        latency_gain: c.row("query round time").and_then(|r| r.gain),
    });
    let mut problems: Vec<String> = [baseline.problem, lmcache.problem]
        .into_iter()
        .flatten()
        .collect();
    if interrupted {
        problems.push("interrupted (Ctrl-C)".into());
    }
    let verdict = verdict::verdict(
        comparison.as_ref(),
        plan.working_set_exceeds_gpu_cache,
        &problems,
    );
    AbResult {
        ab_schema_version: AB_SCHEMA_VERSION,
        config: crate::recorded::to_value(&plan.config),
        baseline: baseline.outcome,
        lmcache: lmcache.outcome,
        comparison,
        gains,
        working_set_exceeds_gpu_cache: plan.working_set_exceeds_gpu_cache,
        verdict,
    }
}

/// Writes `ab_result.json` and `report.html`, prints the comparison and the verdict, and
/// decides the exit status.
fn finish(
    args: &AbArgs,
    plan: &AbPlan,
    baseline: EngineRuns,
    lmcache: EngineRuns,
    interrupted: bool,
) -> anyhow::Result<ExitStatus> {
    let complete = baseline.problem.is_none() && lmcache.problem.is_none();
    let ab = compare(plan, baseline, lmcache, interrupted);
    let json = args.output_dir.join("ab_result.json");
    ab.write(&json)
        .with_context(|| format!("writing {}", json.display()))?;
    let html = args.output_dir.join("report.html");
    ldqa_report::write_atomically(&html, ldqa_report::ab_html(&ab).as_bytes())
        .with_context(|| format!("writing {}", html.display()))?;
    let mut out = String::from("=== baseline vs LMCache ===\n");
    if let Some(c) = &ab.comparison {
        out.push_str(&c.to_text());
    }
    if let Some(x) = ab.working_set_exceeds_gpu_cache {
        let verb = if x { "exceeds" } else { "fits in" };
        out.push_str(&format!("working set {verb} the GPU KV cache\n"));
    }
    out.push_str(&format!("verdict: {}\n", ab.verdict));
    out.push_str(&format!(
        "wrote {} and {}\n",
        json.display(),
        html.display()
    ));
    crate::stdout::write(&out)?;
    let gate_failures = ab.gains.as_ref().map_or_else(Vec::new, |gains| {
        ldqa_report::gate_messages(gains, args.expected_ttft_gain, args.expected_latency_gain)
    });
    let status = exit_status(interrupted, complete && ab.gains.is_some(), &gate_failures);
    if status == ExitStatus::GateFailed {
        for f in &gate_failures {
            eprintln!("{f}");
        }
    }
    Ok(status)
}

/// 130 interrupted; 2 when an engine failed or nothing could be compared; 1 when a gate
/// failed; else 0.
fn exit_status(interrupted: bool, compared: bool, gate_failures: &[String]) -> ExitStatus {
    if interrupted {
        ExitStatus::Interrupted
    } else if !compared {
        ExitStatus::Error
    } else if !gate_failures.is_empty() {
        ExitStatus::GateFailed
    } else {
        ExitStatus::Success
    }
}
