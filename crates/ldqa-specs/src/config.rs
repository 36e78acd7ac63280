//! Parse a Hugging Face `config.json` into a [`ModelSpec`].
//!
//! Field names are those of the `transformers` configs: `num_hidden_layers`, `hidden_size`,
//! `num_attention_heads`, `num_key_value_heads` (default: the query heads), `head_dim` (default:
//! `hidden_size / num_attention_heads`), `intermediate_size`, `vocab_size`, `tie_word_embeddings`,
//! `torch_dtype`/`dtype`; MoE: `num_local_experts`/`num_experts`/`n_routed_experts`,
//! `num_experts_per_tok`/`experts_per_token`, `moe_intermediate_size`, `n_shared_experts`,
//! `first_k_dense_replace`; MLA: `kv_lora_rank`, `qk_rope_head_dim`, `qk_nope_head_dim`,
//! `v_head_dim`, `q_lora_rank`; sliding window: `sliding_window`, `use_sliding_window`,
//! `sliding_window_pattern`, `layer_types`; `quantization_config.quant_method`. Multimodal configs
//! (Gemma-3) keep the language model under `text_config`.

use serde_json::{Map, Value};

use crate::error::SpecError;
use crate::model::{AttentionKind, ModelSpec, MoeSpec, Quantization};
use crate::params;

type Obj = Map<String, Value>;

fn get_u64(o: &Obj, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| o.get(*k).and_then(Value::as_u64))
}

fn need_u64(o: &Obj, key: &str, origin: &str) -> Result<u64, SpecError> {
    match o.get(key) {
        Some(v) => v.as_u64().ok_or_else(|| {
            malformed(
                origin,
                format!("`{key}` is not a non-negative integer: {v}"),
            )
        }),
        None => Err(malformed(origin, format!("missing `{key}`"))),
    }
}

fn to_u32(v: u64, key: &str, origin: &str) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| malformed(origin, format!("`{key}` = {v} is out of range")))
}

fn malformed(origin: &str, problem: String) -> SpecError {
    SpecError::MalformedConfig {
        path: origin.to_string(),
        problem,
    }
}

/// Parse `config.json` text. `origin` names the file in error messages; `name` becomes the
/// model's name.
pub fn parse_config(text: &str, name: &str, origin: &str) -> Result<ModelSpec, SpecError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| malformed(origin, format!("not valid JSON: {e}")))?;
    spec_from_value(&v, name, origin)
}

