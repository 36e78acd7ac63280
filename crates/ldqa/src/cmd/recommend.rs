//! `ldqa recommend`: tensor parallelism, GPU KV cache, LMCache CPU size and workload, computed
//! the way vLLM and LMCache's recommender would, without a GPU.

use anyhow::{bail, Context};
use ldqa_recommend::hardware::{self, GpuSource};
use ldqa_recommend::render::{
    render_blocks, render_explanation, render_instances, warning_text, InstancesBlock,
};
use ldqa_recommend::{plan, PlanInput, RemoteSize, Workload};
use ldqa_specs::{catalog, GpuSpec};
use serde_json::json;

use super::deployment_args::DeploymentArgs;
use super::recommend_gain;
use crate::exit::ExitStatus;

const GIB: f64 = ldqa_specs::GIB_BYTES as f64;

/// Arguments of `ldqa recommend`.
#[derive(Debug, clap::Args)]
// Negative numbers are values, so that `-5` gets a range error naming its flag.
#[command(allow_negative_numbers = true)]
pub struct RecommendArgs {
    #[command(flatten)]
    pub(crate) deployment: DeploymentArgs,
    /// Override the GPU memory (GiB, as torch reports it).
    #[arg(
        long,
        value_name = "GIB",
        allow_negative_numbers = true,
        help_heading = "Machine"
    )]
    gpu_memory_gib: Option<f64>,
    /// GPUs available (default: those detected; as many as needed when planning with --gpu).
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Machine"
    )]
    num_gpus: Option<u32>,
    /// GPUs per node: they share the node's host RAM.
    #[arg(
        long,
        default_value_t = 8,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Machine"
    )]
    gpus_per_node: u32,
    /// Plan this many instances (replicas) behind a router: GPUs, each instance's LMCache
    /// size with the host RAM shared by the instances on a node, and the commands.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Machine"
    )]
    instances: u32,
    /// Instead of --instances: as many instances as this many GPUs hold at the planned
    /// tensor-parallel size (the GPUs left over are said).
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "instances",
        help_heading = "Machine"
    )]
    gpus_total: Option<u32>,
    /// With --instances: a remote KV tier that every instance's LMCache shares (a Redis,
    /// with LMCache's remote-backend settings on each `vllm serve`), of this many GiB, or
    /// `auto`: sized for your --num-documents, else for what the instances' CPU tiers hold
    /// together (10 % headroom).
    #[arg(long, value_name = "GIB|auto", value_parser = parse_remote_size, help_heading = "Machine")]
    remote_gib: Option<RemoteSize>,
    /// Host RAM for LMCache, GiB per node (default: this machine's MemAvailable).
    #[arg(
        long,
        value_name = "GIB",
        allow_negative_numbers = true,
        help_heading = "Machine"
    )]
    cpu_ram_gib: Option<f64>,
    /// Tokens per document.
    #[arg(
        long,
        default_value_t = 10_000,
        value_name = "TOKENS",
        allow_negative_numbers = true,
        help_heading = "Workload"
    )]
    document_length: u64,
    /// Output tokens per request.
    #[arg(
        long,
        default_value_t = 100,
        value_name = "TOKENS",
        allow_negative_numbers = true,
        help_heading = "Workload"
    )]
    output_len: u64,
    /// Concurrent requests of the workload (4, the seed's; `ldqa run` defaults to upstream's 2).
    #[arg(
        long,
        default_value_t = 4,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Workload"
    )]
    max_inflight_requests: u64,
    /// Your workload's documents: the simulator predicts LMCache's gain for it next to
    /// the plan's, and says "no benefit expected" when it fits the GPU cache.
    #[arg(long, value_name = "N", help_heading = "Workload")]
    num_documents: Option<usize>,
    /// Print every number as JSON (units in the keys).
    #[arg(long, help_heading = "Output")]
    json: bool,
}

/// `--remote-gib`: a whole number of GiB, or `auto`.
fn parse_remote_size(s: &str) -> Result<RemoteSize, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(RemoteSize::Derived);
    }
    s.parse()
        .map(RemoteSize::Gib)
        .map_err(|_| format!("expected a whole number of GiB or auto, not {s:?}"))
}

struct Hardware {
    gpu: GpuSpec,
    num_gpus: Option<u32>,
    memlock_bytes: Option<u64>,
}

