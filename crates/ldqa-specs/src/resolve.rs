//! Turn a `--model` argument into a [`ModelSpec`], trying in order: a local directory, the local
//! Hugging Face cache, the built-in catalog, the Hub.
//!
//! HF cache layout (huggingface_hub docs, "Manage the cache"): `$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; a repo `org/name` lives in
//! `models--org--name/`, with `refs/main` holding the revision and `snapshots/<revision>/` the files.

use std::path::{Path, PathBuf};

use crate::catalog;
use crate::config::parse_config;
use crate::error::SpecError;
use crate::hub::Hub;
use crate::model::{ModelSpec, Quantization};
use crate::safetensors::{weights_in_dir, WeightSummary};

/// Where a spec was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecOrigin {
    /// A directory given on the command line.
    LocalDir,
    /// A snapshot in the Hugging Face cache.
    HfCache,
    /// The built-in catalog.
    Catalog,
    /// The Hugging Face Hub API.
    Hub,
}

/// How to resolve names; build it once from the environment with [`ResolveOptions::from_env`].
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// The HF hub cache directory, if any.
    pub hf_cache: Option<PathBuf>,
    /// The Hub client; `None` when offline (`HF_HUB_OFFLINE=1`).
    pub hub: Option<Hub>,
}

impl ResolveOptions {
    /// `HF_HUB_CACHE` / `HF_HOME` / `HOME` for the cache; `HF_ENDPOINT`, `HF_TOKEN` and
    /// `HF_HUB_OFFLINE` for the Hub.
    pub fn from_env() -> ResolveOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let hf_cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| Path::new(&h).join("hub")))
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache/huggingface/hub")));
        let offline =
            var("HF_HUB_OFFLINE").is_some_and(|v| v != "0" && v.to_lowercase() != "false");
        let hub = (!offline).then(|| Hub::new(var("HF_ENDPOINT").as_deref(), var("HF_TOKEN")));
        ResolveOptions { hf_cache, hub }
    }
}

/// Resolve `name` (a directory or a Hub id).
pub fn resolve_model(
    name: &str,
    opts: &ResolveOptions,
) -> Result<(ModelSpec, SpecOrigin), SpecError> {
    let p = Path::new(name);
    if p.is_dir() {
        return Ok((load_dir(p, name)?, SpecOrigin::LocalDir));
    }
    if let Some(cache) = &opts.hf_cache {
        if let Some(snap) = cached_snapshot(cache, name) {
            if snap.join("config.json").is_file() {
                return Ok((load_dir(&snap, name)?, SpecOrigin::HfCache));
            }
        }
    }
    if let Some(m) = catalog::model(name) {
        return Ok((m, SpecOrigin::Catalog));
    }
    let suggestions = catalog::suggest_models(name);
    let hub_note = match &opts.hub {
        None => Some("not tried: HF_HUB_OFFLINE is set".to_string()),
        Some(_) if !looks_like_repo(name) => None,
        Some(hub) => match hub.model_spec(name) {
            Ok(m) => return Ok((m, SpecOrigin::Hub)),
            Err(SpecError::Hub(note)) => Some(note),
            Err(e) => return Err(e),
        },
    };
    Err(SpecError::UnknownModel {
        name: name.to_string(),
        suggestions,
        hub_note,
    })
}