/// Build a [`ModelSpec`] from a parsed `config.json` object.
#[allow(
    clippy::too_many_lines,
    reason = "a field-by-field mapping of config.json, one architecture family after another"
)]
pub fn spec_from_value(v: &Value, name: &str, origin: &str) -> Result<ModelSpec, SpecError> {
    let top = v
        .as_object()
        .ok_or_else(|| malformed(origin, "the top level is not a JSON object".into()))?;
    let o = top
        .get("text_config")
        .and_then(Value::as_object)
        .unwrap_or(top);
    let model_type = o
        .get("model_type")
        .or_else(|| top.get("model_type"))
        .and_then(Value::as_str)
        .unwrap_or("");

    let num_layers = to_u32(
        need_u64(o, "num_hidden_layers", origin)?,
        "num_hidden_layers",
        origin,
    )?;
    let hidden_size = need_u64(o, "hidden_size", origin)?;
    let heads = to_u32(
        need_u64(o, "num_attention_heads", origin)?,
        "num_attention_heads",
        origin,
    )?;
    if num_layers == 0 || hidden_size == 0 || heads == 0 {
        return Err(malformed(
            origin,
            "layers, hidden_size and heads must be positive".into(),
        ));
    }
    let kv_heads = match get_u64(o, &["num_key_value_heads"]) {
        Some(k) => to_u32(k, "num_key_value_heads", origin)?,
        None => heads,
    };
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(malformed(
            origin,
            format!("{heads} query heads cannot be grouped over {kv_heads} KV heads"),
        ));
    }
    let head_dim = match get_u64(o, &["head_dim"]) {
        Some(d) => to_u32(d, "head_dim", origin)?,
        None => to_u32(hidden_size / u64::from(heads), "head_dim", origin)?,
    };
    let intermediate_size = need_u64(o, "intermediate_size", origin)?;
    let vocab_size = need_u64(o, "vocab_size", origin)?;
    let tie = o
        .get("tie_word_embeddings")
        .or_else(|| top.get("tie_word_embeddings"))
        .and_then(Value::as_bool)
        .unwrap_or(matches!(
            model_type,
            "gemma2" | "gemma3_text" | "gemma3" | "gemma"
        ));
    let attention_bias = o
        .get("attention_bias")
        .and_then(Value::as_bool)
        .unwrap_or(model_type == "qwen2");
    let dtype = o
        .get("torch_dtype")
        .or_else(|| o.get("dtype"))
        .or_else(|| top.get("torch_dtype"))
        .or_else(|| top.get("dtype"))
        .and_then(Value::as_str)
        .unwrap_or("bfloat16");
    let dtype_bytes = match dtype {
        "float32" => 4,
        "bfloat16" | "float16" => 2,
        other => {
            return Err(malformed(
                origin,
                format!("unsupported torch_dtype `{other}`"),
            ))
        }
    };

    let experts =
        get_u64(o, &["num_local_experts", "num_experts", "n_routed_experts"]).unwrap_or(0);
    let moe = if experts > 1 {
        let per_tok = get_u64(o, &["num_experts_per_tok", "experts_per_token"])
            .ok_or_else(|| malformed(origin, "MoE config without `num_experts_per_tok`".into()))?;
        Some(MoeSpec {
            num_experts: to_u32(experts, "num_experts", origin)?,
            experts_per_token: to_u32(per_tok, "num_experts_per_tok", origin)?,
            expert_intermediate_size: get_u64(o, &["moe_intermediate_size"])
                .unwrap_or(intermediate_size),
            shared_experts: to_u32(
                get_u64(o, &["n_shared_experts"]).unwrap_or(0),
                "n_shared_experts",
                origin,
            )?,
            first_dense_layers: to_u32(
                get_u64(o, &["first_k_dense_replace"]).unwrap_or(0),
                "first_k_dense_replace",
                origin,
            )?,
        })
    } else {
        None
    };

    let attention = attention_kind(o, model_type, num_layers, origin)?;
    let (num_kv_heads, head_dim) = match attention {
        AttentionKind::Mla { .. } => (1, head_dim),
        _ => (kv_heads, head_dim),
    };
    let quantization = quantization(top, origin)?;
    let max_position_embeddings = get_u64(o, &["max_position_embeddings"]).unwrap_or(4096);

    let mut spec = ModelSpec {
        name: name.to_string(),
        num_layers,
        hidden_size,
        num_attention_heads: heads,
        num_kv_heads,
        head_dim,
        intermediate_size,
        vocab_size,
        tie_word_embeddings: tie,
        attention_bias,
        moe,
        attention,
        dtype_bytes,
        quantization,
        max_position_embeddings,
        total_params: 0,
        active_params: 0,
        weight_bytes: 0,
        source: origin.to_string(),
    };
    check_plausible(&spec, origin)?;
    let p = params::breakdown(&spec);
    spec.total_params = p.total();
    spec.active_params = p.active();
    spec.weight_bytes = params::weight_bytes(&spec, &p);
    Ok(spec)
}

/// Upper bounds far above any published model (the largest have hidden sizes of ~16k,
/// ~130 layers, 384 experts, vocabularies of ~260k), chosen so that every product in
/// [`params::breakdown`] and [`params::weight_bytes`] stays below 2^64: with these bounds the
/// largest term (routed experts, layers × experts × 3 × hidden × expert width) is below 2^60.
/// A config beyond them is malformed, and saying so beats overflowing.
const PLAUSIBLE_MAX: [(&str, u64); 12] = [
    ("num_hidden_layers", 1 << 10),
    ("hidden_size", 1 << 17),
    ("num_attention_heads", 1 << 12),
    ("num_key_value_heads", 1 << 12),
    ("head_dim", 1 << 14),
    ("intermediate_size", 1 << 20),
    ("vocab_size", 1 << 22),
    ("n_routed_experts / num_experts", 1 << 10),
    ("moe_intermediate_size", 1 << 20),
    ("n_shared_experts", 1 << 8),
    ("MLA ranks and head widths", 1 << 16),
    ("torch_dtype bytes", 8),
];

