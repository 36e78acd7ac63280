//! [`ModelSpec`]: the architecture facts that KV sizing and the cost model need.

use serde::Serialize;

/// How attention stores its KV cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttentionKind {
    /// Multi-head or grouped-query attention over the whole context in every layer.
    Full,
    /// Multi-head latent attention (DeepSeek V2/V3/R1): one compressed latent per token per layer,
    /// `kv_lora_rank + qk_rope_head_dim` wide, not split by TP (reference A.3).
    Mla {
        /// Width of the compressed KV latent (512 for DeepSeek-V3).
        kv_lora_rank: u32,
        /// Width of the decoupled RoPE key (64 for DeepSeek-V3).
        qk_rope_head_dim: u32,
        /// Width of the non-RoPE part of each query/key head (128 for DeepSeek-V3).
        qk_nope_head_dim: u32,
        /// Width of each value head (128 for DeepSeek-V3).
        v_head_dim: u32,
        /// Rank of the query compression, when queries are compressed.
        q_lora_rank: Option<u32>,
    },
    /// Some or all layers attend only to the last `window_tokens` tokens.
    SlidingWindow {
        /// Window length in tokens.
        window_tokens: u64,
        /// Layer `i` is global (full attention) when `(i + 1) % global_every == 0`;
        /// 0 means every layer slides (Mistral v0.1 style).
        global_every: u32,
    },
}

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Quantization {
    /// Plain `dtype_bytes` per parameter.
    None,
    /// AWQ / GPTQ: decoder linear layers at `bits`, with one fp16 scale (and packed zero) per group.
    IntGroup {
        /// Bits per weight (4 or 8).
        bits: u32,
        /// Inputs per quantisation group (128 typically).
        group_size: u32,
    },
    /// FP8 (e4m3) decoder linear layers, block or channel scales (negligible size).
    Fp8,
    /// MXFP4 expert weights (gpt-oss): 4 bits plus one 8-bit scale per 32 values.
    Mxfp4,
}

/// Mixture-of-experts layout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MoeSpec {
    /// Routed experts per MoE layer.
    pub num_experts: u32,
    /// Routed experts each token uses.
    pub experts_per_token: u32,
    /// Intermediate size of one expert.
    pub expert_intermediate_size: u64,
    /// Shared (always active) experts per MoE layer, of the same size.
    pub shared_experts: u32,
    /// The first layers are dense MLPs of `intermediate_size` (DeepSeek `first_k_dense_replace`).
    pub first_dense_layers: u32,
}

/// The data type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvDtype {
    /// The model's own dtype (vLLM `--kv-cache-dtype auto`).
    Auto,
    /// 2 bytes per value.
    Bf16,
    /// 1 byte per value (`fp8`, `fp8_e4m3`, `fp8_e5m2`).
    Fp8,
    /// DeepSeek sparse FlashMLA format: a fixed 656 bytes per token per layer (reference A.3).
    Fp8DsMla,
}

impl KvDtype {
    /// Parse vLLM's `--kv-cache-dtype` spelling.
    pub fn parse(s: &str) -> Option<KvDtype> {
        match s {
            "auto" => Some(KvDtype::Auto),
            "bf16" | "bfloat16" | "fp16" | "float16" | "half" => Some(KvDtype::Bf16),
            "fp8" | "fp8_e4m3" | "fp8_e5m2" => Some(KvDtype::Fp8),
            "fp8_ds_mla" => Some(KvDtype::Fp8DsMla),
            _ => None,
        }
    }
}

