//! From a deployment to an engine: [`build`] turns an `ldqa_recommend::Deployment` (model,
//! GPU, TP, vLLM's knobs, KV sized once) and a mode into an [`EngineConfig`] and the
//! [`Efficiencies`] to run it with.
//!
//! - GPU KV capacity: the deployment's, in whole blocks: `num_blocks × block_size`
//!   ([`Deployment::kv_pool_tokens`]), so `recommend`, `predict` and `serve` agree.
//! - LMCache CPU tier, when not given: upstream's `LMCACHE_MAX_LOCAL_CPU_SIZE` rule
//!   ([`default_lmcache_cpu_gib`]: GPU KV GiB + 120k tokens' worth, as the recommender
//!   computes it, with no host-RAM cap: a plan for a machine, not this one).
//! - Step costs ([`CostSource`]): the GPU's measured kernel curves where `data/kernels/`
//!   covers it ([`KernelProfile`]), with the fixed costs the tables leave out fitted on
//!   [`REFERENCE_GPU`] (the seed's runs); else the GPU's fitted fractions of peak when
//!   `data/efficiencies.json` has them; else the reference GPU's fitted fractions applied
//!   to *this* GPU's own peaks (FLOP/s, HBM, PCIe, NVLink), which are flagged uncalibrated
//!   and callers must say so in their output.

use ldqa_recommend::plan::upstream_offload;
use ldqa_recommend::{Deployment, KvSizing};
use ldqa_specs::{GpuSpec, KvDtype, ModelSpec};

use crate::config::{DEFAULT_BLOCK_SIZE_TOKENS, DEFAULT_LMCACHE_CHUNK_TOKENS};
use crate::kernels::{KernelProfile, KernelSource};
use crate::{Efficiencies, EngineConfig, GpuShape, Mode, ModelShape, SimError};

/// The GPU whose fitted efficiencies stand in for GPUs that have none.
pub const REFERENCE_GPU: &str = "h100-80gb";

use ldqa_specs::GIB_BYTES as GIB;

/// Which engine to simulate, as a caller chooses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineMode {
    /// vLLM with its GPU prefix cache only.
    Vllm,
    /// vLLM + LMCache; `cpu_gib_per_rank` = `LMCACHE_MAX_LOCAL_CPU_SIZE` (GiB per GPU),
    /// `None` = the recommender's rule.
    Lmcache {
        /// GiB per GPU; `None` = the recommender's rule.
        cpu_gib_per_rank: Option<f64>,
    },
}

/// A resolved scenario: what the engine runs with, and how it was derived.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The engine's inputs.
    pub config: EngineConfig,
    /// The fitted efficiencies it runs with (and the kernel curves, when it has them).
    pub efficiencies: Efficiencies,
    /// Where its step costs come from.
    pub cost_source: CostSource,
    /// vLLM's KV sizing per rank, as `ldqa recommend` computes it.
    pub kv: KvSizing,
    /// LMCache CPU size per rank in GiB (`None` in vLLM mode).
    pub cpu_gib_per_rank: Option<f64>,
    /// The model's name (for descriptions).
    pub model_name: String,
}

/// Where a scenario's step costs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CostSource {
    /// The GPU's measured kernel curves; the fixed costs fitted on `fixed_costs_from`.
    Kernels {
        /// The GPU the curves were measured on.
        gpu: String,
        /// Where they came from.
        source: KernelSource,
        /// The GPU whose runs the fixed costs were fitted to.
        fixed_costs_from: String,
    },
    /// Fractions of peak fitted on this GPU.
    Fitted {
        /// The GPU.
        gpu: String,
    },
    /// [`REFERENCE_GPU`]'s fractions of peak applied to `gpu`'s peaks: uncalibrated.
    Reference {
        /// The GPU simulated.
        gpu: String,
    },
    /// A profile measured on a running server (`ldqa calibrate`).
    Measured {
        /// The server's URL.
        server: String,
    },
}

impl CostSource {
    /// False only for [`CostSource::Reference`].
    pub fn calibrated(&self) -> bool {
        !matches!(self, CostSource::Reference { .. })
    }

    /// A few words for a table, e.g. `kernel tables (aiconfigurator 095f58a)`.
    pub fn short(&self) -> String {
        match self {
            CostSource::Kernels { source, .. } => format!(
                "kernel tables ({} {})",
                source.repository_name(),
                source.short_commit()
            ),
            CostSource::Fitted { .. } => "fitted".into(),
            CostSource::Reference { .. } => format!("{REFERENCE_GPU}'s, on its peaks"),
            CostSource::Measured { .. } => "measured on a server".into(),
        }
    }

