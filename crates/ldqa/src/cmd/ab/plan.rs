//! What `ab` will do, decided before any server starts: the flags checked ([`check`]), the
//! recommender's sizing and the two server commands ([`plan_servers`]), the workload, and the
//! configuration recorded with every result ([`record`]).

use anyhow::{bail, Context};
use ldqa_recommend::{hardware, plan, Deployment, PlanInput, Workload as RecWorkload};
use ldqa_sim::EngineKind;
use ldqa_specs::{catalog, GpuSpec};
use ldqa_workload::WorkloadConfig;

use super::args::AbArgs;
use super::server::ServerCommand;
use crate::cmd::deployment_args::DeploymentArgs;
use crate::recorded::AbConfig;

const GIB: f64 = ldqa_specs::GIB_BYTES as f64;
/// `--time-scale` when `--sim` is given without it.
const DEFAULT_SIM_TIME_SCALE: f64 = 2.0;
/// Host RAM `--sim` plans with when `--cpu-ram-gib` is not given: the seed tutorial's.
const DEFAULT_SIM_CPU_RAM_GIB: f64 = 1000.0;
/// `LMCACHE_MAX_LOCAL_CPU_SIZE` when there is no GPU to size it for (LMCache's example value).
const UNSIZED_LMCACHE_CPU_GIB: u64 = 5;

/// Everything decided before a server starts.
pub struct AbPlan {
    pub workload: WorkloadConfig,
    pub baseline: ServerCommand,
    pub lmcache: ServerCommand,
    /// Simulated seconds per wall second (1 for real servers).
    pub time_scale: f64,
    pub working_set_exceeds_gpu_cache: Option<bool>,
    /// The resolved configuration, recorded in every result.
    pub config: AbConfig,
    /// What the user should know about how the plan was made (stderr, before the runs).
    pub notes: Vec<String>,
}

/// The flags of `ab`, checked by [`check`]: only this type reaches the planning steps.
pub struct CheckedArgs<'a> {
    args: &'a AbArgs,
    /// `--time-scale` with `--sim` (or its default), 1 for real servers.
    time_scale: f64,
}

/// Validates every flag that needs more than clap's parsing; the error names the flag.
pub fn check(args: &AbArgs) -> anyhow::Result<CheckedArgs<'_>> {
    if args.trials == 0 || args.max_inflight_requests == 0 || args.output_len == 0 {
        bail!("--trials, --max-inflight-requests and --output-len must be at least 1");
    }
    if !(args.ready_timeout.is_finite() && args.ready_timeout > 0.0) {
        bail!("--ready-timeout must be a positive number of seconds");
    }
    let time_scale = match (args.sim, args.time_scale) {
        (false, Some(_)) => bail!(
            "--time-scale applies to the simulated servers only: add --sim, or drop --time-scale \
             (real servers run in real time)"
        ),
        (false, None) => 1.0,
        (true, scale) => scale.unwrap_or(DEFAULT_SIM_TIME_SCALE),
    };
    if !(time_scale.is_finite() && time_scale > 0.0) {
        bail!("--time-scale must be a positive factor");
    }
    crate::cmd::run_args::check_gain_gates(args.expected_ttft_gain, args.expected_latency_gain)?;
    Ok(CheckedArgs { args, time_scale })
}

/// The recommender's sizing of the deployment both servers are started with.
#[derive(Debug, Clone)]
pub struct Sizing {
    /// Model, GPU, TP and vLLM's knobs, checked to start.
    pub deployment: Deployment,
    /// `LMCACHE_MAX_LOCAL_CPU_SIZE`, GiB per GPU.
    pub lmcache_cpu_gib: u64,
    /// The recommender's document count (before `--num-documents`).
    pub num_documents: usize,
}

/// The two servers under test and what they were sized from.
pub struct Servers {
    pub baseline: ServerCommand,
    pub lmcache: ServerCommand,
    /// None when there was no GPU to plan for.
    pub sizing: Option<Sizing>,
    pub notes: Vec<String>,
}

