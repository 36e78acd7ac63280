//! One deployment: a model on a GPU at a tensor-parallel size with vLLM's knobs, checked
//! to start and its KV cache sized once. `ldqa recommend` plans it, `ldqa predict` and
//! `ldqa serve` simulate it, `ldqa ab` deploys it: all from this one value, so they all
//! see the same GPU KV capacity.
//!
//! vLLM refuses to start when the tensor-parallel size does not divide the attention
//! heads, when weights, the profiled activation peak and runtime overheads leave no
//! memory for the KV cache, or when one request of `max_model_len` tokens does not fit
//! the cache. [`Deployment::new`] refuses the same deployments, saying what to change;
//! without a TP size it picks the smallest power of two at which vLLM starts.

use ldqa_specs::{GpuSpec, ModelSpec};

use crate::error::RecommendError;
use crate::vllm::{gpu_kv_capacity, KvSizing, VllmKnobs};

const GIB: f64 = ldqa_specs::GIB_BYTES as f64;

/// Tensor-parallel sizes tried, smallest first, when none is given.
const TP_CANDIDATES: [u32; 7] = [1, 2, 4, 8, 16, 32, 64];

/// A deployment vLLM starts, with its KV cache per GPU.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The model.
    pub model: ModelSpec,
    /// One GPU of the deployment (all are alike).
    pub gpu: GpuSpec,
    /// Tensor-parallel size (GPUs per replica).
    pub tp: u32,
    /// vLLM's knobs, as `vllm serve` takes them.
    pub knobs: VllmKnobs,
    /// vLLM's KV sizing on each GPU.
    pub kv: KvSizing,
}

impl Deployment {
    /// Sizes `model` on `gpu` at `tp` (or the smallest power of two at which vLLM starts)
    /// and checks that vLLM would start; the error says what to change.
    pub fn new(
        model: ModelSpec,
        gpu: GpuSpec,
        tp: Option<u32>,
        knobs: VllmKnobs,
    ) -> Result<Deployment, RecommendError> {
        knobs.validate()?;
        if let Some(tp) = tp {
            return Deployment::at(model, gpu, tp, knobs);
        }
        let mut last = None;
        for tp in TP_CANDIDATES {
            match Deployment::at(model.clone(), gpu.clone(), tp, knobs.clone()) {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("invariant: at least one TP size was tried"))
    }

    fn at(
        model: ModelSpec,
        gpu: GpuSpec,
        tp: u32,
        knobs: VllmKnobs,
    ) -> Result<Deployment, RecommendError> {
        if tp == 0 {
            return Err(RecommendError::Invalid {
                what: "--tensor-parallel-size",
                problem: "must be at least 1".into(),
            });
        }
        let heads = model.num_attention_heads;
        if !heads.is_multiple_of(tp) {
            return Err(undeployable(
                format!("TP {tp} does not divide the model's {heads} attention heads, so vLLM refuses it"),
                "choose a --tensor-parallel-size that divides them",
            ));
        }
        let kv = gpu_kv_capacity(&model, &gpu, tp, &knobs)?;
        let d = Deployment {
            model,
            gpu,
            tp,
            knobs,
            kv,
        };
        d.check_memory()?;
        Ok(d)
    }

    fn check_memory(&self) -> Result<(), RecommendError> {
        let k = &self.kv;
        if k.num_blocks == 0 {
            let g = |b: u64| b as f64 / GIB;
            return Err(undeployable(
                format!(
                    "at TP {} the weights ({:.1} GiB per GPU), the activation peak ({:.1} GiB) and runtime overheads ({:.1} GiB) leave no room for the KV cache in {:.2} x {:.1} GiB of {}",
                    self.tp,
                    g(k.weights_bytes),
                    g(k.activation_bytes),
                    g(k.non_torch_bytes + k.cuda_graph_bytes),
                    self.knobs.gpu_memory_utilization,
                    self.gpu.memory_gib(),
                    self.gpu.name,
                ),
                "raise --tensor-parallel-size or --gpu-memory-utilization, or pick a larger GPU",
            ));
        }
        if !k.fits_one_request() {
            return Err(undeployable(
                format!(
                    "at TP {} one request of max_model_len {} tokens needs {} KV blocks but {} holds {}, so vLLM refuses to start",
                    self.tp, k.max_model_len, k.blocks_per_request, self.gpu.name, k.num_blocks
                ),
                "lower --max-model-len, or raise --tensor-parallel-size or --gpu-memory-utilization",
            ));
        }
        Ok(())
    }

    /// Tokens of full-attention KV the GPU pool holds: whole blocks, `num_blocks ×
    /// block_size`, shared among the KV groups of a hybrid (sliding-window) model as vLLM
    /// 0.10 counts them. This is what the simulated engine caches (it models one group)
    /// and what `ldqa serve` announces.
    pub fn kv_pool_tokens(&self) -> u64 {
        self.kv.num_blocks / self.kv.num_groups.max(1) * self.kv.block_size
    }

    /// The `vllm serve` flags this deployment needs beyond the model: the TP size, then
    /// every knob that differs from vLLM's default, so that copying the command deploys
    /// what was computed.
    pub fn vllm_serve_flags(&self) -> Vec<String> {
        let k = &self.knobs;
        let mut flags = vec![format!("--tensor-parallel-size {}", self.tp)];
        if k.gpu_memory_utilization != VllmKnobs::default().gpu_memory_utilization {
            flags.push(format!(
                "--gpu-memory-utilization {}",
                k.gpu_memory_utilization
            ));
        }
        let optional = [
            ("--max-model-len", k.max_model_len),
            ("--max-num-batched-tokens", k.max_num_batched_tokens),
            ("--max-num-seqs", k.max_num_seqs),
            ("--block-size", k.block_size),
            ("--num-gpu-blocks-override", k.num_gpu_blocks_override),
        ];
        for (flag, value) in optional {
            if let Some(v) = value {
                flags.push(format!("{flag} {v}"));
            }
        }
        if k.kv_cache_dtype != ldqa_specs::KvDtype::Auto {
            flags.push(format!(
                "--kv-cache-dtype {}",
                kv_dtype_flag(k.kv_cache_dtype)
            ));
        }
        if k.enforce_eager {
            flags.push("--enforce-eager".into());
        }
        flags
    }
}

/// vLLM's spelling of a KV dtype (the sizes of its fp8 variants are equal).
fn kv_dtype_flag(d: ldqa_specs::KvDtype) -> &'static str {
    match d {
        ldqa_specs::KvDtype::Auto => "auto",
        ldqa_specs::KvDtype::Bf16 => "bfloat16",
        ldqa_specs::KvDtype::Fp8 => "fp8",
        ldqa_specs::KvDtype::Fp8DsMla => "fp8_ds_mla",
    }
}

fn undeployable(reason: String, fix: &'static str) -> RecommendError {
    RecommendError::Undeployable { reason, fix }
}
