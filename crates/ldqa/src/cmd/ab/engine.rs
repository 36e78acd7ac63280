//! One engine, one repeat: start its server, wait until ready, run the workload, stop it,
//! write its files (CSV, records, result) into its own folder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ldqa_loadgen::{run_protocol, Cancel, Client, ClientConfig, Endpoint, Plan, ProtocolOptions};
use ldqa_model::{Api, RoundRecord};
use ldqa_report::{Environment, RunResult};
use ldqa_workload::Workload;

use super::server::{Server, ServerCommand};
use crate::observe::RunObserver;
use crate::output::{Gates, Outputs, Report};

/// What the engine runs share.
pub struct Shared<'a> {
    pub workload: &'a Workload,
    pub config: serde_json::Value,
    pub output_len: u32,
    pub max_inflight: usize,
    pub api: Api,
    pub ready_timeout: Duration,
    /// Simulated seconds per wall second (1 for real servers).
    pub time_scale: f64,
    pub show_progress: bool,
}

/// One engine's run to do.
pub struct EngineJob<'a> {
    /// `baseline` or `lmcache`.
    pub engine: &'a str,
    pub command: &'a ServerCommand,
    pub url: Option<&'a str>,
    pub dir: PathBuf,
}

/// How it went.
pub struct EngineRun {
    /// The result, when every round finished and the server stayed up.
    pub result: Option<RunResult>,
    /// The server's URL, once known.
    pub url: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Ctrl-C.
    pub interrupted: bool,
}

/// The file of a finished run; its presence is what `--resume` trusts.
pub fn result_path(dir: &Path) -> PathBuf {
    dir.join("result.json")
}

/// Multiplies every time of `round` by `f` (wall → simulated seconds).
pub fn scale_round(round: &mut RoundRecord, f: f64) {
    if f == 1.0 {
        return;
    }
    let s = |ns: u64| (ns as f64 * f).round() as u64;
    round.duration_ns = s(round.duration_ns);
    for r in &mut round.requests {
        r.queued_ns = s(r.queued_ns);
        r.sent_ns = s(r.sent_ns);
        r.end_ns = s(r.end_ns);
        for t in [
            &mut r.first_byte_ns,
            &mut r.first_token_ns,
            &mut r.last_token_ns,
            &mut r.max_itl_ns,
        ] {
            *t = t.map(s);
        }
    }
}

fn failed(error: String, url: Option<String>) -> EngineRun {
    EngineRun {
        result: None,
        url,
        error: Some(error),
        interrupted: false,
    }
}

