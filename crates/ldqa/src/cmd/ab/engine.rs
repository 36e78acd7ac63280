//! One engine, one repeat: start its server and wait until it is ready, pick the model it
//! serves, run the workload while watching the server, stop it, and write its files (CSV,
//! records, result) into its own folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ldqa_loadgen::{
    run_protocol, Cancel, Client, ClientConfig, Endpoint, ProtocolOptions, ProtocolOutcome,
};
use ldqa_model::{Api, RoundKind, RoundRecord};
use ldqa_report::{Environment, RunResult};
use ldqa_workload::Workload;

use super::server::{Server, ServerCommand, ServerProblem};
use crate::observe::RunObserver;
use crate::output::{Gates, Notice, Outputs, Report};
use crate::recorded::{self, AbConfig, EngineRunConfig};

/// How long a server has to exit after SIGTERM before its group gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// After requests failed, how long to wait for the server's exit to show: requests fail
/// fast once a server is gone, so it may have died between two looks of the watcher.
const DEATH_GRACE: Duration = Duration::from_millis(500);

/// What every engine run of one `ab` invocation shares.
pub struct RunSettings<'a> {
    pub workload: &'a Workload,
    /// The plan's recorded configuration (see [`engine_config`]).
    pub config: AbConfig,
    pub output_len: u32,
    pub max_inflight: usize,
    pub api: Api,
    pub ready_timeout: Duration,
    /// Simulated seconds per wall second (1 for real servers).
    pub time_scale: f64,
    pub progress: crate::progress::ProgressMode,
}

/// One engine's run to do.
pub struct EngineJob<'a> {
    /// `baseline` or `lmcache`.
    pub engine: &'a str,
    pub command: &'a ServerCommand,
    pub url: Option<&'a str>,
    pub dir: PathBuf,
}

/// What went wrong with an engine: one line for the verdict, the server's log for the reader.
#[derive(Debug)]
pub struct EngineError {
    pub summary: String,
    pub log_tail: Option<String>,
}

impl EngineError {
    fn new(summary: String) -> Self {
        Self {
            summary,
            log_tail: None,
        }
    }

    /// `what` went wrong because of `problem`.
    fn server(what: String, problem: &ServerProblem) -> Self {
        Self {
            summary: format!("{what}: {}", problem.summary()),
            log_tail: problem.log_tail().map(str::to_string),
        }
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)?;
        match &self.log_tail {
            Some(tail) => write!(f, "; last lines of its log:\n{tail}"),
            None => Ok(()),
        }
    }
}

/// How it went.
pub struct EngineRun {
    /// The result, when every round finished and the server stayed up.
    pub result: Option<RunResult>,
    /// The server's URL, once known.
    pub url: Option<String>,
    pub error: Option<EngineError>,
    /// Ctrl-C.
    pub interrupted: bool,
}

impl EngineRun {
    fn failed(error: EngineError, url: Option<String>) -> Self {
        Self {
            result: None,
            url,
            error: Some(error),
            interrupted: false,
        }
    }
}

/// The file of a finished run; its presence is what `--resume` trusts.
pub fn result_path(dir: &Path) -> PathBuf {
    dir.join("result.json")
}

/// The configuration recorded in one engine's result: the plan's, plus which engine and
/// how its server was started. `--resume` compares a stored result against this.
pub fn engine_config(
    plan_config: &AbConfig,
    engine: &str,
    command: &ServerCommand,
) -> EngineRunConfig {
    EngineRunConfig {
        ab: plan_config.clone(),
        engine: engine.to_string(),
        server_command: command.display(),
        base_url: None,
        server_gpu_kv_tokens: None,
    }
}

