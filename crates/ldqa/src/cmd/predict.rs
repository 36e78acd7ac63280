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
use ldqa_model::{PromptTemplate, RoundKind, RoundRecord};
use ldqa_report::Environment;
use ldqa_sim::protocol::{run_protocol_on_cluster, SimClient};
use ldqa_sim::Scenario;
use ldqa_workload::{Workload, WorkloadConfig};

use ldqa_sim::EngineKind;

use super::engine_args::{EngineArgs, EngineChoice};
use super::run_args::WorkloadArgs;
use crate::exit::ExitStatus;
use crate::output::{Notice, Outputs, Report};
use crate::recorded::{self, PredictConfig, WorkloadRecord};

/// Arguments of `ldqa predict`: `ldqa run`'s workload flags plus the engine's.
#[derive(Debug, Clone, clap::Args)]
// Negative numbers are values, so that `-5` gets a range error naming its flag.
#[command(allow_negative_numbers = true)]
pub struct PredictArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Engine: vllm (GPU prefix cache only), lmcache (plus the CPU tier), or both side by side.
    #[arg(
        long = "engine",
        value_enum,
        default_value_t = EngineChoice::Vllm,
        value_name = "ENGINE",
        help_heading = "Simulated engine"
    )]
    pub engine_choice: EngineChoice,

    #[command(flatten)]
    pub trace: super::predict_trace::TraceArgs,
}

/// The rounds of one engine, in virtual time (pre-warmup included).
struct Predicted {
    rounds: Vec<RoundRecord>,
}

impl Predicted {
    fn round(&self, kind: RoundKind) -> Option<&RoundRecord> {
        self.rounds.iter().find(|r| r.kind == kind)
    }

    fn duration_ns(&self, kind: RoundKind) -> u64 {
        self.round(kind).map_or(0, |r| r.duration_ns)
    }

    fn mean_ttft_ns(&self, kind: RoundKind) -> f64 {
        self.round(kind)
            .and_then(RoundRecord::mean_ttft_ns)
            .unwrap_or(0.0)
    }

    fn per_prompt_ns(&self, kind: RoundKind) -> f64 {
        let n = self.round(kind).map_or(0, |r| r.requests.len());
        self.duration_ns(kind) as f64 / n.max(1) as f64
    }
}

/// Entry point of `ldqa predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<ExitStatus> {
    if args.trace.trace.is_some() {
        return super::predict_trace::run(&args);
    }
    let config = args.workload.config()?;
    let sleep_ns = u64::try_from(args.workload.sleep_after_warmup()?.as_nanos())
        .context("--sleep-time-after-warmup is too large")?;
    let cluster = &args.trace.cluster;
    cluster.check_single()?;
    let resolved = args.engine.resolve(args.engine_choice.kinds())?;
    eprintln!("Simulating: {}", resolved.description);
    if let Some(c) = cluster.describe() {
        eprintln!("  × {c}");
    }
    if !resolved.calibrated() {
        eprintln!(
            "warning: nothing was measured on {} (no kernel tables, no fitted efficiencies): the prediction is uncalibrated",
            resolved.deployment.gpu.name
        );
    }
    let workload = Workload::build(&config).context("building the documents")?;
    let plan = args.workload.plan(&workload, sleep_ns)?;
    let api = args.workload.api();
    let client = SimClient {
        output_len: args.workload.output_len,
        template: prompt_template(&args.engine.deployment.model, api)?,
    };

    let both = resolved.engines.len() > 1;
    let mut codes = Vec::new();
    let mut rows = Vec::new();
    let mut json_lines = Vec::new();
    for (kind, scenario) in &resolved.engines {
        let (rounds, instances) =
            run_protocol_on_cluster(scenario, &plan, &client, &cluster.spec(scenario, true))
                .with_context(|| format!("simulating {}", kind.as_str()))?;
        let p = Predicted { rounds };
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
            crate::stdout::write(&format!("\n##### {} #####\n", kind.as_str()))?;
        }
        let (code, json) = report(&args, &config, *kind, scenario, &p, &dir, save.as_deref())?;
        let n = cluster.instance_count();
        if n > 1 && !args.workload.json_output {
            let heading = format!(
                "\nPer instance ({n} behind a {} router)\n",
                cluster.policy().name()
            );
            let by_request: Vec<Vec<usize>> = instances
                .iter()
                .map(|round| round.iter().map(|&k| k as usize).collect())
                .collect();
            crate::stdout::write(&super::per_server::split(
                &heading,
                &p.rounds,
                &by_request,
                n,
                "  #",
            ))?;
        }
        if let Some(path) = &save {
            eprintln!("wrote {}", path.display());
        }
        codes.push(code);
        json_lines.push((kind.as_str(), json));
        rows.push((*kind, p));
    }
    if both {
        let mut text = side_by_side(&rows);
        if args.workload.json_output {
            // One line, last on stdout, labelled by engine: `tail -1 | jq` keeps working.
            let fields: Vec<String> = json_lines
                .iter()
                .filter_map(|(k, j)| j.as_ref().map(|j| format!("\"{k}\": {j}")))
                .collect();
            text.push_str(&format!("{{{}}}\n", fields.join(", ")));
        }
        crate::stdout::write(&text)?;
    }
    Ok(codes
        .into_iter()
        .find(|c| *c != ExitStatus::Success)
        .unwrap_or(ExitStatus::Success))
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
) -> anyhow::Result<(ExitStatus, Option<String>)> {
    let outputs = Outputs::prepare(dir, save)?;
    let rounds: Vec<RoundRecord> = p
        .rounds
        .iter()
        .filter(|r| r.kind != RoundKind::PreWarmup)
        .cloned()
        .collect();
    let mut log = outputs.record_log()?;
    for r in &rounds {
        for rec in &r.requests {
            log.append(&r.kind, rec)
                .context("appending to records.jsonl")?;
        }
    }
    let mut warnings = Vec::new();
    if !scenario.calibrated() {
        warnings.push(Notice::Warning(format!(
            "uncalibrated: {}",
            scenario.cost_source.describe()
        )));
    }
    let w = &args.workload;
    let record = WorkloadRecord::new(w, config);
    let pre_warmup_ns = p.duration_ns(RoundKind::PreWarmup);
    let config_json =
        recorded::to_value(&PredictConfig::new(kind, scenario, record, pre_warmup_ns));
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
    // With both engines, the JSON lines go out together after the comparison.
    let json_here = w.json_output && !both_engines(args);
    report.write_stdout(json_here)?;
    report.eprint_failures();
    Ok((report.exit_status(), report.json_line()))
}