fn gib_to_bytes(gib: f64, flag: &str) -> anyhow::Result<u64> {
    if !(gib.is_finite() && gib > 0.0) {
        bail!("{flag} must be a positive number of GiB, got {gib}");
    }
    Ok((gib * GIB) as u64)
}

fn hardware(args: &RecommendArgs) -> anyhow::Result<Hardware> {
    if args.num_gpus == Some(0) || args.gpus_per_node == 0 {
        bail!("--num-gpus and --gpus-per-node must be at least 1");
    }
    if let Some(name) = &args.deployment.gpu {
        let mut gpu = catalog::gpu(name).context("--gpu")?;
        if let Some(g) = args.gpu_memory_gib {
            gpu.memory_bytes = gib_to_bytes(g, "--gpu-memory-gib")?;
        }
        // Planning: the local memlock limit says nothing about the target machine.
        return Ok(Hardware {
            gpu,
            num_gpus: args.num_gpus,
            memlock_bytes: None,
        });
    }
    // LDQA_NO_GPU_PROBE=1 skips NVML and nvidia-smi (tests, and machines whose driver hangs).
    let (found, source) = if std::env::var_os("LDQA_NO_GPU_PROBE").is_some_and(|v| v == "1") {
        (Vec::new(), GpuSource::None)
    } else {
        hardware::detect_gpus()
    };
    let Some(first) = found.first() else {
        if let Some(g) = args.gpu_memory_gib {
            return Ok(Hardware {
                gpu: GpuSpec::custom("custom", gib_to_bytes(g, "--gpu-memory-gib")?),
                num_gpus: args.num_gpus,
                memlock_bytes: None,
            });
        }
        bail!(
            "no GPU found (no NVIDIA driver/NVML, no nvidia-smi). To plan a deployment for another machine, \
             name its GPU: `ldqa recommend --model {} --gpu h100-80gb --num-gpus 8 --cpu-ram-gib 1000` \
             (GPUs: {})",
            args.deployment.model,
            catalog::gpu_names().join(", ")
        );
    };
    debug_assert!(source != GpuSource::None);
    let mut gpu = catalog::gpu_by_device_name(&first.name)
        // Unknown part: the driver's total less the ~0.5 GiB torch does not see.
        .unwrap_or_else(|| {
            GpuSpec::custom(
                &first.name,
                first.memory_total_bytes.saturating_sub(1 << 29),
            )
        });
    if let Some(g) = args.gpu_memory_gib {
        gpu.memory_bytes = gib_to_bytes(g, "--gpu-memory-gib")?;
    }
    Ok(Hardware {
        gpu,
        num_gpus: Some(args.num_gpus.unwrap_or(found.len() as u32)),
        memlock_bytes: hardware::memlock_limit_bytes(),
    })
}

/// Where the host RAM figure comes from.
fn host_ram(args: &RecommendArgs) -> anyhow::Result<(Option<u64>, String)> {
    match args.cpu_ram_gib {
        Some(g) => Ok((
            Some(gib_to_bytes(g, "--cpu-ram-gib")?),
            format!("{g} GiB per node (--cpu-ram-gib)"),
        )),
        None => {
            let found = hardware::host_ram_available_bytes();
            let text = match found {
                Some(b) => format!(
                    "{:.0} GiB per node: this machine's MemAvailable (pass --cpu-ram-gib to plan for another machine)",
                    b as f64 / GIB
                ),
                None => "unknown: no cap (pass --cpu-ram-gib)".to_string(),
            };
            Ok((found, text))
        }
    }
}

/// Everything `recommend` plans from: the checked inputs, the name printed in the
/// commands, and where the host RAM figure came from.
pub(crate) struct Resolved {
    pub input: PlanInput,
    pub served_name: String,
    pub ram_note: String,
}