fn looks_like_repo(name: &str) -> bool {
    let mut parts = name.split('/');
    let ok = |s: Option<&str>| {
        s.is_some_and(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The snapshot directory of `repo` in an HF hub cache: the revision in `refs/main`, else the
/// only (or last modified) snapshot.
pub fn cached_snapshot(cache: &Path, repo: &str) -> Option<PathBuf> {
    if !looks_like_repo(repo) {
        return None;
    }
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snaps = root.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(root.join("refs/main")) {
        let d = snaps.join(rev.trim());
        if d.is_dir() {
            return Some(d);
        }
    }
    std::fs::read_dir(&snaps)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// Load `config.json` (and the weights' headers, when present) from a model directory.
pub fn load_dir(dir: &Path, name: &str) -> Result<ModelSpec, SpecError> {
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg).map_err(|source| SpecError::Io {
        path: cfg.clone(),
        source,
    })?;
    let mut spec = parse_config(&text, name, &cfg.display().to_string())?;
    if let Some(w) = weights_in_dir(dir)? {
        apply_weights(&mut spec, &w);
    }
    Ok(spec)
}

/// Replace the architecture estimate of the weights by what the files say.
pub fn apply_weights(spec: &mut ModelSpec, w: &WeightSummary) {
    if w.bytes > 0 {
        spec.weight_bytes = w.bytes;
    }
    // Packed quantised tensors (int4 in I32) do not count parameters; keep the architecture count.
    if spec.quantization == Quantization::None && w.elements() > 0 {
        let ratio = w.elements() as f64 / spec.total_params.max(1) as f64;
        spec.active_params = (spec.active_params as f64 * ratio).round() as u64;
        spec.total_params = w.elements();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::write_fixture;

    const TINY: &str = r#"{"num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
        "intermediate_size":128,"vocab_size":100,"torch_dtype":"bfloat16"}"#;

    fn offline() -> ResolveOptions {
        ResolveOptions::default()
    }

    #[test]
    fn local_dir_with_headers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), TINY).unwrap();
        write_fixture(
            &d.path().join("model-00001-of-00002.safetensors"),
            &[("a", "BF16", &[100, 64])],
        )
        .unwrap();
        write_fixture(
            &d.path().join("model-00002-of-00002.safetensors"),
            &[("b", "BF16", &[10, 64])],
        )
        .unwrap();
        let (m, o) = resolve_model(d.path().to_str().unwrap(), &offline()).unwrap();
        assert_eq!(o, SpecOrigin::LocalDir);
        assert_eq!(m.weight_bytes, 110 * 64 * 2);
        assert_eq!(m.total_params, 110 * 64);
    }

    #[test]
    fn local_dir_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = resolve_model(d.path().to_str().unwrap(), &offline())
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json"), "{e}");
        std::fs::write(d.path().join("config.json"), "{\"hidden_size\": 3").unwrap();
        let e = resolve_model(d.path().to_str().unwrap(), &offline())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.json") && e.contains("not valid JSON"),
            "{e}"
        );
        std::fs::write(d.path().join("config.json"), TINY).unwrap();
        std::fs::write(d.path().join("model.safetensors"), [0u8; 4]).unwrap();
        let e = resolve_model(d.path().to_str().unwrap(), &offline())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("header"),
            "{e}"
        );
    }

    #[test]
    fn hf_cache_layout() {
        let cache = tempfile::tempdir().unwrap();
        let root = cache.path().join("models--acme--tiny-1");
        let snap = root.join("snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(snap.join("config.json"), TINY).unwrap();
        std::fs::write(
            snap.join("model.safetensors.index.json"),
            r#"{"metadata":{"total_size":123456},"weight_map":{}}"#,
        )
        .unwrap();
        let opts = ResolveOptions {
            hf_cache: Some(cache.path().to_path_buf()),
            hub: None,
        };
        let (m, o) = resolve_model("acme/tiny-1", &opts).unwrap();
        assert_eq!(
            (o, m.weight_bytes, m.num_layers),
            (SpecOrigin::HfCache, 123_456, 2)
        );
    }

    #[test]
    fn catalog_then_unknown_with_suggestions() {
        let (m, o) = resolve_model("meta-llama/Meta-Llama-3.1-8B-Instruct", &offline()).unwrap();
        assert_eq!((o, m.num_layers), (SpecOrigin::Catalog, 32));
        match resolve_model("meta-llama/Llama-3.1-8B-Instuct", &offline()) {
            Err(SpecError::UnknownModel {
                suggestions,
                hub_note,
                ..
            }) => {
                assert_eq!(suggestions[0], "meta-llama/Llama-3.1-8B-Instruct");
                assert!(hub_note.unwrap().contains("HF_HUB_OFFLINE"));
            }
            other => panic!("{other:?}"),
        }
    }
}