/// Runs `job`. Problems with the server are returned in [`EngineRun::error`]; `Err` is kept
/// for local I/O failures (the output folder, stdout).
pub async fn run_engine(
    settings: &RunSettings<'_>,
    job: &EngineJob<'_>,
    interrupt: &Cancel,
) -> anyhow::Result<EngineRun> {
    let started = Instant::now();
    let (mut server, base) = match start_and_wait(settings, job, interrupt).await? {
        Ok(ready) => ready,
        Err(run) => return Ok(run),
    };
    let mut config = ClientConfig::new(
        Endpoint::new(&base, None).context("server URL")?,
        "auto".into(),
        settings.api,
        settings.output_len,
    );
    config.model = match pick_model(&mut server, job, &config, started, settings).await? {
        Ok(model) => model,
        Err(error) => {
            server.stop(STOP_GRACE).await;
            return Ok(EngineRun::failed(error, Some(base)));
        }
    };
    eprintln!(
        "[{}] ready after {:.1}s at {base}, model {}",
        job.engine,
        started.elapsed().as_secs_f64(),
        config.model
    );
    let client = Client::new(config)?;
    let watcher = Watcher::start(server, interrupt);
    let measured = measure(settings, job, &client, watcher.run_cancel()).await;
    let (mut server, died) = watcher.finish().await;
    let outcome = measured?;
    let died = match died {
        Some(problem) => Some(problem),
        None => death_after_failures(&mut server, &outcome).await,
    };
    let announced_kv = server.announced_gpu_kv_tokens();
    server.stop(STOP_GRACE).await;
    let interrupted = died.is_none() && interrupt.is_cancelled();
    let complete = died.is_none() && !interrupted && outcome.round(RoundKind::Query).is_some();
    let result = write_results(settings, job, &client, &outcome, complete, announced_kv)?;
    if let Some(problem) = died {
        let done: usize = result
            .rounds
            .iter()
            .map(|r| r.summary.successful_count)
            .sum();
        let what = format!(
            "{} server died during the run after {done} successful requests",
            job.engine
        );
        return Ok(EngineRun::failed(
            EngineError::server(what, &problem),
            Some(base),
        ));
    }
    Ok(EngineRun {
        result: complete.then_some(result),
        url: Some(base),
        error: None,
        interrupted,
    })
}

/// Starts the server and waits for `/health`: the server and its API root, or the run's
/// end (it failed to start, or Ctrl-C).
async fn start_and_wait(
    settings: &RunSettings<'_>,
    job: &EngineJob<'_>,
    interrupt: &Cancel,
) -> anyhow::Result<Result<(Server, String), EngineRun>> {
    std::fs::create_dir_all(&job.dir).with_context(|| format!("creating {}", job.dir.display()))?;
    let log = job.dir.join("server.log");
    eprintln!(
        "[{}] starting: {} (log: {})",
        job.engine,
        job.command.display(),
        log.display()
    );
    let mut server = Server::start(job.command, &log)
        .with_context(|| format!("starting the {} server", job.engine))?;
    let cancelled = || interrupt.is_cancelled();
    let ready = server
        .wait_ready(
            job.url,
            job.command.fallback_url(),
            settings.ready_timeout,
            &cancelled,
        )
        .await;
    Ok(match ready {
        Ok(base) => Ok((server, base)),
        Err(problem) => {
            server.stop(STOP_GRACE).await;
            Err(match problem {
                ServerProblem::Interrupted => EngineRun {
                    result: None,
                    url: None,
                    error: None,
                    interrupted: true,
                },
                p => EngineRun::failed(
                    EngineError::server(format!("{} server", job.engine), &p),
                    None,
                ),
            })
        }
    })
}

