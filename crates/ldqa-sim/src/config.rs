//! Engine inputs: the model's shape, the GPU's shape, the mode and vLLM's knobs.
//!
//! These are plain structs on purpose: the catalogs (`ldqa-specs`) and the KV sizing
//! (`ldqa-recommend`) fill them in, the simulator only reads them.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// vLLM's KV block size on CUDA (tokens per block).
pub const DEFAULT_BLOCK_SIZE_TOKENS: u32 = 16;
/// LMCache's default `chunk_size` (tokens per chunk).
pub const DEFAULT_LMCACHE_CHUNK_TOKENS: u32 = 256;

/// What the cost model needs to know about a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size (d_model).
    pub hidden: u32,
    /// Attention (query) heads.
    pub heads: u32,
    /// Key/value heads (GQA).
    pub kv_heads: u32,
    /// Width of one head.
    pub head_dim: u32,
    /// MLP intermediate size (documentation only: `active_params` carries the FLOPs).
    pub intermediate: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Parameters used per token (all of them for a dense model), embeddings included.
    pub active_params: u64,
    /// Whether the input embedding and the LM head share one matrix.
    pub tied_embeddings: bool,
    /// Bytes of weights of the whole model (all ranks together).
    pub weight_bytes: u64,
    /// KV bytes per token of the whole model (all ranks together), e.g. 131,072 for Llama-3.1-8B bf16.
    pub kv_bytes_per_token: u64,
    /// Bytes per activation element (2 for bf16), used for the all-reduce payload.
    pub activation_bytes: u32,
}

impl ModelShape {
    /// Parameters of the matrix multiplications every token goes through
    /// (active parameters minus the embedding table(s); the LM head is counted separately).
    pub fn linear_params(&self) -> u64 {
        let emb = u64::from(self.vocab) * u64::from(self.hidden);
        let tables = if self.tied_embeddings { 1 } else { 2 };
        self.active_params.saturating_sub(emb * tables)
    }

    /// Parameters of the LM head (used only for the positions that are sampled).
    pub fn lm_head_params(&self) -> u64 {
        u64::from(self.vocab) * u64::from(self.hidden)
    }
}

/// What the cost model needs to know about one GPU (dense peaks, per direction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuShape {
    /// Catalog name, used to look up the efficiencies (e.g. `h100-80gb`).
    pub name: String,
    /// Dense BF16 tensor FLOP/s.
    pub flops: f64,
    /// HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// Host link (PCIe) bandwidth per direction, bytes/s.
    pub host_link_bytes_per_s: f64,
    /// GPU-to-GPU link (NVLink) bandwidth per direction, bytes/s; used for TP all-reduce.
    pub interconnect_bytes_per_s: f64,
}

/// Which engine is simulated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mode {
    /// vLLM with its GPU prefix cache only.
    Vllm,
    /// vLLM plus LMCache's CPU tier of `cpu_bytes_per_rank` bytes per GPU
    /// (`LMCACHE_MAX_LOCAL_CPU_SIZE` × 2³⁰).
    Lmcache {
        /// CPU tier bytes per GPU.
        cpu_bytes_per_rank: u64,
    },
}

/// Which engine, without its sizes: what commands, folders and labels name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// vLLM with its GPU prefix cache only.
    Vllm,
    /// vLLM plus LMCache's CPU tier.
    Lmcache,
}

impl EngineKind {
    /// `vllm` or `lmcache`: the value of `--engine`, folder names, labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Vllm => "vllm",
            EngineKind::Lmcache => "lmcache",
        }
    }
}

impl Mode {
    /// Which engine this mode is.
    pub fn kind(&self) -> EngineKind {
        match self {
            Mode::Vllm => EngineKind::Vllm,
            Mode::Lmcache { .. } => EngineKind::Lmcache,
        }
    }
}