/// Architecture and size of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    /// The canonical name (Hub id or directory).
    pub name: String,
    /// Decoder layers.
    pub num_layers: u32,
    /// Model (residual) width.
    pub hidden_size: u64,
    /// Query heads.
    pub num_attention_heads: u32,
    /// KV heads (1 for MLA, which stores one latent).
    pub num_kv_heads: u32,
    /// Width of one attention head.
    pub head_dim: u32,
    /// Dense MLP intermediate size.
    pub intermediate_size: u64,
    /// Vocabulary size (rows of the embedding, columns of the logits).
    pub vocab_size: u64,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections carry biases (Qwen2, gpt-oss).
    pub attention_bias: bool,
    /// Mixture-of-experts layout, if any.
    pub moe: Option<MoeSpec>,
    /// How attention keeps its KV.
    pub attention: AttentionKind,
    /// Bytes of the unquantised dtype (2 for bf16/fp16, 4 for fp32).
    pub dtype_bytes: u32,
    /// Weight quantisation.
    pub quantization: Quantization,
    /// Longest context the model supports.
    pub max_position_embeddings: u64,
    /// Total parameters (from the weights when known, else from the architecture).
    pub total_params: u64,
    /// Parameters used per token (MoE: the routed experts actually chosen).
    pub active_params: u64,
    /// Bytes of the weights as loaded on the GPU.
    pub weight_bytes: u64,
    /// Where the facts came from (file path, catalog source or Hub URL).
    pub source: String,
}

impl ModelSpec {
    /// Bytes of KV one token occupies on one TP rank, with every layer counted as full attention
    /// (reference A.3/A.8): `2·L·max(1, H_kv/tp)·d·s` for MHA/GQA, `L·(kv_lora+rope)·s` for MLA
    /// (replicated on every rank), `L·656` for `fp8_ds_mla`.
    pub fn kv_bytes_per_token(&self, tp: u32, kv_dtype: KvDtype) -> u64 {
        self.kv_bytes_per_token_per_layer(tp, kv_dtype) * u64::from(self.num_layers)
    }

    /// Bytes of KV one token occupies in one layer on one TP rank.
    pub fn kv_bytes_per_token_per_layer(&self, tp: u32, kv_dtype: KvDtype) -> u64 {
        let s = match kv_dtype {
            KvDtype::Auto => u64::from(self.dtype_bytes),
            KvDtype::Bf16 => 2,
            KvDtype::Fp8 => 1,
            KvDtype::Fp8DsMla => {
                if matches!(self.attention, AttentionKind::Mla { .. }) {
                    return 656;
                }
                1
            }
        };
        match self.attention {
            AttentionKind::Mla {
                kv_lora_rank,
                qk_rope_head_dim,
                ..
            } => u64::from(kv_lora_rank + qk_rope_head_dim) * s,
            _ => 2 * u64::from(self.kv_heads_per_rank(tp)) * u64::from(self.head_dim) * s,
        }
    }

    /// KV heads each rank holds: `max(1, H_kv / tp)` (vLLM `get_num_kv_heads`); 1 for MLA.
    pub fn kv_heads_per_rank(&self, tp: u32) -> u32 {
        match self.attention {
            AttentionKind::Mla { .. } => 1,
            _ => (self.num_kv_heads / tp.max(1)).max(1),
        }
    }

    /// How many times the KV is replicated across ranks (`tp / H_kv` when TP exceeds the heads;
    /// every rank for MLA).
    pub fn kv_replication(&self, tp: u32) -> u32 {
        let tp = tp.max(1);
        match self.attention {
            AttentionKind::Mla { .. } => tp,
            _ => (tp / self.num_kv_heads.max(1)).max(1),
        }
    }

    /// Number of layers that use full (global) attention.
    pub fn global_layers(&self) -> u32 {
        match self.attention {
            AttentionKind::SlidingWindow { global_every, .. } => {
                self.num_layers.checked_div(global_every).unwrap_or(0)
            }
            _ => self.num_layers,
        }
    }

    /// Number of sliding-window layers.
    pub fn sliding_layers(&self) -> u32 {
        self.num_layers - self.global_layers()
    }

    /// Weight bytes on one rank when split `tp` ways (everything shards; norms are negligible).
    pub fn weight_bytes_per_rank(&self, tp: u32) -> u64 {
        self.weight_bytes.div_ceil(u64::from(tp.max(1)))
    }
}
