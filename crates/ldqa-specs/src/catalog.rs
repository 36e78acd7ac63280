//! The built-in catalogs: models (`data/models.json`, config.json excerpts as published) and GPUs
//! (`data/gpus.json`). Both are data, embedded with `include_str!` and parsed once.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::config::spec_from_value;
use crate::error::SpecError;
use crate::gpu::{GpuEntry, GpuSpec};
use crate::model::ModelSpec;
use crate::suggest::closest;

#[derive(Debug, Deserialize)]
struct ModelEntry {
    name: String,
    aliases: Vec<String>,
    source: String,
    config: Value,
}

#[derive(Debug, Deserialize)]
struct ModelFile {
    models: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct GpuFile {
    gpus: Vec<GpuEntry>,
}

fn models() -> &'static [ModelEntry] {
    static M: OnceLock<Vec<ModelEntry>> = OnceLock::new();
    M.get_or_init(|| {
        let f: ModelFile = serde_json::from_str(include_str!("../data/models.json"))
            .expect("invariant: the embedded model catalog is valid JSON (checked by tests)");
        f.models
    })
}

fn gpus() -> &'static [GpuEntry] {
    static G: OnceLock<Vec<GpuEntry>> = OnceLock::new();
    G.get_or_init(|| {
        let f: GpuFile = serde_json::from_str(include_str!("../data/gpus.json"))
            .expect("invariant: the embedded GPU catalog is valid JSON (checked by tests)");
        f.gpus
    })
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn short(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn find_model(name: &str) -> Option<&'static ModelEntry> {
    let n = norm(name);
    let all = models();
    let exact = all
        .iter()
        .find(|m| norm(&m.name) == n || m.aliases.iter().any(|a| norm(a) == n));
    // Without an organisation prefix, accept a unique match of the part after the slash.
    exact.or_else(|| {
        if n.contains('/') {
            return None;
        }
        let mut hits = all.iter().filter(|m| {
            norm(short(&m.name)) == n
                || m.aliases
                    .iter()
                    .any(|a| a.contains('/') && norm(short(a)) == n)
        });
        let first = hits.next()?;
        hits.next().is_none().then_some(first)
    })
}

/// Look a model up by name or alias (case-insensitive, `org/` optional when unambiguous).
pub fn model(name: &str) -> Option<ModelSpec> {
    let e = find_model(name)?;
    let spec = spec_from_value(&e.config, &e.name, &e.source)
        .expect("invariant: every catalog entry parses (checked by tests)");
    Some(spec)
}

/// Every catalog model name (canonical names only).
pub fn model_names() -> Vec<&'static str> {
    models().iter().map(|m| m.name.as_str()).collect()
}

/// Every name and alias, for suggestions.
fn all_model_names() -> impl Iterator<Item = &'static str> {
    models()
        .iter()
        .flat_map(|m| std::iter::once(m.name.as_str()).chain(m.aliases.iter().map(String::as_str)))
}

/// Close catalog model names for an unknown `name`, best first.
pub fn suggest_models(name: &str) -> Vec<String> {
    closest(name, all_model_names(), 3)
}

/// Look a GPU up by catalog name or alias (case-insensitive), or by the name `nvidia-smi`
/// prints (`NVIDIA H100 80GB HBM3`).
pub fn gpu(name: &str) -> Result<GpuSpec, SpecError> {
    let n = norm(name).replace(['_', ' '], "-");
    gpus()
        .iter()
        .find(|g| g.name == n || g.aliases.contains(&n))
        .map(GpuEntry::spec)
        .or_else(|| gpu_by_device_name(name))
        .ok_or_else(|| SpecError::UnknownGpu {
            name: name.to_string(),
            suggestions: closest(
                &n,
                gpus().iter().flat_map(|g| {
                    std::iter::once(g.name.as_str()).chain(g.aliases.iter().map(String::as_str))
                }),
                3,
            ),
        })
}

/// Match a driver-reported name (`NVIDIA H100 80GB HBM3`) to a catalog GPU.
pub fn gpu_by_device_name(device_name: &str) -> Option<GpuSpec> {
    let d = device_name.to_lowercase();
    // Longest pattern first, so `A100 80GB` wins over `A100`.
    let mut best: Option<(&GpuEntry, usize)> = None;
    for g in gpus() {
        for p in &g.nvml_names {
            let lp = p.to_lowercase();
            if d.contains(&lp) && best.is_none_or(|(_, l)| lp.len() > l) {
                best = Some((g, lp.len()));
            }
        }
    }
    best.map(|(g, _)| g.spec())
}