/// Resolves and checks every flag, the model, the GPU and the host RAM.
pub(crate) fn resolve(args: &RecommendArgs) -> anyhow::Result<Resolved> {
    if args.document_length == 0 || args.max_inflight_requests == 0 {
        bail!("--document-length and --max-inflight-requests must be at least 1");
    }
    if args.num_documents == Some(0) {
        bail!("--num-documents must be at least 1");
    }
    if !(1..=1024).contains(&args.instances) {
        bail!("--instances must be 1 to 1024, not {}", args.instances);
    }
    if args.remote_gib == Some(RemoteSize::Gib(0)) {
        bail!("--remote-gib must be at least 1 (or auto)");
    }
    let d = &args.deployment;
    let model = d.model_spec()?;
    // A short catalog alias (`llama-3.1-8b`) is no name `vllm serve` knows: print the
    // model's repository name instead. Full names and paths are printed as given.
    let served_name = if !d.model.contains('/') && catalog::model(&d.model).is_some() {
        model.name.clone()
    } else {
        d.model.clone()
    };
    let hw = hardware(args)?;
    let (cpu_ram_bytes, ram_note) = host_ram(args)?;
    let deployment = d.deployment(model, hw.gpu)?;
    let instances = instances(args, deployment.tp)?;
    if args.remote_gib.is_some() && instances < 2 {
        bail!("--remote-gib is a tier several instances share: pass --instances N (or --gpus-total N) too");
    }
    let input = PlanInput {
        deployment,
        num_gpus: hw.num_gpus,
        gpus_per_node: args.gpus_per_node,
        lmcache_cpu_gib: d.lmcache_cpu_gib()?,
        cpu_ram_bytes,
        memlock_bytes: hw.memlock_bytes,
        instances,
        remote: args.remote_gib,
        num_documents: args.num_documents.map(|n| n as u64),
        workload: Workload {
            document_length: args.document_length,
            output_len: args.output_len,
            max_inflight_requests: args.max_inflight_requests,
        },
    };
    Ok(Resolved {
        input,
        served_name,
        ram_note,
    })
}

/// `--instances`, or as many as `--gpus-total` GPUs hold at `tp` GPUs each.
fn instances(args: &RecommendArgs, tp: u32) -> anyhow::Result<u32> {
    let Some(total) = args.gpus_total else {
        return Ok(args.instances);
    };
    let tp = tp.max(1);
    if total < tp {
        bail!("--gpus-total {total} is fewer than one instance's {tp} GPUs (tensor-parallel size {tp})");
    }
    let n = (total / tp).min(1024);
    if total % tp != 0 {
        eprintln!(
            "note: {n} instances of {tp} GPUs use {} of the {total} GPUs given; {} left over",
            n * tp,
            total - n * tp
        );
    }
    Ok(n)
}