    /// One line for people, e.g. `aiconfigurator kernel tables for l40s (commit 095f58a,
    /// Apache-2.0); fixed costs fitted on h100-80gb`.
    pub fn describe(&self) -> String {
        match self {
            CostSource::Kernels {
                gpu,
                source,
                fixed_costs_from,
            } => format!(
                "{} kernel tables for {gpu} (commit {}, {}); fixed costs fitted on {fixed_costs_from}",
                source.repository_name(),
                source.short_commit(),
                source.licence
            ),
            CostSource::Fitted { gpu } => format!("fractions of peak fitted on {gpu}"),
            CostSource::Reference { gpu } => format!(
                "UNCALIBRATED: {REFERENCE_GPU}'s fitted fractions applied to {gpu}'s peaks"
            ),
            CostSource::Measured { server } => format!("measured on {server}"),
        }
    }
}

impl Scenario {
    /// Whether its step costs rest on measurements of this GPU or server.
    pub fn calibrated(&self) -> bool {
        self.cost_source.calibrated()
    }

    /// Tokens the LMCache CPU tier holds (0 in vLLM mode).
    pub fn cpu_tier_tokens(&self) -> u64 {
        self.config.cpu_chunks() * u64::from(self.config.lmcache_chunk_tokens)
    }
}

/// Upstream's `LMCACHE_MAX_LOCAL_CPU_SIZE` (GiB per rank) for this deployment, with no
/// host-RAM or memlock cap: a plan for a machine, not this one.
pub fn default_lmcache_cpu_gib(deployment: &Deployment) -> u64 {
    upstream_offload(&deployment.kv, 1, None, None).max_local_cpu_size_gib
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
        // NVLink on NVSwitch systems (the catalog's figure), else all-reduce over PCIe.
        interconnect_bytes_per_s: gpu.nvlink_bytes_per_s.map_or(host, |b| b as f64),
    })
}

/// The efficiencies (and kernel curves) `gpu` is simulated with, and where they come from.
pub fn efficiencies_for(gpu: &GpuSpec) -> Result<(Efficiencies, CostSource), SimError> {
    if let Some(profile) = KernelProfile::for_gpu(&gpu.name) {
        let eff = Efficiencies::with_kernels(profile.kernels.clone())?;
        let source = CostSource::Kernels {
            gpu: profile.gpu,
            source: profile.source,
            fixed_costs_from: REFERENCE_GPU.to_string(),
        };
        return Ok((eff, source));
    }
    match Efficiencies::for_gpu(&gpu.name) {
        Ok(e) => Ok((
            e,
            CostSource::Fitted {
                gpu: gpu.name.clone(),
            },
        )),
        Err(SimError::UnknownGpu(_)) => Ok((
            Efficiencies::for_gpu(REFERENCE_GPU)?,
            CostSource::Reference {
                gpu: gpu.name.clone(),
            },
        )),
        Err(e) => Err(e),
    }
}

