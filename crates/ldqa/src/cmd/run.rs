//! `ldqa run`: the Long Doc QA benchmark against an OpenAI-compatible server.
//!
//! Flow: flags → [`RunPlan`] (validated, nothing sent) → reachability check and model
//! choice → workload (documents, tokenizer work) → protocol (pre-warmup, warmup, query)
//! → summaries → stdout, files, gates → exit status.

use std::fs::File;
use std::time::Duration;

use anyhow::{bail, Context};
use ldqa_loadgen::{run_protocol, Cancel, Client, ClientConfig, Endpoint, ProtocolOptions};
use ldqa_model::RoundRecord;
use ldqa_report::Environment;
use ldqa_workload::{Workload, WorkloadConfig};

use super::per_server;
use super::run_args::seconds;
pub use super::run_args::RunArgs;
use crate::exit::ExitStatus;
use crate::observe::{ResponseSink, RunObserver};
use crate::output::{Notice, Outputs, Report};
use crate::progress::ProgressMode;
use crate::recorded::{self, RunConfig, WorkloadRecord};

/// Everything `ldqa run` will do, checked before anything is sent.
#[derive(Debug)]
pub struct RunPlan {
    pub args: RunArgs,
    pub workload: WorkloadConfig,
    /// The servers, in `--base-url` order (one without it: `--host`/`--port`).
    pub endpoints: Vec<Endpoint>,
    /// Where each server's metrics are read, in the same order (none: not read).
    pub metrics_urls: Vec<String>,
    pub request_timeout: Option<Duration>,
    /// `None`: `--stall-timeout 0`, wait forever.
    pub stall_timeout: Option<Duration>,
    pub sleep_after_warmup: Duration,
}

impl RunPlan {
    /// Validates every flag; the error names the flag.
    pub fn from_args(args: RunArgs) -> anyhow::Result<Self> {
        let workload = args.workload.config()?;
        let sleep_after_warmup = args.workload.sleep_after_warmup()?;
        let request_timeout = args
            .request_timeout
            .map(|s| seconds("--request-timeout", s, false))
            .transpose()?;
        let stall_timeout =
            Some(seconds("--stall-timeout", args.stall_timeout, true)?).filter(|d| !d.is_zero());
        let api_key = args.api_key.clone().filter(|k| !k.is_empty());
        let endpoints = if args.base_url.is_empty() {
            vec![
                Endpoint::from_host_port(args.host.as_deref(), args.port, api_key)
                    .context("--host/--port")?,
            ]
        } else {
            args.base_url
                .iter()
                .map(|url| {
                    Endpoint::new(url, api_key.clone()).with_context(|| format!("--base-url {url}"))
                })
                .collect::<anyhow::Result<_>>()?
        };
        let metrics_urls = metrics_urls(&args, &endpoints)?;
        if args.model.trim().is_empty() {
            bail!("--model must name a model, or be `auto`");
        }
        Ok(Self {
            args,
            workload,
            endpoints,
            metrics_urls,
            request_timeout,
            stall_timeout,
            sleep_after_warmup,
        })
    }
}

/// Where each server's metrics are read: none with `--no-metrics`, `/metrics` beside each
/// API by default, else `--metrics-url` once per server.
fn metrics_urls(args: &RunArgs, endpoints: &[Endpoint]) -> anyhow::Result<Vec<String>> {
    if args.no_metrics {
        return Ok(Vec::new());
    }
    if args.metrics_url.is_empty() {
        return Ok(endpoints
            .iter()
            .map(Endpoint::default_metrics_url)
            .collect());
    }
    // One API (a router) and several endpoints: the instances behind it.
    let behind_a_router = endpoints.len() == 1;
    if args.metrics_url.len() != endpoints.len() && !behind_a_router {
        bail!(
            "--metrics-url is given for {} of {} servers: give it once per --base-url, in the same order (or not at all, for /metrics beside each)",
            args.metrics_url.len(),
            endpoints.len()
        );
    }
    args.metrics_url
        .iter()
        .map(|url| {
            Ok(Endpoint::new(url, None)
                .with_context(|| format!("--metrics-url {url}"))?
                .base()
                .to_owned())
        })
        .collect()
}

/// Entry point of `ldqa run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitStatus> {
    let plan = RunPlan::from_args(args)?;
    crate::runtime::run(execute(plan))
}