/// Everything the engine needs, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// The model, as the cost model sees it.
    pub model: ModelShape,
    /// One GPU, as the cost model sees it.
    pub gpu: GpuShape,
    /// Tensor-parallel size.
    pub tp: u32,
    /// vLLM alone, or with LMCache's CPU tier.
    pub mode: Mode,
    /// GPU KV cache capacity in tokens (vLLM's "GPU KV cache size"), per replica.
    pub gpu_kv_tokens: u64,
    /// vLLM's `max_num_batched_tokens` (8192 for `vllm serve` on ≥ 70 GiB GPUs, 2048 otherwise).
    pub max_num_batched_tokens: u32,
    /// vLLM's `max_num_seqs`.
    pub max_num_seqs: u32,
    /// vLLM's block size in tokens.
    pub block_size_tokens: u32,
    /// vLLM's `max_model_len`: a request whose prompt plus `max_tokens` exceeds it is
    /// refused (HTTP 400), as vLLM refuses it.
    pub max_model_len_tokens: u64,
    /// LMCache's chunk size in tokens.
    pub lmcache_chunk_tokens: u32,
    /// A freed block without a hash goes to the front of the free queue (vLLM ≥ 0.32),
    /// so partial and decode blocks are reused before any cached block is evicted.
    #[serde(default)]
    pub uncached_blocks_reused_first: bool,
    /// A waiting request is admitted only when its whole prompt (not its first chunk)
    /// fits in the free blocks (vLLM ≥ 0.32's `scheduler_reserve_full_isl`).
    #[serde(default)]
    pub admit_whole_prompts_only: bool,
}

impl EngineConfig {
    /// Checks that every value is in range.
    pub fn validate(&self) -> Result<(), SimError> {
        fn bad(field: &'static str, reason: &str) -> Result<(), SimError> {
            Err(SimError::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        }
        let m = &self.model;
        if m.layers == 0 || m.hidden == 0 || m.heads == 0 || m.kv_heads == 0 || m.head_dim == 0 {
            return bad(
                "model",
                "layers, hidden, heads, kv_heads and head_dim must be > 0",
            );
        }
        if m.active_params == 0 || m.weight_bytes == 0 || m.kv_bytes_per_token == 0 {
            return bad(
                "model",
                "active_params, weight_bytes and kv_bytes_per_token must be > 0",
            );
        }
        let g = &self.gpu;
        for (v, name) in [
            (g.flops, "gpu.flops"),
            (g.hbm_bytes_per_s, "gpu.hbm_bytes_per_s"),
            (g.host_link_bytes_per_s, "gpu.host_link_bytes_per_s"),
            (g.interconnect_bytes_per_s, "gpu.interconnect_bytes_per_s"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(name, "must be a positive finite number");
            }
        }
        if self.tp == 0 {
            return bad("tp", "must be ≥ 1");
        }
        if self.block_size_tokens == 0 {
            return bad("block_size_tokens", "must be ≥ 1");
        }
        if self.lmcache_chunk_tokens == 0 {
            return bad("lmcache_chunk_tokens", "must be ≥ 1");
        }
        if self.gpu_kv_tokens < u64::from(self.block_size_tokens) {
            return bad("gpu_kv_tokens", "must hold at least one block");
        }
        if self.gpu_kv_tokens / u64::from(self.block_size_tokens) >= u64::from(u32::MAX) {
            return bad("gpu_kv_tokens", "too many blocks");
        }
        if self.max_model_len_tokens == 0 {
            return bad("max_model_len_tokens", "must be ≥ 1");
        }
        if self.max_num_batched_tokens == 0 {
            return bad("max_num_batched_tokens", "must be ≥ 1");
        }
        if self.max_num_seqs == 0 {
            return bad("max_num_seqs", "must be ≥ 1");
        }
        Ok(())
    }

    /// KV bytes per token on one TP rank (KV heads split across ranks, at least one per rank).
    pub fn kv_bytes_per_token_per_rank(&self) -> u64 {
        let heads_rank = (self.model.kv_heads / self.tp).max(1);
        self.model.kv_bytes_per_token / u64::from(self.model.kv_heads) * u64::from(heads_rank)
    }

    /// Number of GPU KV blocks.
    pub fn gpu_blocks(&self) -> u32 {
        (self.gpu_kv_tokens / u64::from(self.block_size_tokens)) as u32
    }

    /// Capacity of the LMCache CPU tier in chunks (0 in vLLM mode), per B.2:
    /// `floor(bytes / (chunk × bytes_per_token_per_rank))`.
    pub fn cpu_chunks(&self) -> u64 {
        match self.mode {
            Mode::Vllm => 0,
            Mode::Lmcache { cpu_bytes_per_rank } => {
                cpu_bytes_per_rank
                    / (u64::from(self.lmcache_chunk_tokens) * self.kv_bytes_per_token_per_rank())
            }
        }
    }
}
