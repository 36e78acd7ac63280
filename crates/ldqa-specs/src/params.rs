//! Parameter counts and weight bytes computed from the architecture, for when no weights are at hand.
//!
//! Counts follow the module layout of the Hugging Face implementations (Llama, Qwen2/3, Mistral,
//! Mixtral, DeepSeek-V3, Gemma-2/3, Phi-3, gpt-oss): q/k/v/o projections, a gated MLP
//! (`gate`, `up`, `down`, i.e. `3·h·I`), two RMSNorms per layer, the embedding and, unless tied,
//! `lm_head`. MoE layers add a router (`h·E`); MLA layers use the DeepSeek-V3 projections.
//! Small extras (q/k norms, attention sinks, expert biases) are left out: they are below 0.01 %.

use crate::model::{AttentionKind, ModelSpec, Quantization};

/// Parameters split by what they are, so quantisation can be applied to the right part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamBreakdown {
    /// Embedding plus (untied) `lm_head`.
    pub embedding: u64,
    /// Attention projections of every layer.
    pub attention: u64,
    /// Dense MLPs, shared experts and routers of every layer.
    pub dense_mlp: u64,
    /// Routed experts of every layer (all of them).
    pub experts: u64,
    /// Routed experts actually used by one token.
    pub experts_active: u64,
    /// Norms and biases.
    pub other: u64,
}

impl ParamBreakdown {
    /// All parameters.
    pub fn total(&self) -> u64 {
        self.embedding + self.attention + self.dense_mlp + self.experts + self.other
    }

    /// Parameters one token touches (the embedding counted once, as is customary for "active").
    pub fn active(&self) -> u64 {
        self.embedding + self.attention + self.dense_mlp + self.experts_active + self.other
    }
}

/// Count parameters from the architecture fields of `m` (its count fields are ignored).
pub fn breakdown(m: &ModelSpec) -> ParamBreakdown {
    let h = m.hidden_size;
    let l = u64::from(m.num_layers);
    let heads = u64::from(m.num_attention_heads);
    let kv = u64::from(m.num_kv_heads);
    let d = u64::from(m.head_dim);

    let attention_per_layer = match m.attention {
        AttentionKind::Mla {
            kv_lora_rank,
            qk_rope_head_dim,
            qk_nope_head_dim,
            v_head_dim,
            q_lora_rank,
        } => {
            let (r, rope, nope, v) = (
                u64::from(kv_lora_rank),
                u64::from(qk_rope_head_dim),
                u64::from(qk_nope_head_dim),
                u64::from(v_head_dim),
            );
            let q = match q_lora_rank {
                Some(q) => {
                    let q = u64::from(q);
                    h * q + q + q * heads * (nope + rope)
                }
                None => h * heads * (nope + rope),
            };
            q + h * (r + rope) + r + r * heads * (nope + v) + heads * v * h
        }
        _ => h * heads * d + 2 * h * kv * d + heads * d * h,
    };
    let bias_per_layer = if m.attention_bias {
        heads * d + 2 * kv * d
    } else {
        0
    };

    let (dense_layers, moe_layers) = match m.moe {
        Some(moe) => {
            let first = u64::from(moe.first_dense_layers).min(l);
            (first, l - first)
        }
        None => (l, 0),
    };
    let mut dense_mlp = dense_layers * 3 * h * m.intermediate_size;
    let (mut experts, mut experts_active) = (0, 0);
    if let Some(moe) = m.moe {
        let one = 3 * h * moe.expert_intermediate_size;
        experts = moe_layers * u64::from(moe.num_experts) * one;
        experts_active = moe_layers * u64::from(moe.experts_per_token) * one;
        dense_mlp +=
            moe_layers * (u64::from(moe.shared_experts) * one + h * u64::from(moe.num_experts));
    }
    let embedding = m.vocab_size * h * if m.tie_word_embeddings { 1 } else { 2 };
    ParamBreakdown {
        embedding,
        attention: l * attention_per_layer,
        dense_mlp,
        experts,
        experts_active,
        other: l * (2 * h + bias_per_layer) + h,
    }
}