/// What the server wraps around each prompt. With `--model` a model folder, as vLLM does
/// with it: for chat its own template, for completions the special tokens its tokenizer
/// adds (BOS), both counted with its tokenizer. Otherwise Llama-3.1's chat template, and
/// nothing around a completions prompt.
pub(crate) fn prompt_template(model: &str, api: ldqa_model::Api) -> anyhow::Result<PromptTemplate> {
    use ldqa_workload::chat_template::{completions_template, own_chat_template};
    let own = own_chat_template(model).context("--model")?;
    match (api, own) {
        (ldqa_model::Api::Chat, Some(own)) => Ok(own.counted),
        (ldqa_model::Api::Completions, Some(own)) => {
            completions_template(&own.tokenizer).context("--model")
        }
        _ => Ok(PromptTemplate::for_api(api)),
    }
}

/// `--engine both`: two reports and a comparison.
fn both_engines(args: &PredictArgs) -> bool {
    args.engine_choice == EngineChoice::Both
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

fn ms(ns: f64) -> f64 {
    ns / 1e6
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
        &|p| ms(p.mean_ttft_ns(RoundKind::Warmup)),
        1,
    ));
    out.push_str(&line(
        "query mean TTFT (ms)",
        &|p| ms(p.mean_ttft_ns(RoundKind::Query)),
        1,
    ));
    out.push_str(&line(
        "warmup round time (ms)",
        &|p| ms(p.duration_ns(RoundKind::Warmup) as f64),
        1,
    ));
    out.push_str(&line(
        "query round time (ms)",
        &|p| ms(p.duration_ns(RoundKind::Query) as f64),
        1,
    ));
    out.push_str(&line(
        "TTFT gain (warmup/query)",
        &|p| {
            ratio(
                p.mean_ttft_ns(RoundKind::Warmup),
                p.mean_ttft_ns(RoundKind::Query),
            )
        },
        2,
    ));
    out.push_str(&line(
        "round-time gain",
        &|p| {
            ratio(
                p.per_prompt_ns(RoundKind::Warmup),
                p.per_prompt_ns(RoundKind::Query),
            )
        },
        2,
    ));
    if let [(_, v), (_, l)] = rows {
        out.push_str(&format!(
            "LMCache speed-up over vLLM (query): TTFT {:.2}×, round time {:.2}×\n",
            ratio(
                v.mean_ttft_ns(RoundKind::Query),
                l.mean_ttft_ns(RoundKind::Query)
            ),
            ratio(
                v.duration_ns(RoundKind::Query) as f64,
                l.duration_ns(RoundKind::Query) as f64
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_sim::protocol::run_protocol;

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
        let r = args.engine.resolve(args.engine_choice.kinds()).unwrap();
        let workload = Workload::build(&args.workload.config().unwrap()).unwrap();
        let client = SimClient {
            output_len: 10,
            template: PromptTemplate::LLAMA3_CHAT,
        };
        let predict = |pause_ns| Predicted {
            rounds: run_protocol(&r.engines[0].1, &workload.plan(2, pause_ns), &client).unwrap(),
        };
        let (a, b) = (predict(0), predict(5_000_000_000));
        let start = |p: &Predicted| p.round(RoundKind::Query).unwrap().started_unix_ns;
        assert_eq!(start(&b), start(&a) + 5_000_000_000);
        assert_eq!(
            a.duration_ns(RoundKind::Query),
            b.duration_ns(RoundKind::Query)
        );
    }
}
