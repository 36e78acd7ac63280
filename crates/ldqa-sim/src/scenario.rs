//! From catalog specs to an engine: [`build`] turns a [`ModelSpec`], a [`GpuSpec`], a TP
//! size, a mode and vLLM's knobs into an [`EngineConfig`] and the [`Efficiencies`] to run it with.
//!
//! - GPU KV capacity: `ldqa_recommend::gpu_kv_capacity` (vLLM's own accounting), in whole
//!   blocks: `num_blocks × block_size`.
//! - TP, when not given: upstream's recommender rule ([`default_tp`]).
//! - LMCache CPU tier, when not given: upstream's `LMCACHE_MAX_LOCAL_CPU_SIZE` rule
//!   ([`default_lmcache_cpu_gib`]: GPU KV GiB + 120k tokens' worth, as the recommender
//!   computes it, with no host-RAM cap: a plan for a machine, not this one).
//! - Efficiencies: the GPU's fitted set when `data/efficiencies.json` has one
//!   (only `h100-80gb` today). Otherwise the fallback is the reference GPU's fitted set
//!   ([`REFERENCE_GPU`]) applied to *this* GPU's own peaks (FLOP/s, HBM, PCIe, NVLink):
//!   efficiencies are fractions of peak and fixed CPU costs, which transfer between
//!   GPUs of one generation better than any absolute number. Such scenarios are flagged
//!   [`Scenario::calibrated`] = false and callers must say so in their output.

use ldqa_recommend::plan::{upstream_offload, upstream_tp};
use ldqa_recommend::{gpu_kv_capacity, KvSizing, VllmKnobs};
use ldqa_specs::{GpuSpec, KvDtype, ModelSpec};

use crate::config::{DEFAULT_BLOCK_SIZE_TOKENS, DEFAULT_LMCACHE_CHUNK_TOKENS};
use crate::{Efficiencies, EngineConfig, GpuShape, Mode, ModelShape, SimError};

/// The GPU whose fitted efficiencies stand in for GPUs that have none.
pub const REFERENCE_GPU: &str = "h100-80gb";

const GIB: u64 = 1 << 30;

/// Which engine to simulate, as a caller chooses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineMode {
    /// vLLM with its GPU prefix cache only.
    Vllm,
    /// vLLM + LMCache; `cpu_gib_per_rank` = `LMCACHE_MAX_LOCAL_CPU_SIZE` (GiB per GPU),
    /// `None` = the recommender's rule.
    Lmcache { cpu_gib_per_rank: Option<f64> },
}

/// A resolved scenario: what the engine runs with, and how it was derived.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub config: EngineConfig,
    pub efficiencies: Efficiencies,
    /// Whether the efficiencies were fitted on this GPU (false: [`REFERENCE_GPU`]'s, see module docs).
    pub calibrated: bool,
    /// vLLM's KV sizing per rank, as `ldqa recommend` computes it.
    pub kv: KvSizing,
    /// LMCache CPU size per rank in GiB (`None` in vLLM mode).
    pub cpu_gib_per_rank: Option<f64>,
    /// The model's name (for descriptions).
    pub model_name: String,
}

impl Scenario {
    /// Tokens the LMCache CPU tier holds (0 in vLLM mode).
    pub fn cpu_tier_tokens(&self) -> u64 {
        self.config.cpu_chunks() * u64::from(self.config.lmcache_chunk_tokens)
    }
}

/// vLLM's knobs as `vllm serve` sets them (the simulated engine is a server): the
/// recommender's defaults with the `Serve` usage context.
pub fn serve_knobs() -> VllmKnobs {
    VllmKnobs {
        usage: ldqa_recommend::UsageContext::Serve,
        ..VllmKnobs::default()
    }
}

/// Upstream's TP rule: the weights over what one GPU can spare, to a power of two.
pub fn default_tp(model: &ModelSpec, gpu: &GpuSpec) -> Result<u32, SimError> {
    Ok(upstream_tp(model.weight_bytes, gpu.memory_bytes)?.tp)
}

/// Upstream's `LMCACHE_MAX_LOCAL_CPU_SIZE` (GiB per rank) for this model, GPU and TP: the
/// recommender profiles with the `LLM` class, so the KV it starts from is sized with that
/// usage context whatever `knobs.usage` says; no host-RAM or memlock cap.
pub fn default_lmcache_cpu_gib(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    knobs: &VllmKnobs,
) -> Result<u64, SimError> {
    let llm = VllmKnobs {
        usage: ldqa_recommend::UsageContext::LlmClass,
        ..knobs.clone()
    };
    let kv = gpu_kv_capacity(model, gpu, tp, &llm)?;
    Ok(upstream_offload(&kv, tp, None, None).max_local_cpu_size_gib)
}

