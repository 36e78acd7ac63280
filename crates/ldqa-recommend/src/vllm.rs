//! GPU KV-cache sizing the way vLLM does it (reference `kv-sizing-lmcache-gpus.md` A.1–A.5).
//!
//! `available = total × util − weights/rank − activation peak − non-torch [− CUDA graphs ≥ v0.21]`,
//! then pages, blocks and the logged token count per era. Overheads that vLLM measures by
//! profiling are estimated here; the constants are calibrated on the logged rows of A.6/A.7 and on
//! the seed's two examples (see each constant).

use ldqa_specs::{AttentionKind, GpuClass, GpuSpec, KvDtype, ModelSpec};
use serde::Serialize;

use crate::error::RecommendError;

use ldqa_specs::GIB_BYTES as GIB;
const MIB: u64 = 1 << 20;

/// A vLLM release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct VllmVersion(pub u32, pub u32, pub u32);

impl VllmVersion {
    /// The default: the 0.10 era, when upstream's recommender comment was written (A.7 row 23).
    pub const DEFAULT: VllmVersion = VllmVersion(0, 10, 1);

    /// Parse `0.10.1`, `v0.21`, `0.8`.
    pub fn parse(s: &str) -> Result<VllmVersion, RecommendError> {
        let t = s.trim().trim_start_matches('v');
        let core = t.split(['+', '-', 'r']).next().unwrap_or(t);
        let mut it = core.split('.').map(str::parse::<u32>);
        let bad = || RecommendError::BadVersion(s.to_string());
        let major = it.next().ok_or_else(bad)?.map_err(|_| bad())?;
        let minor = it.next().unwrap_or(Ok(0)).map_err(|_| bad())?;
        let patch = it.next().unwrap_or(Ok(0)).map_err(|_| bad())?;
        Ok(VllmVersion(major, minor, patch))
    }

    fn at_least(self, minor: u32) -> bool {
        self >= VllmVersion(0, minor, 0)
    }

    /// Whether a freed block without a hash (a prompt's partial last block, decode blocks)
    /// goes to the *front* of the free queue, reused before any cached block, instead of
    /// the back with the rest (vLLM PR #42656, "Apply LRU policy only to proper cache
    /// entries", mid-2026). Seen in 0.32.0's `BlockPool.free_blocks`; 0.10.1 appended
    /// every freed block. The releases in between are not checked: they are modelled
    /// with the old order.
    pub fn reuses_uncached_blocks_first(self) -> bool {
        self.at_least(32)
    }

    /// Whether the scheduler admits a waiting request only when its whole prompt fits in
    /// the free blocks (`scheduler_reserve_full_isl`, on by default in 0.32.0), rather
    /// than its first chunk, which over-admitted and preempted. Same caveat as
    /// [`VllmVersion::reuses_uncached_blocks_first`]: seen in 0.32.0, not in 0.10.1.
    pub fn admits_whole_prompts_only(self) -> bool {
        self.at_least(32)
    }

    /// The V0 engine (≤ 0.7): chunked prefill off for short contexts, `# GPU blocks` logging.
    pub fn is_v0(self) -> bool {
        !self.at_least(8)
    }
}

impl std::fmt::Display for VllmVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The vLLM settings that change the KV size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VllmKnobs {
    /// `--gpu-memory-utilization`, a fraction of total memory.
    pub gpu_memory_utilization: f64,
    /// `--max-model-len`; `None` = the model's `max_position_embeddings`.
    pub max_model_len: Option<u64>,
    /// `--max-num-batched-tokens`; `None` = vLLM's default for the GPU and version.
    pub max_num_batched_tokens: Option<u64>,
    /// `--max-num-seqs`; `None` = vLLM's default.
    pub max_num_seqs: Option<u64>,
    /// `--kv-cache-dtype`.
    pub kv_cache_dtype: KvDtype,
    /// `--block-size`; `None` = 16 (64 for MLA, as FlashMLA forces).
    pub block_size: Option<u64>,
    /// The vLLM release whose accounting to follow.
    pub version: VllmVersion,
    /// `--enforce-eager`: no CUDA graphs, so nothing to subtract on ≥ 0.21.
    pub enforce_eager: bool,
    /// `--kv-cache-memory` in bytes: skips profiling.
    pub kv_cache_memory_bytes: Option<u64>,
    /// `--num-gpu-blocks-override`: the number of KV blocks, whatever memory says (block 0
    /// of them is the null block).
    pub num_gpu_blocks_override: Option<u64>,
}