/// The first model `/v1/models` lists. `/health` is up by now, but vLLM lists its model only
/// once loaded, so ask until it does, the server exits, or the ready timeout passes.
async fn pick_model(
    server: &mut Server,
    job: &EngineJob<'_>,
    config: &ClientConfig,
    started: Instant,
    settings: &RunSettings<'_>,
) -> anyhow::Result<Result<String, EngineError>> {
    let probe = Client::new(config.clone())?;
    let engine = job.engine;
    loop {
        let listed = probe.list_models().await;
        if let Ok(Some(model)) = listed.as_ref().map(|m| m.first()) {
            return Ok(Ok(model.clone()));
        }
        if started.elapsed() >= settings.ready_timeout {
            return Ok(Err(EngineError::new(match listed {
                Ok(_) => format!("{engine} server lists no model"),
                Err(e) => format!("{engine} server: /v1/models: {e}"),
            })));
        }
        if let Some(status) = server.exited() {
            let problem = server.exit_problem(status);
            return Ok(Err(EngineError::server(
                format!("{engine} server"),
                &problem,
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Watches the server while the workload runs, so that the run stops when it dies or on
/// Ctrl-C. It owns the server meanwhile, and gives it back in [`Watcher::finish`].
struct Watcher {
    task: tokio::task::JoinHandle<(Server, Option<ServerProblem>)>,
    /// Cancelled by the watcher to stop the run.
    run_cancel: Cancel,
    /// Cancelled by [`Watcher::finish`] to stop watching.
    done: Cancel,
}

impl Watcher {
    fn start(mut server: Server, interrupt: &Cancel) -> Self {
        let (run_cancel, done, interrupt) = (Cancel::new(), Cancel::new(), interrupt.clone());
        let task = tokio::spawn({
            let (run_cancel, done) = (run_cancel.clone(), done.clone());
            async move {
                loop {
                    if let Some(status) = server.exited() {
                        run_cancel.cancel();
                        let problem = server.exit_problem(status);
                        return (server, Some(problem));
                    }
                    tokio::select! {
                        () = done.cancelled() => return (server, None),
                        () = interrupt.cancelled() => {
                            run_cancel.cancel();
                            return (server, None);
                        }
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        });
        Self {
            task,
            run_cancel,
            done,
        }
    }

    fn run_cancel(&self) -> &Cancel {
        &self.run_cancel
    }

    /// Stops watching: the server, and how it died if the watcher saw it die.
    async fn finish(self) -> (Server, Option<ServerProblem>) {
        self.done.cancel();
        match self.task.await {
            Ok(watched) => watched,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// The server's death, when requests failed and it exits within [`DEATH_GRACE`].
async fn death_after_failures(
    server: &mut Server,
    outcome: &ProtocolOutcome,
) -> Option<ServerProblem> {
    let any_failed = outcome
        .reported()
        .any(|r| r.requests.iter().any(|q| q.failure.is_some()));
    let deadline = Instant::now() + DEATH_GRACE;
    loop {
        if let Some(status) = server.exited() {
            return Some(server.exit_problem(status));
        }
        if !any_failed || Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the workload's three rounds against `client`, appending to `records.jsonl`.
async fn measure(
    settings: &RunSettings<'_>,
    job: &EngineJob<'_>,
    client: &Client,
    cancel: &Cancel,
) -> anyhow::Result<ProtocolOutcome> {
    let w = settings.workload;
    let outputs = Outputs::prepare(&job.dir, None)?;
    let observer = RunObserver::new(
        settings.progress,
        Some(outputs.record_log()?),
        None,
        [w.pre_warmup.len(), w.warmup.len(), w.query.len()],
        settings.time_scale,
    );
    let options = ProtocolOptions {
        metrics_urls: vec![client.config().endpoint.default_metrics_url()],
    };
    let plan = w.plan(settings.max_inflight, 0);
    let outcome = run_protocol(
        std::slice::from_ref(client),
        &plan,
        w,
        &options,
        &observer,
        cancel,
    )
    .await;
    observer.finish();
    Ok(outcome)
}

/// Writes the engine's CSVs and result (`result.json` when `complete`, else
/// `result.partial.json`), prints its summary, and hands the result back. `announced_kv`:
/// the GPU KV capacity an `ldqa serve` child announced, recorded as `server_gpu_kv_tokens`.
fn write_results(
    settings: &RunSettings<'_>,
    job: &EngineJob<'_>,
    client: &Client,
    outcome: &ProtocolOutcome,
    complete: bool,
    announced_kv: Option<u64>,
) -> anyhow::Result<RunResult> {
    let mut rounds: Vec<RoundRecord> = outcome.reported().cloned().collect();
    for r in &mut rounds {
        r.scale_time(settings.time_scale);
    }
    let mut warnings: Vec<Notice> = outcome
        .metrics_warning
        .iter()
        .map(|w| Notice::Warning(w.clone()))
        .collect();
    if settings.time_scale != 1.0 {
        warnings.push(Notice::Note(format!(
            "times are simulated seconds (the server ran {}× faster than the wall clock)",
            settings.time_scale
        )));
    }
    let base = client.config().endpoint.base();
    let model = client.config().model.as_str();
    let config = recorded::to_value(&EngineRunConfig {
        base_url: Some(base.to_string()),
        server_gpu_kv_tokens: announced_kv,
        ..engine_config(&settings.config, job.engine, job.command)
    });
    let environment = Environment::detect(Some(base), Some(model));
    let save = if complete {
        result_path(&job.dir)
    } else {
        job.dir.join("result.partial.json")
    };
    let outputs = Outputs::prepare(&job.dir, Some(&save))?;
    let report = Report::new(
        config,
        environment,
        &rounds,
        warnings,
        Gates::default(),
        !complete,
    );
    report.write_files(&outputs, false)?;
    crate::stdout::write(&format!("=== {} ===\n{}\n", job.engine, report.text(false)))?;
    Ok(report.into_result())
}
