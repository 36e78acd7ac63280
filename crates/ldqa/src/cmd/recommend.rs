//! `ldqa recommend`: tensor parallelism, GPU KV cache, LMCache CPU size and workload, computed
//! the way vLLM and LMCache's recommender would, without a GPU.

use anyhow::{bail, Context};
use ldqa_recommend::hardware::{self, GpuSource};
use ldqa_recommend::plan::PlanWarning;
use ldqa_recommend::render::{render_blocks, render_explanation, warning_text};
use ldqa_recommend::{plan, PlanInput, UsageContext, VllmKnobs, VllmVersion, Workload};
use ldqa_specs::{catalog, resolve_model, GpuSpec, KvDtype, ResolveOptions, SpecOrigin};
use serde_json::json;

use crate::exit::ExitStatus;

const GIB: f64 = (1u64 << 30) as f64;

/// Arguments of `ldqa recommend`.
#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// Model: a local directory, a Hub id (HF cache, built-in catalog, then the Hub), or an alias.
    #[arg(long, default_value = "meta-llama/Meta-Llama-3.1-8B-Instruct")]
    model: String,
    /// Plan for this GPU instead of the local one (h100-80gb, h200, a100-80gb, l40s, …).
    #[arg(long)]
    gpu: Option<String>,
    /// Override the GPU memory (GiB, as torch reports it).
    #[arg(long)]
    gpu_memory_gib: Option<f64>,
    /// GPUs available (default: those detected; unlimited when planning with --gpu).
    #[arg(long)]
    num_gpus: Option<u32>,
    /// GPUs per node, for the multi-node note.
    #[arg(long, default_value_t = 8)]
    gpus_per_node: u32,
    /// Host RAM for LMCache, GiB per node (default: MemAvailable from /proc/meminfo).
    #[arg(long)]
    cpu_ram_gib: Option<f64>,
    /// Tensor parallelism (default: upstream's rule).
    #[arg(long)]
    tensor_parallel_size: Option<u32>,
    /// vLLM --gpu-memory-utilization.
    #[arg(long, default_value_t = 0.9)]
    gpu_memory_utilization: f64,
    /// vLLM --max-model-len (default: the model's maximum).
    #[arg(long)]
    max_model_len: Option<u64>,
    /// vLLM --max-num-batched-tokens (default: vLLM's for this GPU and version).
    #[arg(long)]
    max_num_batched_tokens: Option<u64>,
    /// vLLM --max-num-seqs (default: vLLM's).
    #[arg(long)]
    max_num_seqs: Option<u64>,
    /// vLLM --kv-cache-dtype (auto, bf16, fp8, fp8_e4m3, fp8_e5m2, fp8_ds_mla).
    #[arg(long, default_value = "auto")]
    kv_cache_dtype: String,
    /// The vLLM release whose accounting to follow (≥ 0.21 subtracts CUDA-graph memory).
    #[arg(long, default_value = "0.10.1")]
    vllm_version: String,
    /// Size with `vllm serve` batch defaults instead of the `LLM` class upstream profiles with.
    #[arg(long)]
    serve_defaults: bool,
    /// vLLM --enforce-eager (no CUDA graphs).
    #[arg(long)]
    enforce_eager: bool,
    /// Tokens per document.
    #[arg(long, default_value_t = 10_000)]
    document_length: u64,
    /// Output tokens per request.
    #[arg(long, default_value_t = 100)]
    output_len: u64,
    /// Concurrent requests of the workload.
    #[arg(long, default_value_t = 4)]
    max_inflight_requests: u64,
    /// Print every number as JSON (units in the keys).
    #[arg(long)]
    json: bool,
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
    if let Some(name) = &args.gpu {
        let mut gpu = catalog::gpu(name)?;
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
            args.model,
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

/// Run `ldqa recommend`.
pub fn run(args: RecommendArgs) -> anyhow::Result<ExitStatus> {
    let kv_cache_dtype = KvDtype::parse(&args.kv_cache_dtype).with_context(|| {
        format!(
            "unknown --kv-cache-dtype `{}` (auto, bf16, fp8, fp8_e4m3, fp8_e5m2, fp8_ds_mla)",
            args.kv_cache_dtype
        )
    })?;
    let version = VllmVersion::parse(&args.vllm_version)?;
    if args.document_length == 0 || args.max_inflight_requests == 0 {
        bail!("--document-length and --max-inflight-requests must be at least 1");
    }
    let (model, origin) = resolve_model(&args.model, &ResolveOptions::from_env())?;
    // A short catalog alias (`llama-3.1-8b`) is no name `vllm serve` knows: print the
    // model's repository name instead. Full names and paths are printed as given.
    let served_name = if origin == SpecOrigin::Catalog && !args.model.contains('/') {
        model.name.clone()
    } else {
        args.model.clone()
    };
    let hw = hardware(&args)?;
    let cpu_ram_bytes = match args.cpu_ram_gib {
        Some(g) => Some(gib_to_bytes(g, "--cpu-ram-gib")?),
        None => hardware::host_ram_available_bytes(),
    };
    let workload = Workload {
        document_length: args.document_length,
        output_len: args.output_len,
        max_inflight_requests: args.max_inflight_requests,
    };
    let input = PlanInput {
        model,
        gpu: hw.gpu,
        num_gpus: hw.num_gpus,
        gpus_per_node: args.gpus_per_node.max(1),
        tp_override: args.tensor_parallel_size,
        knobs: VllmKnobs {
            gpu_memory_utilization: args.gpu_memory_utilization,
            max_model_len: args.max_model_len,
            max_num_batched_tokens: args.max_num_batched_tokens,
            max_num_seqs: args.max_num_seqs,
            kv_cache_dtype,
            version,
            usage: if args.serve_defaults {
                UsageContext::Serve
            } else {
                UsageContext::LlmClass
            },
            enforce_eager: args.enforce_eager,
            ..VllmKnobs::default()
        },
        cpu_ram_bytes,
        memlock_bytes: hw.memlock_bytes,
        workload,
    };
    let p = plan(&input)?;
    let blocks = render_blocks(
        &served_name,
        p.tp,
        p.offload.max_local_cpu_size_gib,
        p.num_documents,
        &workload,
    );
    if args.json {
        let k = &p.kv;
        let o = &p.offload;
        let v = json!({
            "schema_version": 1,
            "model": {
                "name": input.model.name, "source": input.model.source,
                "total_params": input.model.total_params, "active_params": input.model.active_params,
                "weight_bytes": input.model.weight_bytes, "num_layers": input.model.num_layers,
                "num_kv_heads": input.model.num_kv_heads, "head_dim": input.model.head_dim,
            },
            "gpu": { "name": input.gpu.name, "memory_bytes": input.gpu.memory_bytes, "memory_gib": input.gpu.memory_gib(),
                      "num_gpus": input.num_gpus },
            "vllm_version": version.to_string(),
            "tensor_parallel_size": p.tp,
            "tp_rule": { "weights_gib": p.tp_rule.weights_gib, "usable_gib_per_gpu": p.tp_rule.usable_gib_per_gpu,
                          "gpus_needed": p.tp_rule.gpus_needed, "tensor_parallel_size": p.tp_rule.tp },
            "gpu_kv": {
                "requested_bytes": k.requested_bytes, "weights_bytes_per_gpu": k.weights_bytes,
                "activation_bytes": k.activation_bytes, "non_torch_bytes": k.non_torch_bytes,
                "cuda_graph_bytes": k.cuda_graph_bytes, "available_kv_bytes": k.available_kv_bytes,
                "available_kv_gib": k.available_kv_bytes as f64 / GIB, "kv_bytes_per_token": k.bytes_per_token,
                "page_bytes": k.page_bytes, "block_size_tokens": k.block_size, "num_blocks": k.num_blocks,
                "tokens": k.tokens, "blocks_per_request": k.blocks_per_request, "max_concurrency": k.max_concurrency,
                "max_model_len_tokens": k.max_model_len, "max_num_batched_tokens": k.max_num_batched_tokens,
                "max_num_seqs": k.max_num_seqs,
            },
            "cpu_offload": {
                "kv_gib_per_gpu": o.kv_gib_per_gpu, "gib_per_1k_tokens": o.gib_per_1k_tokens,
                "offload_gib_per_gpu": o.offload_gib, "lmcache_max_local_cpu_size_gib": o.max_local_cpu_size_gib,
                "limited_by": o.limited_by, "tokens_storable": o.tokens_storable,
                "cpu_ram_bytes": cpu_ram_bytes, "memlock_bytes": input.memlock_bytes,
            },
            "workload": { "num_documents": p.num_documents, "document_length_tokens": workload.document_length,
                          "output_len_tokens": workload.output_len, "max_inflight_requests": workload.max_inflight_requests },
            "regimes": p.regimes,
            "warnings": p.warnings.iter().map(|w| json!({"warning": w, "message": warning_text(w)})).collect::<Vec<_>>(),
            "commands_text": blocks,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!(
            "{}",
            render_explanation(&p, &input.model, &input.gpu, &workload)
        );
        print!("{blocks}");
    }
    for w in &p.warnings {
        eprintln!("warning: {}", warning_text(w));
    }
    let short = p
        .warnings
        .iter()
        .any(|w| matches!(w, PlanWarning::FewerGpusThanNeeded { .. }));
    // Too few GPUs for the TP it needs: the plan cannot be deployed, an error (exit 2).
    Ok(if short {
        ExitStatus::Error
    } else {
        ExitStatus::Success
    })
}