impl Default for VllmKnobs {
    fn default() -> Self {
        VllmKnobs {
            gpu_memory_utilization: 0.9,
            max_model_len: None,
            max_num_batched_tokens: None,
            max_num_seqs: None,
            kv_cache_dtype: KvDtype::Auto,
            block_size: None,
            version: VllmVersion::DEFAULT,
            enforce_eager: false,
            kv_cache_memory_bytes: None,
            num_gpu_blocks_override: None,
        }
    }
}

impl VllmKnobs {
    /// Checks every value; the error names vLLM's flag.
    pub fn validate(&self) -> Result<(), RecommendError> {
        let invalid = |what, problem: String| Err(RecommendError::Invalid { what, problem });
        let u = self.gpu_memory_utilization;
        if !(u.is_finite() && u > 0.0 && u <= 1.0) {
            return invalid("--gpu-memory-utilization", format!("{u} is not in (0, 1]"));
        }
        for (what, value) in [
            ("--max-model-len", self.max_model_len),
            ("--max-num-batched-tokens", self.max_num_batched_tokens),
            ("--max-num-seqs", self.max_num_seqs),
            ("--block-size", self.block_size),
        ] {
            if value == Some(0) {
                return invalid(what, "must be at least 1".into());
            }
        }
        if let Some(n @ 0..=1) = self.num_gpu_blocks_override {
            return invalid(
                "--num-gpu-blocks",
                format!("{n} is too few: block 0 is vLLM's null block, so at least 2"),
            );
        }
        if self.kv_cache_memory_bytes == Some(0) {
            return invalid("--kv-cache-memory", "must be at least 1 byte".into());
        }
        Ok(())
    }
}

/// The KV cache of one engine, per GPU (TP rank).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvSizing {
    /// Total memory × utilisation.
    pub requested_bytes: u64,
    /// Weights on this rank.
    pub weights_bytes: u64,
    /// Estimated allocator peak during the profile run.
    pub activation_bytes: u64,
    /// Estimated non-torch growth (cuBLAS, NCCL, context).
    pub non_torch_bytes: u64,
    /// CUDA-graph estimate subtracted (only ≥ v0.21, not eager).
    pub cuda_graph_bytes: u64,
    /// "Available KV cache memory" (0 when the overheads exceed the budget).
    pub available_kv_bytes: u64,
    /// KV bytes of one token on this rank, every layer counted.
    pub bytes_per_token: u64,
    /// Bytes of one block of one layer.
    pub page_bytes: u64,
    /// Tokens per block.
    pub block_size: u64,
    /// Blocks in the pool.
    pub num_blocks: u64,
    /// Blocks the memory gives: `num_blocks` unless `--num-gpu-blocks-override` set it.
    pub memory_blocks: u64,
    /// KV cache groups sharing the pool (1 unless sliding-window and full-attention layers
    /// are mixed: vLLM's hybrid allocator, reference A.3).
    pub num_groups: u64,
    /// "GPU KV cache size: N tokens" as this vLLM version logs it.
    pub tokens: u64,
    /// Blocks one `max_model_len` request needs.
    pub blocks_per_request: u64,
    /// "Maximum concurrency for L tokens per request".
    pub max_concurrency: f64,
    /// The `max_model_len` used.
    pub max_model_len: u64,
    /// The `max_num_batched_tokens` used.
    pub max_num_batched_tokens: u64,
    /// The `max_num_seqs` used.
    pub max_num_seqs: u64,
}

impl KvSizing {
    /// Whether the memory holds one `max_model_len` request (vLLM refuses to start
    /// otherwise). vLLM checks the memory, not `--num-gpu-blocks-override`'s count.
    pub fn fits_one_request(&self) -> bool {
        self.memory_blocks >= self.blocks_per_request
    }
}