/// Run `ldqa recommend`.
pub fn run(args: RecommendArgs) -> anyhow::Result<ExitStatus> {
    let Resolved {
        input,
        served_name,
        ram_note,
    } = resolve(&args)?;
    let p = plan(&input)?;
    let flags = input.deployment.vllm_serve_flags();
    let mut blocks = render_blocks(
        &served_name,
        &flags,
        p.offload.max_local_cpu_size_gib,
        p.num_documents,
        &input.workload,
    );
    if input.instances > 1 {
        blocks.push_str(&render_instances(&InstancesBlock {
            model_name: &served_name,
            gpu_name: &input.deployment.gpu.name,
            serve_flags: &flags,
            max_local_cpu_size_gib: p.offload.max_local_cpu_size_gib,
            tp: p.tp,
            instances: input.instances,
            gpus_per_node: input.gpus_per_node,
            remote: p.remote,
            workload: &input.workload,
            // Yours, else the planned workload once per instance.
            num_documents: input
                .num_documents
                .unwrap_or(u64::from(input.instances) * p.num_documents),
        }));
    }
    for w in &p.warnings {
        eprintln!("warning: {}", warning_text(w));
    }
    let predictions = predictions(&args, &input, &p);
    if args.json {
        let mut v = plan_json(&input, &p, &flags, blocks);
        v["prediction"] = match &predictions {
            Ok((planned, yours)) => json!({
                "planned": planned.json(),
                "yours": yours.as_ref().map(recommend_gain::Predicted::json),
            }),
            Err(e) => json!({"unavailable": format!("{e:#}")}),
        };
        crate::stdout::write(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        let dep = &input.deployment;
        let explanation = render_explanation(
            &p,
            &dep.model,
            &dep.gpu,
            input.gpus_pinning_per_node(),
            &input.workload,
        );
        let predicted = match &predictions {
            Ok((planned, yours)) => {
                let mut text = planned.text("Predicted for the planned workload");
                if let Some(y) = yours {
                    text.push_str(&y.text("Predicted for your workload"));
                }
                text.push('\n');
                text
            }
            Err(e) => format!("No prediction: {e:#}\n"),
        };
        crate::stdout::write(&format!(
            "host RAM:       {ram_note}\n{explanation}{predicted}{blocks}"
        ))?;
    }
    Ok(ExitStatus::Success)
}

/// The planned workload on one instance, and the user's (`--num-documents`) on the planned
/// instances, simulated on both engines.
fn predictions(
    args: &RecommendArgs,
    input: &PlanInput,
    p: &ldqa_recommend::Plan,
) -> anyhow::Result<(recommend_gain::Predicted, Option<recommend_gain::Predicted>)> {
    let model = &args.deployment.model;
    let num_documents = usize::try_from(p.num_documents)?;
    let planned = recommend_gain::predict(input, p, model, num_documents, false)?;
    let yours = args
        .num_documents
        .map(|n| recommend_gain::predict(input, p, model, n, input.instances > 1))
        .transpose()?;
    Ok((planned, yours))
}

/// A GiB figure or ratio as people read it: 3 decimals, no binary-fraction noise
/// (`61.19900000030175` → `61.199`; finding 40).
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Every number of the plan, once (finding 40: no rounded GiB twin of a byte count), with
/// its unit in the key; counts of tokens, blocks and requests are plain integers.
pub(crate) fn plan_json(
    input: &PlanInput,
    p: &ldqa_recommend::Plan,
    flags: &[String],
    blocks: String,
) -> serde_json::Value {
    let (d, k, o, w) = (&input.deployment, &p.kv, &p.offload, &input.workload);
    json!({
        "schema_version": 3,
        "model": {
            "name": d.model.name, "source": d.model.source,
            "total_params": d.model.total_params, "active_params": d.model.active_params,
            "weight_bytes": d.model.weight_bytes, "num_layers": d.model.num_layers,
            "num_kv_heads": d.model.num_kv_heads, "head_dim": d.model.head_dim,
        },
        "gpu": { "name": d.gpu.name, "memory_bytes": d.gpu.memory_bytes, "num_gpus": input.num_gpus,
                 "gpus_per_node": input.gpus_per_node },
        "instances": { "count": input.instances, "per_node": input.instances_per_node(),
                       "gpus": input.instances * p.tp,
                       "remote_gib": p.remote.map(|r| r.gib), "remote": p.remote },
        "vllm_version": d.knobs.version.to_string(),
        "tensor_parallel_size": p.tp,
        "upstream_tp_rule": p.tp_rule.as_ref().map(|r| json!({
            "weights_gib": round3(r.weights_gib), "usable_gib_per_gpu": round3(r.usable_gib_per_gpu),
            "gpus_needed": r.gpus_needed, "tp": r.tp,
        })),
        "vllm_serve_flags": flags,
        "gpu_kv": {
            "requested_bytes": k.requested_bytes, "weights_bytes_per_gpu": k.weights_bytes,
            "activation_bytes": k.activation_bytes, "non_torch_bytes": k.non_torch_bytes,
            "cuda_graph_bytes": k.cuda_graph_bytes, "available_kv_bytes": k.available_kv_bytes,
            "kv_bytes_per_token": k.bytes_per_token, "page_bytes": k.page_bytes,
            "block_size_tokens": k.block_size, "num_blocks": k.num_blocks,
            "pool_tokens": d.kv_pool_tokens(), "logged_tokens": k.tokens,
            "blocks_per_request": k.blocks_per_request, "max_concurrency": round3(k.max_concurrency),
            "max_model_len_tokens": k.max_model_len, "max_num_batched_tokens": k.max_num_batched_tokens,
            "max_num_seqs": k.max_num_seqs,
        },
        "cpu_offload": {
            "offload_gib_per_gpu": round3(o.offload_gib), "lmcache_max_local_cpu_size_gib": o.max_local_cpu_size_gib,
            "limited_by": o.limited_by, "tokens_storable": o.tokens_storable,
            "cpu_ram_bytes_per_node": input.cpu_ram_bytes, "memlock_bytes": input.memlock_bytes,
        },
        "workload": { "num_documents": p.num_documents, "document_length_tokens": w.document_length,
                      "output_len_tokens": w.output_len, "max_inflight_requests": w.max_inflight_requests },
        "regimes": p.regimes,
        "warnings": p.warnings.iter().map(|w| json!({"warning": w, "message": warning_text(w)})).collect::<Vec<_>>(),
        "commands_text": blocks,
    })
}