/// Bytes the weights take on the GPU, given the quantisation of `m`.
///
/// Sources for the formats: AWQ/GPTQ store int4/int8 weights with one fp16 scale and one packed
/// zero point per group of `group_size` inputs; FP8 checkpoints (Qwen3-FP8, DeepSeek-V3) keep the
/// embedding, `lm_head` and norms in bf16; MXFP4 (gpt-oss) packs experts as 4-bit values with one
/// 8-bit scale per 32, everything else bf16.
pub fn weight_bytes(m: &ModelSpec, p: &ParamBreakdown) -> u64 {
    let s = u64::from(m.dtype_bytes);
    let linear = p.attention + p.dense_mlp + p.experts;
    match m.quantization {
        Quantization::None => p.total() * s,
        Quantization::IntGroup { bits, group_size } => {
            let g = u64::from(group_size.max(1));
            // bits/8 per weight + (2 B scale + bits/8 B zero) per group.
            let packed = linear * u64::from(bits) / 8;
            let groups = linear / g * (2 + u64::from(bits).div_ceil(8));
            packed + groups + (p.embedding + p.other) * 2
        }
        Quantization::Fp8 => linear + (p.embedding + p.other) * 2,
        Quantization::Mxfp4 => {
            p.experts * 17 / 32 + (p.embedding + p.attention + p.dense_mlp + p.other) * 2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn params(name: &str) -> (u64, u64) {
        let m = catalog::model(name).unwrap();
        let p = breakdown(&m);
        (p.total(), p.active())
    }

    fn near(got: u64, want: f64, rel: f64) -> bool {
        (got as f64 - want).abs() / want <= rel
    }

    #[test]
    fn dense_counts_match_published_totals() {
        // Published totals (model cards / HF safetensors metadata).
        assert_eq!(params("meta-llama/Llama-3.1-8B-Instruct").0, 8_030_261_248);
        assert_eq!(
            params("meta-llama/Llama-3.1-70B-Instruct").0,
            70_553_706_496
        );
        assert!(near(
            params("meta-llama/Llama-3.1-405B-Instruct").0,
            405.85e9,
            0.005
        ));
        assert!(near(
            params("meta-llama/Llama-3.2-1B-Instruct").0,
            1.236e9,
            0.005
        ));
        assert!(near(
            params("meta-llama/Llama-3.2-3B-Instruct").0,
            3.213e9,
            0.005
        ));
        assert!(near(params("Qwen/Qwen2.5-7B-Instruct").0, 7.616e9, 0.005));
        assert!(near(params("Qwen/Qwen2.5-72B-Instruct").0, 72.71e9, 0.005));
        assert!(near(params("Qwen/Qwen3-8B").0, 8.19e9, 0.01));
        assert!(near(
            params("mistralai/Mistral-7B-Instruct-v0.3").0,
            7.248e9,
            0.005
        ));
    }

    #[test]
    fn moe_and_mla_counts_match_published_totals() {
        let (t, a) = params("mistralai/Mixtral-8x7B-Instruct-v0.1");
        assert!(near(t, 46.7e9, 0.01) && near(a, 12.9e9, 0.02), "{t} {a}");
        let (t, a) = params("Qwen/Qwen3-30B-A3B");
        assert!(near(t, 30.5e9, 0.01) && near(a, 3.3e9, 0.05), "{t} {a}");
        let (t, a) = params("Qwen/Qwen3-235B-A22B");
        assert!(near(t, 235e9, 0.01) && near(a, 22e9, 0.05), "{t} {a}");
        // 671B main model (the Hub's 685B adds the 14B multi-token-prediction module).
        let (t, a) = params("deepseek-ai/DeepSeek-V3");
        assert!(near(t, 671e9, 0.01) && near(a, 37e9, 0.03), "{t} {a}");
        let (t, a) = params("openai/gpt-oss-120b");
        // OpenAI's 5.13B active leaves out the input embedding (201088 × 2880); we count it.
        assert!(
            near(t, 116.8e9, 0.01) && near(a - 201_088 * 2_880, 5.13e9, 0.02),
            "{t} {a}"
        );
        let (t, _) = params("openai/gpt-oss-20b");
        assert!(near(t, 20.9e9, 0.01), "{t}");
    }
}
