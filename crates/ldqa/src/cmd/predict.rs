//! `ldqa predict`: `ldqa run`'s workload on the simulated engine, in virtual time.
//!
//! Flow: flags → workload (the same [`Workload::build`] as `ldqa run`, random order and
//! misses included) → for each engine (`--engine vllm|lmcache|both`): a fresh simulated
//! engine runs pre-warmup, warmup and query rounds with at most `--max-inflight-requests`
//! in flight → the same [`Report`] as `ldqa run` (upstream block, summary, CSVs,
//! `--save-result`, plots, gates, exit code). With `--engine both`, each engine's files go
//! to `<output-dir>/vllm/` and `<output-dir>/lmcache/` (and `--save-result FILE` becomes
//! `FILE-stem-vllm.ext` / `FILE-stem-lmcache.ext`), then a side-by-side table follows.
//!
//! Times are virtual: the same flags give the same CSV bytes on any machine.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ldqa_model::{RoundKind, RoundRecord};
use ldqa_report::Environment;
use ldqa_sim::round::{run_round, Frontend, RoundOutcome, RoundRequest};
use ldqa_sim::{seed, Engine, Scenario};
use ldqa_workload::{Workload, WorkloadConfig};

use super::engine_args::{EngineArgs, EngineKind};
use super::run_args::WorkloadArgs;
use crate::exit::ExitStatus;
use crate::output::{Outputs, Report};

/// Arguments of `ldqa predict`: `ldqa run`'s workload flags plus the engine's.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The three rounds of one engine, in virtual time.
struct Predicted {
    pre_warmup: RoundOutcome,
    warmup: RoundOutcome,
    query: RoundOutcome,
}

/// Entry point of `ldqa predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<ExitStatus> {
    let config = args.workload.config()?;
    let sleep_ns = u64::try_from(args.workload.sleep_after_warmup()?.as_nanos())
        .context("--sleep-time-after-warmup is too large")?;
    let resolved = args.engine.resolve()?;
    eprintln!("Simulating: {}", resolved.description);
    if !resolved.calibrated() {
        eprintln!(
            "warning: no efficiencies were fitted on {}: the prediction is uncalibrated",
            args.engine.gpu
        );
    }
    let workload = Workload::build(&config).context("building the documents")?;
    let sim_workload = sim_workload(&args.workload);
    let pre: Vec<RoundRequest> = sim_workload.pre_warmup_round();
    let warmup: Vec<RoundRequest> = map_specs(&sim_workload, &workload.warmup);
    let query: Vec<RoundRequest> = map_specs(&sim_workload, &workload.query);

    let both = resolved.engines.len() > 1;
    let mut codes = Vec::new();
    let mut rows = Vec::new();
    for (kind, scenario) in &resolved.engines {
        let p = simulate(scenario, &pre, &warmup, &query, &args.workload, sleep_ns)
            .with_context(|| format!("simulating {}", kind.as_str()))?;
        let (dir, save) = if both {
            (
                args.workload.output_dir.join(kind.as_str()),
                args.workload
                    .save_result
                    .as_deref()
                    .map(|p| with_engine_suffix(p, kind.as_str())),
            )
        } else {
            (
                args.workload.output_dir.clone(),
                args.workload.save_result.clone(),
            )
        };
        if both {
            println!("\n##### {} #####", kind.as_str());
        }
        let code = report(&args, &config, *kind, scenario, &p, &dir, save.as_deref())?;
        codes.push(code);
        rows.push((*kind, p));
    }
    if both {
        print!("{}", side_by_side(&rows));
    }
    Ok(codes
        .into_iter()
        .find(|c| *c != ExitStatus::Success)
        .unwrap_or(ExitStatus::Success))
}

/// The simulator's view of the workload flags (token counts without a tokenizer).
fn sim_workload(w: &WorkloadArgs) -> seed::Workload {
    seed::Workload {
        num_documents: w.num_documents,
        document_length: w.document_length as u64,
        output_len: w.output_len,
        repeat_count: w.repeat_count,
        // The query order comes from the planned specs; this field is unused here.
        repeat_mode: seed::RepeatMode::Tile,
        max_inflight_requests: w.max_inflight_requests,
        chat: !w.completions,
    }
}