async fn execute(plan: RunPlan) -> anyhow::Result<ExitStatus> {
    let args = &plan.args;
    let Connected {
        clients,
        mut warnings,
        time_scale,
    } = connect(&plan).await?;
    let outputs = Outputs::prepare(
        &args.workload.output_dir,
        args.workload.save_result.as_deref(),
    )?;
    let workload = Workload::build(&plan.workload).context("building the documents")?;
    let observer = observer(&plan, &outputs, &workload, time_scale)?;

    let cancel = Cancel::new();
    crate::runtime::on_interrupt(cancel.clone(), "stopping, writing what was measured", || {});
    let options = ProtocolOptions {
        metrics_urls: plan.metrics_urls.clone(),
    };
    let pause_ns = u64::try_from(plan.sleep_after_warmup.as_nanos()).unwrap_or(u64::MAX);
    // The plan's times are the server's: a time-scaled `ldqa serve` gets them in wall time.
    let request_plan = args
        .workload
        .plan(&workload, pause_ns)?
        .in_wall_time(time_scale);
    let outcome = run_protocol(
        &clients,
        &request_plan,
        &workload,
        &options,
        &observer,
        &cancel,
    )
    .await;
    let responses_error = observer.finish();
    warnings.extend(outcome.metrics_warning.as_ref().map(|w| {
        // What to do about it depends on whether the URL was ours or the user's.
        let hint = if !args.metrics_url.is_empty() {
            "check --metrics-url, or pass --no-metrics"
        } else {
            "point --metrics-url at the server's Prometheus endpoint, or pass --no-metrics"
        };
        Notice::Warning(format!("{w}; {hint}"))
    }));
    if let Some(e) = observer
        .log_error
        .lock()
        .expect("invariant: lock not poisoned")
        .take()
    {
        warnings.push(Notice::Warning(format!(
            "could not append to records.jsonl: {e}"
        )));
    }

    let mut rounds: Vec<RoundRecord> = outcome.reported().cloned().collect();
    for r in &mut rounds {
        r.scale_time(time_scale);
    }
    let model = clients[0].config().model.as_str();
    let config = recorded::to_value(&run_config(&plan, model));
    let environment = Environment::detect(Some(plan.endpoints[0].base()), Some(model));
    let report = Report::new(
        config,
        environment,
        &rounds,
        warnings,
        args.workload.gates(),
        outcome.interrupted(),
    );
    report.write_files(&outputs, args.workload.visualize)?;
    report.write_stdout(args.workload.json_output)?;
    if !args.workload.json_output {
        if clients.len() > 1 {
            crate::stdout::write(&per_server::section(
                &rounds,
                &plan.metrics_urls,
                clients.len(),
            ))?;
        } else if plan.metrics_urls.len() > 1 {
            crate::stdout::write(&per_server::behind_a_router(&rounds, &plan.metrics_urls))?;
        }
    }
    report.eprint_failures();
    if let (Some(e), Some(path)) = (responses_error, &args.output) {
        // `--output -` read by `| head`: the reader has what it wanted (exit 0, quietly).
        if e.kind() == std::io::ErrorKind::BrokenPipe && path.as_os_str() == "-" {
            return Err(anyhow::Error::new(crate::stdout::StdoutClosed));
        }
        // Measured and saved; only the responses were lost: an error all the same.
        bail!(
            "writing --output {}: {e} (the results above and their files are complete)",
            path.display()
        );
    }
    Ok(report.exit_status())
}

/// A 404 on `…/models` from a base URL without `/v1` is most likely that.
fn with_v1_hint(e: ldqa_loadgen::LoadgenError, endpoint: &Endpoint) -> anyhow::Error {
    let base = endpoint.base();
    let missing_v1 = matches!(e, ldqa_loadgen::LoadgenError::BadStatus { status: 404, .. })
        && !base.ends_with("/v1");
    if missing_v1 {
        anyhow::anyhow!("{e}; did you mean --base-url {base}/v1?")
    } else {
        anyhow::Error::new(e)
    }
}

/// The server, once it answered `/v1/models`.
struct Connected {
    /// One per server, in `--base-url` order.
    clients: Vec<Client>,
    warnings: Vec<Notice>,
    /// Simulated seconds per wall second of an `ldqa serve --time-scale F` (1 otherwise):
    /// every time reported is multiplied by it, so results are in the server's time.
    time_scale: f64,
}