/// The one place that describes the engines under test: sizes the deployment with the
/// recommender, then builds the baseline and LMCache server commands from that sizing
/// (`vllm serve …` shell strings, or with `--sim` the `ldqa serve …` argv), and finally
/// applies `--baseline-cmd`/`--lmcache-cmd`.
pub fn plan_servers(checked: &CheckedArgs<'_>) -> anyhow::Result<Servers> {
    let args = checked.args;
    let mut notes = Vec::new();
    let sizing = match target_gpu(args)? {
        Some(gpu) => Some(recommend(args, gpu)?),
        None => {
            notes.push(format!(
                "no GPU found and no --gpu: the recommender is skipped and LMCache gets \
                 LMCACHE_MAX_LOCAL_CPU_SIZE={UNSIZED_LMCACHE_CPU_GIB} (GiB per GPU); name the \
                 GPU with --gpu to size it"
            ));
            None
        }
    };
    let cpu_gib = sizing
        .as_ref()
        .map_or(UNSIZED_LMCACHE_CPU_GIB, |s| s.lmcache_cpu_gib);
    let flags = sizing.as_ref().map_or_else(
        || vec!["--tensor-parallel-size 1".to_string()],
        |s| s.deployment.vllm_serve_flags(),
    );
    let (baseline, lmcache) = match &sizing {
        Some(s) if args.sim => sim_commands(&args.deployment, s, checked.time_scale)?,
        _ => vllm_commands(&args.deployment.model, &flags, cpu_gib),
    };
    Ok(Servers {
        baseline: args
            .baseline_cmd
            .clone()
            .map_or(baseline, ServerCommand::Shell),
        lmcache: args
            .lmcache_cmd
            .clone()
            .map_or(lmcache, ServerCommand::Shell),
        sizing,
        notes,
    })
}

/// The GPU to plan for: `--gpu`, the `--sim` default, else the local one (None if none).
fn target_gpu(args: &AbArgs) -> anyhow::Result<Option<GpuSpec>> {
    if args.deployment.gpu.is_some() || args.sim {
        return Ok(Some(args.deployment.catalog_gpu()?));
    }
    // LDQA_NO_GPU_PROBE=1 skips NVML and nvidia-smi, as in `recommend`.
    if std::env::var_os("LDQA_NO_GPU_PROBE").is_some_and(|v| v == "1") {
        return Ok(None);
    }
    let (found, _) = hardware::detect_gpus();
    Ok(found.first().map(|g| {
        catalog::gpu_by_device_name(&g.name)
            // Unknown part: the driver's total less the ~0.5 GiB torch does not see.
            .unwrap_or_else(|| {
                GpuSpec::custom(&g.name, g.memory_total_bytes.saturating_sub(1 << 29))
            })
    }))
}

/// The recommender: TP, GPU KV capacity, LMCache size and document count on `gpu`.
fn recommend(args: &AbArgs, gpu: GpuSpec) -> anyhow::Result<Sizing> {
    let d = &args.deployment;
    let cpu_ram_bytes = args
        .cpu_ram_gib
        .or(args.sim.then_some(DEFAULT_SIM_CPU_RAM_GIB))
        .map(|g| (g * GIB) as u64)
        .or_else(hardware::host_ram_available_bytes);
    let input = PlanInput {
        deployment: d.deployment(d.model_spec()?, gpu)?,
        num_gpus: None,
        gpus_per_node: 8,
        lmcache_cpu_gib: d.lmcache_cpu_gib()?,
        cpu_ram_bytes,
        memlock_bytes: None,
        instances: 1,
        remote: None,
        num_documents: None,
        workload: RecWorkload {
            document_length: args.document_length as u64,
            output_len: u64::from(args.output_len),
            max_inflight_requests: args.max_inflight_requests as u64,
        },
    };
    let p = plan(&input)?;
    Ok(Sizing {
        deployment: input.deployment,
        lmcache_cpu_gib: p.offload.max_local_cpu_size_gib,
        num_documents: usize::try_from(p.num_documents).unwrap_or(usize::MAX),
    })
}

/// `--sim`: both servers are this executable's `ldqa serve`, on a free port, handed the
/// deployment the parent planned: the same flags, with the GPU, TP and LMCache size it
/// resolved spelled out.
fn sim_commands(
    deployment: &DeploymentArgs,
    sizing: &Sizing,
    time_scale: f64,
) -> anyhow::Result<(ServerCommand, ServerCommand)> {
    let serve = |engine: EngineKind| {
        let child = DeploymentArgs {
            gpu: Some(sizing.deployment.gpu.name.clone()),
            tensor_parallel_size: Some(sizing.deployment.tp),
            lmcache_cpu_gib: (engine == EngineKind::Lmcache)
                .then_some(sizing.lmcache_cpu_gib as f64),
            ..deployment.clone()
        };
        serve_command(&child, engine, time_scale, &[])
    };
    Ok((serve(EngineKind::Vllm)?, serve(EngineKind::Lmcache)?))
}

/// This executable's `ldqa serve` running `deployment` as `engine` on a free port, `extra`
/// flags after the others (e.g. `--profile FILE`): the simulated server `ab --sim` and
/// `sweep --start sim` start.
pub(crate) fn serve_command(
    deployment: &DeploymentArgs,
    engine: EngineKind,
    time_scale: f64,
    extra: &[std::ffi::OsString],
) -> anyhow::Result<ServerCommand> {
    let exe = std::env::current_exe().context("finding the ldqa executable")?;
    let mut argv: Vec<std::ffi::OsString> = vec![exe.into(), "serve".into()];
    argv.extend(deployment.to_argv());
    let time_scale = time_scale.to_string();
    let rest = [
        "--engine",
        engine.as_str(),
        "--port",
        "0",
        "--time-scale",
        &time_scale,
    ];
    argv.extend(rest.map(Into::into));
    argv.extend_from_slice(extra);
    Ok(ServerCommand::Argv(argv))
}