fn map_specs(w: &seed::Workload, specs: &[ldqa_model::RequestSpec]) -> Vec<RoundRequest> {
    specs.iter().map(|s| w.request_from_spec(s)).collect()
}

fn simulate(
    scenario: &Scenario,
    pre: &[RoundRequest],
    warmup: &[RoundRequest],
    query: &[RoundRequest],
    w: &WorkloadArgs,
    sleep_ns: u64,
) -> anyhow::Result<Predicted> {
    let mut engine = Engine::new(scenario.config.clone(), &scenario.efficiencies)?;
    let fe = Frontend::from_efficiencies(&scenario.efficiencies);
    let n = w.max_inflight_requests;
    let pre_warmup = run_round(&mut engine, pre, n, &fe)?;
    let warmup = run_round(&mut engine, warmup, n, &fe)?;
    if sleep_ns > 0 {
        let mut events = Vec::new();
        engine.run_to_idle(&mut events)?;
        let t = engine.now().plus_ns(sleep_ns);
        engine.advance_to(t, &mut events)?;
    }
    let query = run_round(&mut engine, query, n, &fe)?;
    Ok(Predicted {
        pre_warmup,
        warmup,
        query,
    })
}

fn round_record(kind: RoundKind, o: &RoundOutcome) -> RoundRecord {
    RoundRecord {
        kind,
        // Virtual time: the round's start on the simulated clock, so output is reproducible.
        started_unix_ns: u128::from(o.start.0),
        duration_ns: o.duration_ns(),
        interrupted: false,
        requests: o.records.clone(),
        evidence: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &PredictArgs,
    config: &WorkloadConfig,
    kind: EngineKind,
    scenario: &Scenario,
    p: &Predicted,
    dir: &Path,
    save: Option<&Path>,
) -> anyhow::Result<ExitStatus> {
    let outputs = Outputs::prepare(dir, save)?;
    let rounds = vec![
        round_record(RoundKind::Warmup, &p.warmup),
        round_record(RoundKind::Query, &p.query),
    ];
    let mut log = outputs.record_log()?;
    for r in &rounds {
        for rec in &r.requests {
            log.append(&r.kind, rec)
                .context("appending to records.jsonl")?;
        }
    }
    let mut warnings = Vec::new();
    if !scenario.calibrated {
        warnings.push(format!(
            "uncalibrated: efficiencies fitted on {} applied to {}'s peaks",
            ldqa_sim::scenario::REFERENCE_GPU,
            scenario.config.gpu.name
        ));
    }
    let w = &args.workload;
    let config_json = serde_json::json!({
        "command": "predict",
        "engine": kind.as_str(),
        "model": scenario.model_name,
        "gpu": scenario.config.gpu.name,
        "tensor_parallel_size": scenario.config.tp,
        "gpu_kv_tokens": scenario.config.gpu_kv_tokens,
        "lmcache_cpu_gib_per_rank": scenario.cpu_gib_per_rank,
        "cpu_tier_tokens": scenario.cpu_tier_tokens(),
        "max_num_batched_tokens": scenario.config.max_num_batched_tokens,
        "max_num_seqs": scenario.config.max_num_seqs,
        "efficiencies_calibrated": scenario.calibrated,
        "efficiencies": scenario.efficiencies,
        "workload": config,
        "output_len": w.output_len,
        "max_inflight_requests": w.max_inflight_requests,
        "sleep_time_after_warmup_s": w.sleep_time_after_warmup,
        "api": if w.completions { "completions" } else { "chat" },
        "pre_warmup_time_ns": p.pre_warmup.duration_ns(),
        "expected_ttft_gain": w.expected_ttft_gain,
        "expected_latency_gain": w.expected_latency_gain,
    });
    let environment = Environment::detect(None, Some(scenario.model_name.as_str()));
    let report = Report::new(
        config_json,
        environment,
        &rounds,
        warnings,
        w.gates(),
        false,
    );
    report.write_files(&outputs, w.visualize)?;
    // The summary's "prompt tokens by source" line comes from each record's `prefix`.
    report.print(w.json_output);
    report.eprint_failures();
    Ok(report.exit_status())
}

fn with_engine_suffix(path: &Path, engine: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "result".into());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{engine}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{engine}"),
    };
    path.with_file_name(name)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn per_prompt_ns(o: &RoundOutcome) -> f64 {
    o.duration_ns() as f64 / o.records.len().max(1) as f64
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// The side-by-side table of `--engine both`.
fn side_by_side(rows: &[(EngineKind, Predicted)]) -> String {
    let mut out = String::from("\n=== vLLM vs vLLM + LMCache (simulated) ===\n");
    out.push_str(&format!(
        "{:<26}{:>14}{:>14}\n",
        "",
        rows.first().map_or("", |r| r.0.as_str()),
        rows.get(1).map_or("", |r| r.0.as_str())
    ));
    let line = |label: &str, f: &dyn Fn(&Predicted) -> f64, decimals: usize| {
        let mut s = format!("{label:<26}");
        for (_, p) in rows {
            s.push_str(&format!("{:>14.*}", decimals, f(p)));
        }
        s.push('\n');
        s
    };
    out.push_str(&line(
        "warmup mean TTFT (ms)",
        &|p| ms(p.warmup.mean_ttft_ns()),
        1,
    ));
    out.push_str(&line(
        "query mean TTFT (ms)",
        &|p| ms(p.query.mean_ttft_ns()),
        1,
    ));
    out.push_str(&line(
        "warmup round time (ms)",
        &|p| ms(p.warmup.duration_ns()),
        1,
    ));
    out.push_str(&line(
        "query round time (ms)",
        &|p| ms(p.query.duration_ns()),
        1,
    ));
    out.push_str(&line(
        "TTFT gain (warmup/query)",
        &|p| {
            ratio(
                p.warmup.mean_ttft_ns() as f64,
                p.query.mean_ttft_ns() as f64,
            )
        },
        2,
    ));
    out.push_str(&line(
        "round-time gain",
        &|p| ratio(per_prompt_ns(&p.warmup), per_prompt_ns(&p.query)),
        2,
    ));
    if let [(_, v), (_, l)] = rows {
        out.push_str(&format!(
            "LMCache speed-up over vLLM (query): TTFT {:.2}x, round time {:.2}x\n",
            ratio(v.query.mean_ttft_ns() as f64, l.query.mean_ttft_ns() as f64),
            ratio(v.query.duration_ns() as f64, l.query.duration_ns() as f64),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_suffix_keeps_the_extension() {
        assert_eq!(
            with_engine_suffix(Path::new("out/r.json"), "vllm"),
            PathBuf::from("out/r-vllm.json")
        );
        assert_eq!(
            with_engine_suffix(Path::new("r"), "lmcache"),
            PathBuf::from("r-lmcache")
        );
    }

    #[test]
    fn sleep_moves_the_query_round_later() {
        let args = <PredictArgs as clap::FromArgMatches>::from_arg_matches(
            &<PredictArgs as clap::Args>::augment_args(clap::Command::new("x"))
                .try_get_matches_from(["x", "--num-documents", "2", "--repeat-mode", "tile"])
                .unwrap(),
        )
        .unwrap();
        let r = args.engine.resolve().unwrap();
        let w = sim_workload(&args.workload);
        let warm = w.warmup_round();
        let a = simulate(&r.engines[0].1, &[], &warm, &warm, &args.workload, 0).unwrap();
        let b = simulate(
            &r.engines[0].1,
            &[],
            &warm,
            &warm,
            &args.workload,
            5_000_000_000,
        )
        .unwrap();
        assert_eq!(b.query.start.0, a.query.start.0 + 5_000_000_000);
        assert_eq!(a.query.duration_ns(), b.query.duration_ns());
    }
}