/// `vllm serve`'s batch defaults (reference A.1; vllm `arg_utils.py`, PR #17885 for the
/// GPU-size split). Every deployment here is a `vllm serve` server; the `LLM` class that
/// upstream's recommender profiles with doubles the V1 budgets (16,384 / 8,192), which
/// shifts its KV estimate by a few hundred tokens and nothing it prints.
pub fn batch_defaults(gpu: &GpuSpec, knobs: &VllmKnobs, max_model_len: u64) -> (u64, u64) {
    let v = knobs.version;
    if v.is_v0() {
        // V0 turned chunked prefill on only above 32K context; off, the budget is the whole length.
        let mnbt = if max_model_len > 32_768 {
            2048
        } else {
            max_model_len.max(2048)
        };
        return (mnbt, 256);
    }
    if v.at_least(9) && gpu.class() == GpuClass::Large {
        (8192, 1024)
    } else {
        (2048, 256)
    }
}

/// Bytes per sampled logit at the sampler's peak (fp32 logits, sort values + int64 indices,
/// softmax, cumsum, noise). Calibrated: V1 on A.6 row 1 and the seed's example 1 (≈36 B);
/// V0 on A.6's T4 row (0.90 GiB for 256 × 128256 logits ≈ 29 B).
fn sampler_bytes_per_logit(v: VllmVersion) -> u64 {
    if v.is_v0() {
        29
    } else {
        36
    }
}

/// Peak activation bytes of the profile run on one rank.
pub fn activation_bytes(
    model: &ModelSpec,
    tp: u32,
    mnbt: u64,
    max_num_seqs: u64,
    v: VllmVersion,
) -> u64 {
    let tp = u64::from(tp.max(1));
    let h = model.hidden_size;
    let s = u64::from(model.dtype_bytes.min(2));
    let d = u64::from(model.head_dim);
    let attn_width = match model.attention {
        AttentionKind::Mla {
            qk_nope_head_dim,
            qk_rope_head_dim,
            v_head_dim,
            ..
        } => {
            u64::from(model.num_attention_heads)
                * u64::from(qk_nope_head_dim + qk_rope_head_dim + v_head_dim)
        }
        _ => (u64::from(model.num_attention_heads) + 2 * u64::from(model.num_kv_heads)) * d,
    };
    let mlp_width = match model.moe {
        // fused_moe intermediate caches: topk × (2N + N) per token, plus topk × h for the output.
        Some(m) => {
            3 * u64::from(m.experts_per_token + m.shared_experts) * m.expert_intermediate_size
                + u64::from(m.experts_per_token) * h * tp
        }
        None => 3 * model.intermediate_size,
    };
    // Per token: MLP intermediates and q/k/v split by TP, three residual-width buffers not split.
    // Calibrated on A.7 rows 1–2 (V0, 20k vs 29k budget: ≈ 110–123 KB/token for Llama-8B).
    let forward = mnbt * s * ((mlp_width + attn_width) / tp + 3 * h);
    let num_reqs = max_num_seqs.min(mnbt);
    let sampler = num_reqs * model.vocab_size * sampler_bytes_per_logit(v) + mnbt * h * s;
    forward.max(sampler)
}

/// Non-torch memory growth: 0.25 GiB of cuBLAS workspaces and context growth on V1 (0.1 on V0;
/// A.6 shows 0.02–0.7), plus NCCL/custom all-reduce buffers when TP > 1: 2.15 GiB on NVSwitch
/// nodes (NVLS buffers; calibrated so the seed's 70B/TP4/H100 example logs its ≈31 GiB), 0.25 GiB
/// elsewhere (A.6: 0.21–0.43 with TP4 on PCIe parts).
pub fn non_torch_bytes(gpu: &GpuSpec, tp: u32, v: VllmVersion) -> u64 {
    let base = if v.is_v0() { GIB / 10 } else { GIB / 4 };
    let comm = match (tp > 1, gpu.nvswitch) {
        (false, _) => 0,
        (true, true) => GIB * 215 / 100,
        (true, false) => GIB / 4,
    };
    base + comm
}

/// CUDA-graph memory that vLLM ≥ 0.21 subtracts (A.2 step 5): 0.3 GiB + 10 MiB per layer
/// (×3 for MoE). Gives 0.61 GiB for Llama-8B (A.5: 0.4–0.9) and 3.05 GiB for Qwen3-235B
/// (A.6: 3.45).
pub fn cuda_graph_bytes(model: &ModelSpec, knobs: &VllmKnobs) -> u64 {
    if !knobs.version.at_least(21) || knobs.enforce_eager {
        return 0;
    }
    let per_layer = if model.moe.is_some() {
        30 * MIB
    } else {
        10 * MIB
    };
    3 * GIB / 10 + u64::from(model.num_layers) * per_layer
}