fn check_plausible(m: &ModelSpec, origin: &str) -> Result<(), SpecError> {
    let moe = m.moe.unwrap_or(MoeSpec {
        num_experts: 0,
        experts_per_token: 0,
        expert_intermediate_size: 0,
        shared_experts: 0,
        first_dense_layers: 0,
    });
    let mla_max = match m.attention {
        AttentionKind::Mla {
            kv_lora_rank,
            qk_rope_head_dim,
            qk_nope_head_dim,
            v_head_dim,
            q_lora_rank,
        } => [
            kv_lora_rank,
            qk_rope_head_dim,
            qk_nope_head_dim,
            v_head_dim,
            q_lora_rank.unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0),
        _ => 0,
    };
    let values = [
        u64::from(m.num_layers),
        m.hidden_size,
        u64::from(m.num_attention_heads),
        u64::from(m.num_kv_heads),
        u64::from(m.head_dim),
        m.intermediate_size,
        m.vocab_size,
        u64::from(moe.num_experts).max(u64::from(moe.experts_per_token)),
        moe.expert_intermediate_size,
        u64::from(moe.shared_experts),
        u64::from(mla_max),
        u64::from(m.dtype_bytes),
    ];
    for ((field, max), value) in PLAUSIBLE_MAX.iter().zip(values) {
        if value > *max {
            return Err(malformed(
                origin,
                format!("{field} = {value} is beyond any real model (at most {max} accepted)"),
            ));
        }
    }
    Ok(())
}

fn attention_kind(
    o: &Obj,
    model_type: &str,
    layers: u32,
    origin: &str,
) -> Result<AttentionKind, SpecError> {
    if let Some(r) = get_u64(o, &["kv_lora_rank"]) {
        let g = |k: &str| -> Result<u32, SpecError> { to_u32(need_u64(o, k, origin)?, k, origin) };
        return Ok(AttentionKind::Mla {
            kv_lora_rank: to_u32(r, "kv_lora_rank", origin)?,
            qk_rope_head_dim: g("qk_rope_head_dim")?,
            qk_nope_head_dim: g("qk_nope_head_dim")?,
            v_head_dim: g("v_head_dim")?,
            q_lora_rank: get_u64(o, &["q_lora_rank"]).map(|q| q as u32),
        });
    }
    let window = get_u64(o, &["sliding_window"]);
    let enabled = o
        .get("use_sliding_window")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let Some(window) = window.filter(|_| enabled) else {
        return Ok(AttentionKind::Full);
    };
    if window == 0 {
        return Ok(AttentionKind::Full);
    }
    let global_every = if let Some(types) = o.get("layer_types").and_then(Value::as_array) {
        // Accept the common alternating layouts; the period is the distance between full layers.
        let full: Vec<usize> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_str() == Some("full_attention"))
            .map(|(i, _)| i)
            .collect();
        match full.as_slice() {
            [] => 0,
            [first, ..] => (first + 1) as u32,
        }
    } else if let Some(p) = get_u64(o, &["sliding_window_pattern"]) {
        p as u32
    } else if model_type.starts_with("gemma2") {
        2
    } else if model_type.starts_with("gemma3") {
        6
    } else {
        0
    };
    if global_every > layers {
        return Err(malformed(
            origin,
            format!("sliding window pattern {global_every} exceeds {layers} layers"),
        ));
    }
    Ok(AttentionKind::SlidingWindow {
        window_tokens: window,
        global_every,
    })
}