/// The clients, once every server answered `/v1/models` (an unreachable server is an
/// error before any work) and the model is chosen from the first; a `--model` a server
/// does not list is an error, one it cannot list a warning.
async fn connect(plan: &RunPlan) -> anyhow::Result<Connected> {
    let args = &plan.args;
    let mut config = ClientConfig::new(
        plan.endpoints[0].clone(),
        args.model.clone(),
        args.workload.api(),
        args.workload.output_len,
    );
    config.eos_token_id = args.workload.eos_token_id;
    config.request_timeout = plan.request_timeout;
    config.stall_timeout = plan.stall_timeout;
    let mut warnings = Vec::new();
    let mut time_scale = None;
    for endpoint in &plan.endpoints {
        eprintln!("Using base URL: {}", endpoint.base());
        let config = &mut config;
        config.endpoint = endpoint.clone();
        let scale = check_server(config, &mut warnings).await?;
        time_scale = time_scale.or(scale);
    }
    let time_scale = time_scale.unwrap_or(1.0);
    if time_scale != 1.0 {
        eprintln!(
            "The server is an `ldqa serve --time-scale {time_scale}`: it runs {time_scale}× faster than the wall clock, so every time reported is simulated (wall time × {time_scale})"
        );
        warnings.push(Notice::Note(format!(
            "times are the server's simulated seconds (it ran {time_scale}× faster than the wall clock)"
        )));
    }
    let clients = plan
        .endpoints
        .iter()
        .map(|endpoint| {
            Client::new(ClientConfig {
                endpoint: endpoint.clone(),
                ..config.clone()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Connected {
        clients,
        warnings,
        time_scale,
    })
}

/// Asks the server at `config.endpoint` for its models: `auto` becomes the first it lists;
/// a model it lists but not this one is an error. Returns the time scale it announces.
async fn check_server(
    config: &mut ClientConfig,
    warnings: &mut Vec<Notice>,
) -> anyhow::Result<Option<f64>> {
    let listed = Client::new(config.clone())?.server_models().await;
    let endpoint = &config.endpoint;
    Ok(match (listed, config.model.as_str()) {
        (Ok(models), "auto") => {
            let Some(first) = models.ids.first() else {
                bail!(
                    "{} lists no models: pass --model NAME",
                    endpoint.url("models")
                );
            };
            eprintln!("Auto-selected model: {first}");
            config.model = first.clone();
            models.time_scale
        }
        // A server that lists models but not this one would answer every request 404.
        (Ok(models), model) if !models.ids.is_empty() && !models.ids.iter().any(|m| m == model) => {
            bail!(
                "--model {model} is not served; {} lists {}",
                endpoint.url("models"),
                models.ids.join(", ")
            )
        }
        (Ok(models), _) => models.time_scale,
        // With a model named, the list is only a check: say why it was skipped and go on.
        (Err(e @ ldqa_loadgen::LoadgenError::BadStatus { .. }), model) if model != "auto" => {
            warnings.push(Notice::Warning(format!(
                "could not check --model against {}'s list: {e}",
                endpoint.base()
            )));
            None
        }
        (Err(e), _) => return Err(with_v1_hint(e, endpoint)),
    })
}

/// What watches the rounds: the record log, `--output`'s responses, and progress (a bar on a
/// terminal, lines elsewhere or when responses go to stdout, which a bar would garble).
fn observer(
    plan: &RunPlan,
    outputs: &Outputs,
    workload: &Workload,
    time_scale: f64,
) -> anyhow::Result<RunObserver> {
    let output = plan.args.output.as_deref();
    let responses = match output {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(ResponseSink::stdout()),
        Some(p) => {
            Some(ResponseSink::file(File::create(p).with_context(|| {
                format!("creating --output {}", p.display())
            })?))
        }
    };
    let progress = ProgressMode::for_stderr(output == Some(std::path::Path::new("-")));
    let round_lens = [
        workload.pre_warmup.len(),
        workload.warmup.len(),
        workload.query.len(),
    ];
    Ok(RunObserver::new(
        progress,
        Some(outputs.record_log()?),
        responses,
        round_lens,
        time_scale,
    ))
}

/// The resolved configuration, as recorded in `--save-result`.
fn run_config(plan: &RunPlan, model: &str) -> RunConfig {
    let a = &plan.args;
    RunConfig {
        command: "run",
        model: model.to_string(),
        base_url: plan.endpoints[0].base().to_string(),
        base_urls: plan
            .endpoints
            .iter()
            .map(|e| e.base().to_string())
            .collect(),
        workload: WorkloadRecord::new(&a.workload, &plan.workload),
        eos_token_id: a.workload.eos_token_id,
        request_timeout_s: a.request_timeout,
        stall_timeout_s: (a.stall_timeout > 0.0).then_some(a.stall_timeout),
        metrics_url: plan.metrics_urls.first().cloned(),
        metrics_urls: plan.metrics_urls.clone(),
    }
}