/// The cost model's view of a model (KV of the whole model at TP 1 in `kv_dtype`).
pub fn model_shape(model: &ModelSpec, kv_dtype: KvDtype) -> ModelShape {
    let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    ModelShape {
        layers: model.num_layers,
        hidden: sat(model.hidden_size),
        heads: model.num_attention_heads,
        kv_heads: model.num_kv_heads.max(1),
        head_dim: model.head_dim,
        intermediate: sat(model.intermediate_size),
        vocab: sat(model.vocab_size),
        active_params: model.active_params,
        tied_embeddings: model.tie_word_embeddings,
        weight_bytes: model.weight_bytes,
        kv_bytes_per_token: model.kv_bytes_per_token(1, kv_dtype),
        activation_bytes: model.dtype_bytes.min(2),
    }
}

/// NVLink bandwidth per direction per GPU, bytes/s, for GPUs on an NVSwitch fabric
/// (NVIDIA datasheets: H100/H200 SXM 900 GB/s bidirectional, B200 1.8 TB/s, A100 SXM
/// 600 GB/s). Other GPUs all-reduce over PCIe at the host-link rate.
fn nvlink_bytes_per_s(gpu: &GpuSpec) -> Option<f64> {
    if !gpu.nvswitch {
        return None;
    }
    let n = gpu.name.as_str();
    Some(if n.starts_with("b200") {
        900e9
    } else if n.starts_with("a100") {
        300e9
    } else {
        450e9
    })
}

/// The cost model's view of a GPU; an error when the catalog lacks its peaks.
pub fn gpu_shape(gpu: &GpuSpec) -> Result<GpuShape, SimError> {
    for (v, what) in [
        (gpu.bf16_flops, "BF16 FLOP/s"),
        (gpu.hbm_bytes_per_s, "memory bandwidth"),
        (gpu.host_link_bytes_per_s, "host link bandwidth"),
    ] {
        if v == 0 {
            return Err(SimError::GpuPeaksUnknown {
                gpu: gpu.name.clone(),
                what,
            });
        }
    }
    let host = gpu.host_link_bytes_per_s as f64;
    Ok(GpuShape {
        name: gpu.name.clone(),
        flops: gpu.bf16_flops as f64,
        hbm_bytes_per_s: gpu.hbm_bytes_per_s as f64,
        host_link_bytes_per_s: host,
        interconnect_bytes_per_s: nvlink_bytes_per_s(gpu).unwrap_or(host),
    })
}

/// The GPU's fitted efficiencies, or [`REFERENCE_GPU`]'s (second value false) when it has none.
pub fn efficiencies_for(gpu: &GpuSpec) -> Result<(Efficiencies, bool), SimError> {
    match Efficiencies::for_gpu(&gpu.name) {
        Ok(e) => Ok((e, true)),
        Err(SimError::UnknownGpu(_)) => Ok((Efficiencies::for_gpu(REFERENCE_GPU)?, false)),
        Err(e) => Err(e),
    }
}

