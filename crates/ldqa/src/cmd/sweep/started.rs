//! `--start sim|vllm`: servers the sweep starts itself, with `ab`'s commands and `ab`'s
//! server runner ([`crate::cmd::ab::server`]). For each deployment of the sweep (one for a
//! workload axis, one per value of `--gpu`, `--lmcache-cpu-gib`, …), each arm's server is
//! started, measured at every point of that deployment (its prefix cache emptied before
//! each, [`super::servers`]), and stopped before the next starts: one server at a time, as
//! on one GPU. A deployment's points are saved once both arms are measured.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use ldqa_loadgen::Cancel;
use ldqa_metrics::SweepPoint;
use ldqa_sim::EngineKind;

use super::points::Task;
use super::servers::{measure_points, Server};
use super::SweepArgs;
use crate::cmd::ab::plan::{serve_command, vllm_commands};
use crate::cmd::ab::server::{self, ServerCommand, ServerProblem};

/// How long a started server has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `--start`: which servers to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartKind {
    // `ldqa serve`, the simulated engine over real HTTP (as `ab --sim`).
    Sim,
    // `vllm serve` with and without LMCache, as `recommend` prints them (as `ab`).
    Vllm,
}

/// The points of `tasks` on servers started per deployment, until Ctrl-C; `save` gets the
/// points so far after each deployment.
pub(super) async fn measure(
    args: &SweepArgs,
    kind: StartKind,
    tasks: &[&Task],
    cancel: &Cancel,
    save: &(dyn Fn(&[SweepPoint]) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<Vec<SweepPoint>> {
    let mut points: Vec<SweepPoint> = Vec::new();
    let mut group_start = 0;
    let mut group = 0;
    while group_start < tasks.len() && !cancel.is_cancelled() {
        let key = tasks[group_start].setting.deployment_key();
        let len = match args.restart_each_point {
            true => 1,
            false => tasks[group_start..]
                .iter()
                .take_while(|t| t.setting.deployment_key() == key)
                .count(),
        };
        let part = &tasks[group_start..group_start + len];
        group += 1;
        let [vllm, lmcache] = commands(args, kind, part[0])?;
        let vllm_arm = Arm {
            name: "vllm",
            command: &vllm,
            url: args.vllm_url.first().map(String::as_str),
        };
        let vllm_points = run_one(args, part, group, &vllm_arm, cancel).await?;
        let lmcache_arm = Arm {
            name: "lmcache",
            command: &lmcache,
            url: args.lmcache_url.first().map(String::as_str),
        };
        let lmcache_points = match vllm_points.len() == part.len() {
            true => run_one(args, part, group, &lmcache_arm, cancel).await?,
            false => Vec::new(),
        };
        if lmcache_points.len() < part.len() {
            break; // Ctrl-C: this deployment's points are not whole
        }
        for (v, l) in vllm_points.into_iter().zip(lmcache_points) {
            points.push(SweepPoint {
                lmcache: l.lmcache,
                ..v
            });
        }
        save(&points)?;
        group_start += len;
    }
    Ok(points)
}

/// One arm's server to start.
struct Arm<'a> {
    /// `vllm` or `lmcache`.
    name: &'a str,
    command: &'a ServerCommand,
    /// Where it listens, when given.
    url: Option<&'a str>,
}

/// The vLLM and LMCache servers of `task`'s deployment (`--vllm-cmd`/`--lmcache-cmd` when
/// given).
fn commands(args: &SweepArgs, kind: StartKind, task: &Task) -> anyhow::Result<[ServerCommand; 2]> {
    let [vllm, lmcache] = planned_commands(args, kind, task)?;
    let own = |cmd: &Option<String>, planned| cmd.clone().map_or(planned, ServerCommand::Shell);
    Ok([own(&args.vllm_cmd, vllm), own(&args.lmcache_cmd, lmcache)])
}

/// The servers `ab` would start for `task`'s deployment.
fn planned_commands(
    args: &SweepArgs,
    kind: StartKind,
    task: &Task,
) -> anyhow::Result<[ServerCommand; 2]> {
    let e = &task.engines;
    let d = &e.deployment;
    let cpu_gib = e.lmcache.cpu_gib_per_rank.unwrap_or(0.0);
    match kind {
        StartKind::Sim => {
            let extra: Vec<OsString> = args
                .engine
                .profile
                .iter()
                .flat_map(|p| [OsString::from("--profile"), p.clone().into_os_string()])
                .collect();
            let serve = |engine: EngineKind| {
                let child = crate::cmd::deployment_args::DeploymentArgs {
                    model: task.setting.model.clone(),
                    gpu: Some(d.gpu.name.clone()),
                    tensor_parallel_size: Some(d.tp),
                    lmcache_cpu_gib: (engine == EngineKind::Lmcache).then_some(cpu_gib),
                    ..args.engine.deployment.clone()
                };
                serve_command(&child, engine, args.time_scale(), &extra)
            };
            Ok([serve(EngineKind::Vllm)?, serve(EngineKind::Lmcache)?])
        }
        StartKind::Vllm => {
            let flags = d.vllm_serve_flags();
            let (vllm, lmcache) =
                vllm_commands(&task.setting.model, &flags, cpu_gib.round() as u64);
            Ok([vllm, lmcache])
        }
    }
}

/// One arm's server started, `tasks` measured on it, the server stopped. Fewer points than
/// tasks: Ctrl-C.
async fn run_one(
    args: &SweepArgs,
    tasks: &[&Task],
    group: usize,
    arm: &Arm<'_>,
    cancel: &Cancel,
) -> anyhow::Result<Vec<SweepPoint>> {
    let Arm { name, command, url } = *arm;
    let dir = args.output_dir.join("servers");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(format!("{group}-{name}.log"));
    eprintln!(
        "sweep: starting {name}: {} (log: {})",
        command.display(),
        log.display()
    );
    let mut started = server::Server::start(command, &log)
        .with_context(|| format!("starting the {name} server"))?;
    let timeout = args.ready_timeout();
    let cancelled = || cancel.is_cancelled();
    let base = match started
        .wait_ready(url, command.fallback_url(), timeout, &cancelled)
        .await
    {
        Ok(base) => base,
        Err(ServerProblem::Interrupted) => {
            started.stop(STOP_GRACE).await;
            return Ok(Vec::new());
        }
        Err(problem) => {
            started.stop(STOP_GRACE).await;
            anyhow::bail!("the {name} server did not start: {problem}");
        }
    };
    let measured = async {
        let client = Server::connect(std::slice::from_ref(&base), Vec::new(), args).await?;
        let (v, l) = match name {
            "vllm" => (Some(&client), None),
            _ => (None, Some(&client)),
        };
        measure_points(args, tasks, v, l, cancel, &|_| Ok(())).await
    }
    .await;
    started.stop(STOP_GRACE).await;
    measured.with_context(|| format!("measuring on the {name} server ({base})"))
}