/// Size the GPU KV cache of `model` on `gpu` at tensor parallelism `tp`.
pub fn gpu_kv_capacity(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    knobs: &VllmKnobs,
) -> Result<KvSizing, RecommendError> {
    knobs.validate()?;
    if tp == 0 {
        return Err(RecommendError::Invalid {
            what: "--tensor-parallel-size",
            problem: "must be at least 1".into(),
        });
    }
    let util = knobs.gpu_memory_utilization;
    let max_model_len = knobs.max_model_len.unwrap_or(model.max_position_embeddings);
    let (d_mnbt, d_seqs) = batch_defaults(gpu, knobs, max_model_len);
    let mnbt = knobs.max_num_batched_tokens.unwrap_or(d_mnbt).max(1);
    let seqs = knobs.max_num_seqs.unwrap_or(d_seqs).max(1);
    let is_mla = matches!(model.attention, AttentionKind::Mla { .. });
    let block_size = knobs
        .block_size
        .unwrap_or(if is_mla { 64 } else { 16 })
        .max(1);

    let requested = (gpu.memory_bytes as f64 * util) as u64;
    let weights = model.weight_bytes_per_rank(tp);
    let activation = activation_bytes(model, tp, mnbt, seqs, knobs.version);
    let non_torch = non_torch_bytes(gpu, tp, knobs.version);
    let cuda_graph = cuda_graph_bytes(model, knobs);
    let available = match knobs.kv_cache_memory_bytes {
        Some(b) => b,
        None => requested.saturating_sub(weights + activation + non_torch + cuda_graph),
    };

    let per_layer = model.kv_bytes_per_token_per_layer(tp, knobs.kv_cache_dtype);
    let page = per_layer * block_size;
    let layers = u64::from(model.num_layers);
    let full_blocks = max_model_len.div_ceil(block_size);
    let (num_blocks, blocks_per_request, num_groups) = match model.attention {
        AttentionKind::SlidingWindow { window_tokens, .. } => {
            let swa_blocks = (window_tokens - 1 + mnbt)
                .min(max_model_len)
                .div_ceil(block_size)
                + 1;
            let g = u64::from(model.global_layers());
            let s = u64::from(model.sliding_layers());
            if g == 0 {
                (available / page.max(1) / layers, swa_blocks, 1)
            } else {
                // Hybrid allocator (A.3): groups of equal layer count share one block pool.
                let (lo, hi) = (g.min(s), g.max(s));
                let group = if lo == 0 || 2 * hi < 3 * lo { hi } else { lo };
                let (fg, sg) = (g.div_ceil(group), s.div_ceil(group));
                (
                    available / page.max(1) / group,
                    fg * full_blocks + sg * swa_blocks,
                    fg + sg,
                )
            }
        }
        _ => (available / page.max(1) / layers, full_blocks, 1),
    };
    let memory_blocks = num_blocks;
    let num_blocks = knobs.num_gpu_blocks_override.unwrap_or(num_blocks);
    let max_concurrency = num_blocks as f64 / blocks_per_request.max(1) as f64;
    let v = knobs.version;
    let tokens = if v.is_v0() || !v.at_least(8) {
        num_blocks * block_size
    } else if v.at_least(27) {
        (max_concurrency * max_model_len as f64) as u64
    } else {
        num_blocks / num_groups * block_size
    };
    Ok(KvSizing {
        requested_bytes: requested,
        weights_bytes: weights,
        activation_bytes: activation,
        non_torch_bytes: non_torch,
        cuda_graph_bytes: cuda_graph,
        available_kv_bytes: available,
        bytes_per_token: model.kv_bytes_per_token(tp, knobs.kv_cache_dtype),
        page_bytes: page,
        block_size,
        num_blocks,
        memory_blocks,
        num_groups,
        tokens,
        blocks_per_request,
        max_concurrency,
        max_model_len,
        max_num_batched_tokens: mnbt,
        max_num_seqs: seqs,
    })
}