/// Builds the engine configuration of one scenario. `tp` `None` = [`default_tp`].
pub fn build(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: Option<u32>,
    mode: EngineMode,
    knobs: &VllmKnobs,
) -> Result<Scenario, SimError> {
    let tp = match tp {
        Some(t) => t,
        None => default_tp(model, gpu)?,
    };
    let gpu_shape = gpu_shape(gpu)?;
    let (efficiencies, calibrated) = efficiencies_for(gpu)?;
    let kv = gpu_kv_capacity(model, gpu, tp, knobs)?;
    let block = u32::try_from(kv.block_size).unwrap_or(DEFAULT_BLOCK_SIZE_TOKENS);
    if kv.num_blocks == 0 {
        return Err(SimError::NoKvMemory {
            model: model.name.clone(),
            gpu: gpu.name.clone(),
            tp,
            weights_gib: kv.weights_bytes as f64 / GIB as f64,
        });
    }
    let (mode, cpu_gib) = match mode {
        EngineMode::Vllm => (Mode::Vllm, None),
        EngineMode::Lmcache { cpu_gib_per_rank } => {
            let gib = match cpu_gib_per_rank {
                Some(g) if g.is_finite() && g > 0.0 => g,
                Some(g) => {
                    return Err(SimError::InvalidConfig {
                        field: "lmcache_cpu_gib",
                        reason: format!("{g} is not a positive number of GiB"),
                    })
                }
                None => default_lmcache_cpu_gib(model, gpu, tp, knobs)? as f64,
            };
            let bytes = (gib * GIB as f64) as u64;
            (
                Mode::Lmcache {
                    cpu_bytes_per_rank: bytes,
                },
                Some(gib),
            )
        }
    };
    let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let config = EngineConfig {
        model: model_shape(model, knobs.kv_cache_dtype),
        gpu: gpu_shape,
        tp,
        mode,
        gpu_kv_tokens: kv.num_blocks * kv.block_size,
        max_num_batched_tokens: sat(kv.max_num_batched_tokens),
        max_num_seqs: sat(kv.max_num_seqs),
        block_size_tokens: block,
        max_model_len_tokens: kv.max_model_len,
        lmcache_chunk_tokens: DEFAULT_LMCACHE_CHUNK_TOKENS,
    };
    config.validate()?;
    Ok(Scenario {
        config,
        efficiencies,
        calibrated,
        kv,
        cpu_gib_per_rank: cpu_gib,
        model_name: model.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_specs::catalog;

    fn llama8b() -> ModelSpec {
        catalog::model("meta-llama/Llama-3.1-8B-Instruct").unwrap()
    }

    #[test]
    fn seed_8b_h100_defaults() {
        let gpu = catalog::gpu("h100-80gb").unwrap();
        let m = llama8b();
        assert_eq!(default_tp(&m, &gpu).unwrap(), 1);
        assert_eq!(
            default_lmcache_cpu_gib(&m, &gpu, 1, &serve_knobs()).unwrap(),
            66
        );
        let s = build(
            &m,
            &gpu,
            None,
            EngineMode::Lmcache {
                cpu_gib_per_rank: None,
            },
            &serve_knobs(),
        )
        .unwrap();
        assert!(s.calibrated);
        assert_eq!(s.config.max_num_batched_tokens, 8192);
        assert_eq!(s.config.max_num_seqs, 1024);
        assert_eq!(s.config.model.kv_bytes_per_token, 131_072);
        assert_eq!(s.config.gpu_kv_tokens, s.kv.num_blocks * 16);
        // vLLM 0.8 `serve` logged 447,088 tokens for this setup (reference A.7 row 5).
        let v08 = VllmKnobs {
            version: ldqa_recommend::VllmVersion(0, 8, 0),
            ..serve_knobs()
        };
        let old = build(&m, &gpu, Some(1), EngineMode::Vllm, &v08).unwrap();
        let kv = old.config.gpu_kv_tokens as f64;
        assert!((kv / 447_088.0 - 1.0).abs() < 0.01, "{kv}");
        assert_eq!(s.cpu_gib_per_rank, Some(66.0));
        assert_eq!(s.cpu_tier_tokens(), 66 * 8192 / 256 * 256);
    }

    #[test]
    fn uncalibrated_gpu_uses_reference_efficiencies_with_its_own_peaks() {
        let gpu = catalog::gpu("h200").unwrap();
        let s = build(&llama8b(), &gpu, Some(1), EngineMode::Vllm, &serve_knobs()).unwrap();
        assert!(!s.calibrated);
        assert_eq!(
            s.efficiencies,
            Efficiencies::for_gpu(REFERENCE_GPU).unwrap()
        );
        assert_eq!(s.config.gpu.hbm_bytes_per_s, 4.8e12);
    }

    #[test]
    fn gpu_without_peaks_is_a_clear_error() {
        let gpu = GpuSpec::custom("mystery", 80 * GIB);
        let e = build(&llama8b(), &gpu, Some(1), EngineMode::Vllm, &serve_knobs()).unwrap_err();
        assert!(e.to_string().contains("mystery"), "{e}");
    }

    #[test]
    fn model_too_big_is_a_clear_error() {
        let gpu = catalog::gpu("l4").unwrap();
        let m = catalog::model("meta-llama/Llama-3.1-70B-Instruct").unwrap();
        let e = build(&m, &gpu, Some(1), EngineMode::Vllm, &serve_knobs()).unwrap_err();
        assert!(e.to_string().contains("no GPU memory left"), "{e}");
    }

    #[test]
    fn bad_cpu_size_is_rejected() {
        let gpu = catalog::gpu("h100-80gb").unwrap();
        let mode = EngineMode::Lmcache {
            cpu_gib_per_rank: Some(-1.0),
        };
        assert!(build(&llama8b(), &gpu, Some(1), mode, &serve_knobs()).is_err());
    }
}