/// Real servers: the tutorial's `vllm serve` commands, with and without LMCache, carrying
/// every flag of the deployment.
pub(crate) fn vllm_commands(
    model: &str,
    flags: &[String],
    lmcache_cpu_gib: u64,
) -> (ServerCommand, ServerCommand) {
    let flags = flags.join(" ");
    let vllm = format!("vllm serve {model} {flags} --load-format dummy --port 8000");
    let baseline = format!("PYTHONHASHSEED=0 {vllm}");
    let lmcache = format!(
        "PYTHONHASHSEED=0 LMCACHE_MAX_LOCAL_CPU_SIZE={lmcache_cpu_gib} {vllm} \
         --kv-transfer-config '{{\"kv_connector\": \"LMCacheConnectorV1\", \"kv_role\": \"kv_both\"}}'"
    );
    (
        ServerCommand::Shell(baseline),
        ServerCommand::Shell(lmcache),
    )
}

/// The documents: `--num-documents`, else the recommender's count.
fn workload(args: &AbArgs, sizing: Option<&Sizing>) -> anyhow::Result<WorkloadConfig> {
    let num_documents = match (args.num_documents, sizing) {
        (Some(n), _) => n,
        (None, Some(s)) => s.num_documents,
        (None, None) => bail!(
            "pass --num-documents, or --gpu so that the recommender can choose it (or use --sim)"
        ),
    };
    let workload = WorkloadConfig {
        num_documents,
        document_length: args.document_length,
        repeat_count: args.repeat_count,
        repeat_mode: args.repeat_mode,
        shuffle_seed: args.shuffle_seed,
        hit_miss: args.hit_miss_ratio,
        text: args.text_source,
        tokenizer: args.tokenizer.clone(),
    };
    workload.validate()?;
    Ok(workload)
}

/// The resolved configuration, recorded in `ab_result.json` and in every engine's result.
pub fn record(checked: &CheckedArgs<'_>, servers: &Servers, workload: &WorkloadConfig) -> AbConfig {
    let args = checked.args;
    let deployment = servers.sizing.as_ref().map(|s| &s.deployment);
    AbConfig {
        command: "ab",
        model: args.deployment.model.clone(),
        gpu: deployment.map(|d| d.gpu.name.clone()),
        tensor_parallel_size: deployment.map(|d| d.tp),
        vllm_serve_flags: deployment.map(|d| d.vllm_serve_flags()),
        sim: args.sim,
        time_scale: checked.time_scale,
        workload: workload.clone(),
        output_len: args.output_len,
        max_inflight_requests: args.max_inflight_requests,
        trials: args.trials,
        lmcache_max_local_cpu_size_gib: servers.sizing.as_ref().map(|s| s.lmcache_cpu_gib),
        gpu_kv_tokens: deployment.map(|d| d.kv_pool_tokens()),
        baseline_cmd: servers.baseline.display(),
        lmcache_cmd: servers.lmcache.display(),
        expected_ttft_gain: args.expected_ttft_gain,
        expected_latency_gain: args.expected_latency_gain,
    }
}

/// Checks the flags, plans the servers and the workload, and records the configuration.
pub fn make_plan(args: &AbArgs) -> anyhow::Result<AbPlan> {
    let checked = check(args)?;
    let servers = plan_servers(&checked)?;
    let workload = workload(args, servers.sizing.as_ref())?;
    let working_set_exceeds_gpu_cache = servers.sizing.as_ref().map(|s| {
        (workload.num_documents * workload.document_length) as u64 > s.deployment.kv_pool_tokens()
    });
    let config = record(&checked, &servers, &workload);
    Ok(AbPlan {
        workload,
        baseline: servers.baseline,
        lmcache: servers.lmcache,
        time_scale: checked.time_scale,
        working_set_exceeds_gpu_cache,
        config,
        notes: servers.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lmcache_command_sets_each_variable_once() {
        let flags = ["--tensor-parallel-size 2".to_string()];
        let (baseline, lmcache) = vllm_commands("m", &flags, 7);
        assert_eq!(
            baseline.display(),
            "PYTHONHASHSEED=0 vllm serve m --tensor-parallel-size 2 --load-format dummy --port 8000"
        );
        let lmcache = lmcache.display();
        assert_eq!(lmcache.matches("PYTHONHASHSEED=0").count(), 1, "{lmcache}");
        assert!(
            lmcache.starts_with("PYTHONHASHSEED=0 LMCACHE_MAX_LOCAL_CPU_SIZE=7 vllm serve m "),
            "{lmcache}"
        );
        assert!(lmcache.ends_with("\"kv_role\": \"kv_both\"}'"), "{lmcache}");
    }
}