/// Runs `job`. Problems with the server are returned in [`EngineRun::error`]; `Err` is kept
/// for local I/O failures (the output folder).
pub async fn run_engine(
    shared: &Shared<'_>,
    job: &EngineJob<'_>,
    interrupt: &Cancel,
) -> anyhow::Result<EngineRun> {
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
    let started = Instant::now();
    let cancelled = || interrupt.is_cancelled();
    let base = match server
        .wait_ready(job.url, shared.ready_timeout, &cancelled)
        .await
    {
        Ok(b) => b,
        Err(super::server::ServerProblem::Interrupted) => {
            return Ok(EngineRun {
                result: None,
                url: None,
                error: None,
                interrupted: true,
            })
        }
        Err(p) => return Ok(failed(format!("{} server: {p}", job.engine), None)),
    };
    let endpoint = Endpoint::new(&base, None).context("server URL")?;
    let mut config = ClientConfig::new(
        endpoint.clone(),
        "auto".into(),
        shared.api,
        shared.output_len,
    );
    config.pool_size = shared.max_inflight;
    let probe = Client::new(config.clone())?;
    // /health is up; /v1/models must list a model too (vLLM answers both once loaded).
    let model = loop {
        match probe.list_models().await {
            Ok(m) if !m.is_empty() => break m[0].clone(),
            Ok(_) | Err(_) if started.elapsed() < shared.ready_timeout => {
                if let Some(status) = server.exited() {
                    let p = server.exit_problem(status);
                    return Ok(failed(format!("{} server: {p}", job.engine), Some(base)));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => {
                return Ok(failed(
                    format!("{} server lists no model", job.engine),
                    Some(base),
                ))
            }
            Err(e) => {
                return Ok(failed(
                    format!("{} server: /v1/models: {e}", job.engine),
                    Some(base),
                ))
            }
        }
    };
    eprintln!(
        "[{}] ready after {:.1}s at {base}, model {model}",
        job.engine,
        started.elapsed().as_secs_f64()
    );
    config.model = model.clone();
    let client = Client::new(config)?;

    // A watcher stops the run when the server dies, or on Ctrl-C.
    let server = Arc::new(Mutex::new(server));
    let run_cancel = Cancel::new();
    let died = Arc::new(Mutex::new(None));
    let watcher = tokio::spawn({
        let (server, run_cancel, interrupt, died) = (
            Arc::clone(&server),
            run_cancel.clone(),
            interrupt.clone(),
            Arc::clone(&died),
        );
        async move {
            loop {
                if interrupt.is_cancelled() {
                    run_cancel.cancel();
                    return;
                }
                let problem = {
                    let mut s = server.lock().expect("invariant: lock not poisoned");
                    s.exited().map(|status| s.exit_problem(status).to_string())
                };
                if let Some(p) = problem {
                    *died.lock().expect("invariant: lock not poisoned") = Some(p);
                    run_cancel.cancel();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let outputs = Outputs::prepare(&job.dir, None)?;
    let w = shared.workload;
    let observer = RunObserver::new(
        shared.show_progress,
        Some(outputs.record_log()?),
        None,
        [w.pre_warmup.len(), w.warmup.len(), w.query.len()],
    );
    let options = ProtocolOptions {
        max_inflight: shared.max_inflight,
        sleep_after_warmup: Duration::ZERO,
        metrics_url: Some(endpoint.default_metrics_url()),
    };
    let plan = Plan {
        pre_warmup: &w.pre_warmup,
        warmup: &w.warmup,
        query: &w.query,
        prompts: w,
    };
    let outcome = run_protocol(&client, &plan, &options, &observer, &run_cancel).await;
    observer.finish();
    watcher.abort();
    let died = died.lock().expect("invariant: lock not poisoned").take();
    let died = {
        let mut s = server.lock().expect("invariant: lock not poisoned");
        // Requests fail fast once a server is gone: it may have died between two looks of
        // the watcher.
        let any_failed = [&outcome.warmup, &outcome.query]
            .into_iter()
            .flatten()
            .any(|r| r.requests.iter().any(|q| q.failure.is_some()));
        let mut died = died.or_else(|| s.exited().map(|st| s.exit_problem(st).to_string()));
        let t0 = Instant::now();
        while died.is_none() && any_failed && t0.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(20));
            died = s.exited().map(|st| s.exit_problem(st).to_string());
        }
        s.stop(Duration::from_secs(10));
        died
    };
    let interrupted = died.is_none() && interrupt.is_cancelled();

    let mut rounds: Vec<RoundRecord> = [outcome.warmup.clone(), outcome.query.clone()]
        .into_iter()
        .flatten()
        .collect();
    for r in &mut rounds {
        scale_round(r, shared.time_scale);
    }
    let mut warnings: Vec<String> = outcome.metrics_warning.into_iter().collect();
    if shared.time_scale != 1.0 {
        warnings.push(format!(
            "times are simulated seconds (the server ran {}× faster than the wall clock)",
            shared.time_scale
        ));
    }
    let mut cfg = shared.config.clone();
    cfg["engine"] = job.engine.into();
    cfg["server_command"] = job.command.display().into();
    cfg["base_url"] = base.clone().into();
    let env = Environment::detect(Some(&base), Some(&model));
    let complete = died.is_none() && !interrupted && outcome.query.is_some();
    let save = if complete {
        result_path(&job.dir)
    } else {
        job.dir.join("result.partial.json")
    };
    let outputs = Outputs::prepare(&job.dir, Some(&save))?;
    let report = Report::new(cfg, env, &rounds, warnings, Gates::default(), !complete);
    report.write_files(&outputs, false)?;
    crate::stdout::write(&format!("=== {} ===\n{}\n", job.engine, report.text(false)))?;
    let result = ldqa_report::read_json(&save)
        .with_context(|| format!("reading back {}", save.display()))?;
    if let Some(d) = died {
        let done: usize = result
            .rounds
            .iter()
            .map(|r| r.summary.successful_count)
            .sum();
        return Ok(failed(
            format!(
                "{} server died during the run after {done} successful requests: {d}",
                job.engine
            ),
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