/// Builds the engine of one scenario: `deployment` in `mode`.
pub fn build(deployment: &Deployment, mode: EngineMode) -> Result<Scenario, SimError> {
    let Deployment {
        model, gpu, tp, kv, ..
    } = deployment;
    let tp = *tp;
    let gpu_shape = gpu_shape(gpu)?;
    let (efficiencies, cost_source) = efficiencies_for(gpu)?;
    let block = u32::try_from(kv.block_size).unwrap_or(DEFAULT_BLOCK_SIZE_TOKENS);
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
                None => default_lmcache_cpu_gib(deployment) as f64,
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
        model: model_shape(model, deployment.knobs.kv_cache_dtype),
        gpu: gpu_shape,
        tp,
        mode,
        gpu_kv_tokens: deployment.kv_pool_tokens(),
        max_num_batched_tokens: sat(kv.max_num_batched_tokens),
        max_num_seqs: sat(kv.max_num_seqs),
        block_size_tokens: block,
        max_model_len_tokens: kv.max_model_len,
        lmcache_chunk_tokens: DEFAULT_LMCACHE_CHUNK_TOKENS,
        uncached_blocks_reused_first: deployment.knobs.version.reuses_uncached_blocks_first(),
        admit_whole_prompts_only: deployment.knobs.version.admits_whole_prompts_only(),
    };
    config.validate()?;
    Ok(Scenario {
        config,
        efficiencies,
        cost_source,
        kv: kv.clone(),
        cpu_gib_per_rank: cpu_gib,
        model_name: model.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_recommend::{VllmKnobs, VllmVersion};
    use ldqa_specs::catalog;

    fn deployment(model: &str, gpu: &str, tp: Option<u32>, knobs: VllmKnobs) -> Deployment {
        let m = catalog::model(model).unwrap();
        Deployment::new(m, catalog::gpu(gpu).unwrap(), tp, knobs).unwrap()
    }

    fn llama8b(gpu: &str) -> Deployment {
        deployment(
            "meta-llama/Llama-3.1-8B-Instruct",
            gpu,
            None,
            VllmKnobs::default(),
        )
    }

    #[test]
    fn seed_8b_h100_defaults() {
        let d = llama8b("h100-80gb");
        assert_eq!(d.tp, 1);
        assert_eq!(default_lmcache_cpu_gib(&d), 66);
        let lmcache = EngineMode::Lmcache {
            cpu_gib_per_rank: None,
        };
        let s = build(&d, lmcache).unwrap();
        assert!(s.calibrated());
        assert_eq!(s.config.max_num_batched_tokens, 8192);
        assert_eq!(s.config.max_num_seqs, 1024);
        assert_eq!(s.config.max_model_len_tokens, 131_072);
        assert_eq!(s.config.model.kv_bytes_per_token, 131_072);
        assert_eq!(s.config.gpu_kv_tokens, d.kv_pool_tokens());
        // vLLM 0.8 `serve` logged 447,088 tokens for this setup (reference A.7 row 5).
        let v08 = VllmKnobs {
            version: VllmVersion(0, 8, 0),
            ..VllmKnobs::default()
        };
        let old = deployment(
            "meta-llama/Llama-3.1-8B-Instruct",
            "h100-80gb",
            Some(1),
            v08,
        );
        let kv = build(&old, EngineMode::Vllm).unwrap().config.gpu_kv_tokens as f64;
        assert!((kv / 447_088.0 - 1.0).abs() < 0.01, "{kv}");
        assert_eq!(s.cpu_gib_per_rank, Some(66.0));
        assert_eq!(s.cpu_tier_tokens(), 66 * 8192 / 256 * 256);
    }

    #[test]
    fn gpus_with_kernel_tables_use_them_with_the_fitted_fixed_costs() {
        for gpu in KernelProfile::known_gpus() {
            let s = build(&llama8b(gpu), EngineMode::Vllm).unwrap();
            assert!(s.calibrated(), "{gpu}");
            assert!(s.efficiencies.kernels.is_some(), "{gpu}");
            let CostSource::Kernels {
                gpu: measured_on,
                fixed_costs_from,
                ..
            } = &s.cost_source
            else {
                panic!("{gpu}: {:?}", s.cost_source);
            };
            assert_eq!(
                (measured_on.as_str(), fixed_costs_from.as_str()),
                (gpu, REFERENCE_GPU)
            );
            assert!(s.cost_source.describe().contains("kernel tables"));
        }
    }

    #[test]
    fn uncalibrated_gpu_uses_reference_efficiencies_with_its_own_peaks() {
        let s = build(&llama8b("rtx-4090"), EngineMode::Vllm).unwrap();
        assert!(!s.calibrated());
        assert!(s.cost_source.describe().starts_with("UNCALIBRATED"));
        assert_eq!(
            s.efficiencies,
            Efficiencies::for_gpu(REFERENCE_GPU).unwrap()
        );
        assert_eq!(s.config.gpu.hbm_bytes_per_s, 1.008e12);
    }

    #[test]
    fn gpu_without_peaks_is_a_clear_error() {
        let m = catalog::model("meta-llama/Llama-3.1-8B-Instruct").unwrap();
        let gpu = GpuSpec::custom("mystery", 80 * GIB);
        let d = Deployment::new(m, gpu, Some(1), VllmKnobs::default()).unwrap();
        let e = build(&d, EngineMode::Vllm).unwrap_err();
        assert!(e.to_string().contains("mystery"), "{e}");
    }

    #[test]
    fn bad_cpu_size_is_rejected() {
        let mode = EngineMode::Lmcache {
            cpu_gib_per_rank: Some(-1.0),
        };
        assert!(build(&llama8b("h100-80gb"), mode).is_err());
    }
}