/// Every catalog GPU.
pub fn gpu_names() -> Vec<&'static str> {
    gpus().iter().map(|g| g.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttentionKind, KvDtype};

    #[test]
    fn every_entry_parses() {
        for n in model_names() {
            let m = model(n).unwrap();
            assert!(m.total_params > 0 && m.weight_bytes > 0, "{n}");
        }
        for n in gpu_names() {
            assert!(gpu(n).unwrap().memory_bytes > 0);
        }
    }

    #[test]
    fn aliases_and_short_names() {
        let a = model("meta-llama/Meta-Llama-3.1-8B-Instruct").unwrap();
        assert_eq!(a.name, "meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!(model("llama-3.1-8b-instruct").unwrap().name, a.name);
        assert!(model("nobody/Llama-3.1-8B-Instruct").is_none());
        assert_eq!(gpu("H100").unwrap().name, "h100-80gb");
    }

    #[test]
    fn suggestions_for_typos() {
        assert!(suggest_models("meta-llama/Llama-3.1-8B-Instrct")
            .contains(&"meta-llama/Llama-3.1-8B-Instruct".to_string()));
        match gpu("h100-80") {
            Err(SpecError::UnknownGpu { suggestions, .. }) => {
                assert_eq!(suggestions[0], "h100-80gb")
            }
            other => panic!("{other:?}"),
        }
    }

    /// NVLink figures are half the datasheets' bidirectional ones, and only GPUs on an
    /// NVSwitch fabric have one.
    #[test]
    fn nvlink_bandwidth_per_direction_on_nvswitch_gpus_only() {
        for (name, gb_per_s) in [
            ("h100-80gb", 450),
            ("h200", 450),
            ("b200", 900),
            ("a100-80gb", 300),
        ] {
            assert_eq!(
                gpu(name).unwrap().nvlink_bytes_per_s,
                Some(gb_per_s * 1_000_000_000),
                "{name}"
            );
        }
        for n in gpu_names() {
            let g = gpu(n).unwrap();
            assert_eq!(g.nvlink_bytes_per_s.is_some(), g.nvswitch, "{n}");
        }
    }

    #[test]
    fn device_names_map_to_catalog() {
        assert_eq!(
            gpu_by_device_name("NVIDIA H100 80GB HBM3").unwrap().name,
            "h100-80gb"
        );
        assert_eq!(
            gpu_by_device_name("NVIDIA A100-SXM4-80GB").unwrap().name,
            "a100-80gb"
        );
        assert_eq!(
            gpu_by_device_name("NVIDIA A100-SXM4-40GB").unwrap().name,
            "a100-40gb"
        );
        assert_eq!(gpu_by_device_name("NVIDIA L40S").unwrap().name, "l40s");
        assert!(gpu_by_device_name("Some Future GPU").is_none());
    }

    /// Reference A.8: KV bytes per token (bf16, whole model, and per rank at TP4).
    #[test]
    fn kv_bytes_per_token_match_reference_a8() {
        const K: u64 = 1024;
        type Row = (&'static str, u64, Option<(u32, u64)>);
        let rows: &[Row] = &[
            (
                "meta-llama/Llama-3.1-8B-Instruct",
                131_072,
                Some((4, 32 * K)),
            ),
            (
                "meta-llama/Llama-3.3-70B-Instruct",
                327_680,
                Some((8, 40 * K)),
            ),
            (
                "mistralai/Mistral-7B-Instruct-v0.3",
                131_072,
                Some((4, 32 * K)),
            ),
            ("meta-llama/Llama-3.2-1B-Instruct", 32 * K, None),
            ("meta-llama/Llama-3.2-3B-Instruct", 112 * K, None),
            (
                "meta-llama/Llama-3.1-70B-Instruct",
                327_680,
                Some((4, 80 * K)),
            ),
            ("Qwen/Qwen2.5-72B-Instruct", 327_680, Some((4, 80 * K))),
            ("Qwen/Qwen2.5-7B-Instruct", 57_344, Some((4, 14 * K))),
            ("Qwen/Qwen2.5-14B-Instruct", 192 * K, Some((4, 48 * K))),
            ("Qwen/Qwen2.5-32B-Instruct", 256 * K, Some((4, 64 * K))),
            ("Qwen/Qwen3-8B", 144 * K, Some((4, 36 * K))),
            ("Qwen/Qwen3-14B", 160 * K, Some((4, 40 * K))),
            ("Qwen/Qwen3-32B", 256 * K, Some((4, 64 * K))),
            ("Qwen/Qwen3-30B-A3B", 96 * K, Some((4, 24 * K))),
            ("Qwen/Qwen3-235B-A22B", 188 * K, Some((4, 47 * K))),
            ("deepseek-ai/DeepSeek-V3", 70_272, Some((4, 70_272))),
            ("deepseek-ai/DeepSeek-R1", 70_272, Some((8, 70_272))),
            ("google/gemma-3-27b-it", 496 * K, None),
        ];
        for &(name, whole, at_tp) in rows {
            let m = model(name).unwrap();
            assert_eq!(m.kv_bytes_per_token(1, KvDtype::Bf16), whole, "{name}");
            assert_eq!(
                m.kv_bytes_per_token(1, KvDtype::Fp8),
                whole / 2,
                "{name} fp8 halves"
            );
            if let Some((tp, per_rank)) = at_tp {
                assert_eq!(
                    m.kv_bytes_per_token(tp, KvDtype::Auto),
                    per_rank,
                    "{name} tp{tp}"
                );
            }
        }
        let ds = model("deepseek-ai/DeepSeek-V3").unwrap();
        assert_eq!(ds.kv_bytes_per_token(4, KvDtype::Fp8DsMla), 40_016);
        assert!(matches!(ds.attention, AttentionKind::Mla { .. }));
        // Llama-70B at TP16: one head per rank, replicated twice.
        let l70 = model("meta-llama/Llama-3.1-70B-Instruct").unwrap();
        assert_eq!(l70.kv_heads_per_rank(16), 1);
        assert_eq!(l70.kv_replication(16), 2);
    }
}