fn quantization(top: &Obj, origin: &str) -> Result<Quantization, SpecError> {
    let Some(q) = top.get("quantization_config").and_then(Value::as_object) else {
        return Ok(Quantization::None);
    };
    let method = q.get("quant_method").and_then(Value::as_str).unwrap_or("");
    Ok(match method {
        "awq" | "gptq" => Quantization::IntGroup {
            bits: get_u64(q, &["bits", "w_bit"]).unwrap_or(4) as u32,
            group_size: get_u64(q, &["group_size", "q_group_size"]).unwrap_or(128) as u32,
        },
        "fp8" | "fbgemm_fp8" => Quantization::Fp8,
        "mxfp4" => Quantization::Mxfp4,
        "compressed-tensors" => {
            // Look for the weight bits of the first config group.
            let bits = q
                .get("config_groups")
                .and_then(Value::as_object)
                .and_then(|g| g.values().next())
                .and_then(|g| g.get("weights"))
                .and_then(|w| {
                    let t = w.get("type").and_then(Value::as_str).unwrap_or("int");
                    w.get("num_bits")
                        .and_then(Value::as_u64)
                        .map(|b| (t == "float", b))
                });
            match bits {
                Some((true, 8)) => Quantization::Fp8,
                Some((_, b)) if b < 16 => Quantization::IntGroup {
                    bits: b as u32,
                    group_size: 128,
                },
                _ => Quantization::None,
            }
        }
        "" => {
            return Err(malformed(
                origin,
                "`quantization_config` without `quant_method`".into(),
            ))
        }
        _ => Quantization::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_8B: &str = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama",
      "hidden_size":4096,"intermediate_size":14336,"num_attention_heads":32,"num_hidden_layers":32,
      "num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":131072,
      "tie_word_embeddings":false,"torch_dtype":"bfloat16"}"#;

    #[test]
    fn parses_llama() {
        let m = parse_config(LLAMA_8B, "x", "config.json").unwrap();
        assert_eq!(m.head_dim, 128);
        assert_eq!(m.total_params, 8_030_261_248);
        assert_eq!(m.weight_bytes, 16_060_522_496);
        assert_eq!(m.attention, AttentionKind::Full);
    }

    #[test]
    fn names_missing_field_and_file() {
        let err = parse_config(r#"{"hidden_size":4096}"#, "x", "/m/config.json").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/m/config.json") && msg.contains("num_hidden_layers"),
            "{msg}"
        );
        let err = parse_config("{not json", "x", "/m/config.json").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let bad = LLAMA_8B.replace("\"num_key_value_heads\":8", "\"num_key_value_heads\":5");
        assert!(parse_config(&bad, "x", "c")
            .unwrap_err()
            .to_string()
            .contains("grouped"));
    }

    #[test]
    fn awq_is_about_a_quarter() {
        let awq = LLAMA_8B.replace(
            "\"torch_dtype\"",
            "\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":128},\"torch_dtype\"",
        );
        let m = parse_config(&awq, "x", "c").unwrap();
        let gib = m.weight_bytes as f64 / (1u64 << 30) as f64;
        // 6.98B linear params at ~0.52 B + 1.05B embedding params at 2 B.
        assert!((5.0..6.0).contains(&gib), "{gib}");
    }

    #[test]
    fn sliding_window_from_layer_types_and_disabled_flag() {
        let cfg = r#"{"num_hidden_layers":4,"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
          "intermediate_size":128,"vocab_size":100,"sliding_window":128,
          "layer_types":["sliding_attention","full_attention","sliding_attention","full_attention"]}"#;
        let m = parse_config(cfg, "x", "c").unwrap();
        assert_eq!(
            m.attention,
            AttentionKind::SlidingWindow {
                window_tokens: 128,
                global_every: 2
            }
        );
        assert_eq!(m.global_layers(), 2);
        let qwen = cfg.replace(
            "\"sliding_window\":128",
            "\"sliding_window\":128,\"use_sliding_window\":false",
        );
        assert_eq!(
            parse_config(&qwen, "x", "c").unwrap().attention,
            AttentionKind::Full
        );
    }
}
