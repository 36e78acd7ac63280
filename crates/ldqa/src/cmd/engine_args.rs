//! The simulated engine's flags, shared by `ldqa predict`, `ldqa serve` and `ldqa ab`.
//!
//! `--model` here names the *simulated* model (catalog name, local directory or Hugging
//! Face id); it is not `ldqa run`'s served-model name.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ldqa_recommend::{VllmKnobs, VllmVersion};
use ldqa_sim::scenario::{self, EngineMode, Scenario};
use ldqa_specs::{catalog, resolve_model, ResolveOptions};

/// The model simulated when `--model` is not given (the seed's first example).
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// The GPU simulated when `--gpu` is not given.
pub const DEFAULT_GPU: &str = "h100-80gb";

/// `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// vLLM with its GPU prefix cache only.
    Vllm,
    /// vLLM + LMCache's CPU tier.
    Lmcache,
    /// Both, side by side (`ldqa predict` only).
    Both,
}

/// One engine of a resolved choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Vllm,
    Lmcache,
}

impl EngineKind {
    /// `vllm` or `lmcache` (also the subfolder names of `--engine both`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Vllm => "vllm",
            EngineKind::Lmcache => "lmcache",
        }
    }
}

/// Flags of the simulated engine (flatten into a command's arguments).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Simulated engine")]
pub struct EngineArgs {
    /// Model to simulate: a catalog name, a local model directory or a Hugging Face id.
    #[arg(long, default_value = DEFAULT_MODEL, value_name = "NAME")]
    pub model: String,

    /// GPU to simulate (catalog name, e.g. h100-80gb, h200, a100-80gb, l40s).
    #[arg(long, default_value = DEFAULT_GPU, value_name = "NAME")]
    pub gpu: String,

    /// Tensor-parallel size (default: upstream's recommender rule for the model and GPU).
    #[arg(long, value_name = "N")]
    pub tensor_parallel_size: Option<u32>,

    /// Engine: vllm (GPU prefix cache only), lmcache (plus the CPU tier), or both (predict only).
    #[arg(long, value_enum, default_value_t = EngineChoice::Vllm, value_name = "ENGINE")]
    pub engine: EngineChoice,

    /// LMCache CPU tier per GPU in GiB (LMCACHE_MAX_LOCAL_CPU_SIZE; default: the recommender's rule).
    #[arg(long, value_name = "GIB", allow_negative_numbers = true)]
    pub lmcache_cpu_gib: Option<f64>,

    /// vLLM --gpu-memory-utilization.
    #[arg(
        long,
        default_value_t = 0.9,
        value_name = "FRACTION",
        allow_negative_numbers = true
    )]
    pub gpu_memory_utilization: f64,

    /// vLLM --max-num-batched-tokens (default: vLLM's for the GPU and version, `vllm serve`).
    #[arg(long, value_name = "TOKENS")]
    pub max_num_batched_tokens: Option<u64>,

    /// vLLM --max-num-seqs (default: vLLM's for the GPU and version).
    #[arg(long, value_name = "N")]
    pub max_num_seqs: Option<u64>,

    /// The vLLM release whose KV accounting and defaults to follow.
    #[arg(long, default_value = "0.10.1", value_name = "VERSION")]
    pub vllm_version: String,
}

/// What the flags resolve to: one scenario per engine, and a one-line description.
#[derive(Debug, Clone)]
pub struct ResolvedEngine {
    /// One entry, or two (vLLM then LMCache) for `--engine both`.
    pub engines: Vec<(EngineKind, Scenario)>,
    /// The model's canonical name (what a server lists at /v1/models).
    pub model_name: String,
    /// `model on GPU × TP n, GPU KV …, CPU tier …, efficiencies calibrated|UNCALIBRATED`.
    pub description: String,
}

impl ResolvedEngine {
    /// The single engine (`serve`, `ab`); an error for `--engine both`.
    pub fn single(&self) -> anyhow::Result<&Scenario> {
        match self.engines.as_slice() {
            [(_, s)] => Ok(s),
            _ => bail!("--engine both is only for `ldqa predict`: choose vllm or lmcache"),
        }
    }

    /// Whether every engine runs with efficiencies fitted on its GPU.
    pub fn calibrated(&self) -> bool {
        self.engines.iter().all(|(_, s)| s.calibrated)
    }
}

impl EngineArgs {
    /// vLLM's knobs from the flags (`vllm serve` usage context); errors name the flag.
    pub fn knobs(&self) -> anyhow::Result<VllmKnobs> {
        let u = self.gpu_memory_utilization;
        if !(u.is_finite() && u > 0.0 && u <= 1.0) {
            bail!("--gpu-memory-utilization must be in (0, 1], not {u}");
        }
        if self.max_num_batched_tokens == Some(0) {
            bail!("--max-num-batched-tokens must be at least 1");
        }
        if self.max_num_seqs == Some(0) {
            bail!("--max-num-seqs must be at least 1");
        }
        let version = VllmVersion::parse(&self.vllm_version).context("--vllm-version")?;
        Ok(VllmKnobs {
            gpu_memory_utilization: u,
            max_num_batched_tokens: self.max_num_batched_tokens,
            max_num_seqs: self.max_num_seqs,
            version,
            ..scenario::serve_knobs()
        })
    }

    /// Resolves the model, the GPU and the engine(s); errors name the flag.
    pub fn resolve(&self) -> anyhow::Result<ResolvedEngine> {
        if self.tensor_parallel_size == Some(0) {
            bail!("--tensor-parallel-size must be at least 1");
        }
        if let Some(g) = self.lmcache_cpu_gib {
            if !(g.is_finite() && g > 0.0) {
                bail!("--lmcache-cpu-gib must be a positive number of GiB, not {g}");
            }
            if self.engine == EngineChoice::Vllm {
                bail!("--lmcache-cpu-gib needs --engine lmcache (or both)");
            }
        }
        let knobs = self.knobs()?;
        let gpu = catalog::gpu(&self.gpu).context("--gpu")?;
        let (model, _) =
            resolve_model(&self.model, &ResolveOptions::from_env()).context("--model")?;
        let kinds: &[EngineKind] = match self.engine {
            EngineChoice::Vllm => &[EngineKind::Vllm],
            EngineChoice::Lmcache => &[EngineKind::Lmcache],
            EngineChoice::Both => &[EngineKind::Vllm, EngineKind::Lmcache],
        };
        let mut engines = Vec::new();
        for &kind in kinds {
            let mode = match kind {
                EngineKind::Vllm => EngineMode::Vllm,
                EngineKind::Lmcache => EngineMode::Lmcache {
                    cpu_gib_per_rank: self.lmcache_cpu_gib,
                },
            };
            let s = scenario::build(&model, &gpu, self.tensor_parallel_size, mode, &knobs)
                .with_context(|| format!("simulating {} on {}", model.name, gpu.name))?;
            engines.push((kind, s));
        }
        let description = describe(&engines);
        Ok(ResolvedEngine {
            engines,
            model_name: model.name.clone(),
            description,
        })
    }
}

fn describe(engines: &[(EngineKind, Scenario)]) -> String {
    let Some((_, first)) = engines.first() else {
        return String::new();
    };
    let c = &first.config;
    let engines_text: Vec<String> = engines
        .iter()
        .map(|(k, s)| match s.cpu_gib_per_rank {
            None => k.as_str().to_string(),
            Some(g) => format!(
                "{} (CPU tier {g} GiB/GPU = {} tokens)",
                k.as_str(),
                s.cpu_tier_tokens()
            ),
        })
        .collect();
    format!(
        "{} on {} × TP {}: GPU KV {} tokens, max_num_batched_tokens {}, max_num_seqs {}; engine {}; efficiencies {}",
        first.model_name,
        c.gpu.name,
        c.tp,
        c.gpu_kv_tokens,
        c.max_num_batched_tokens,
        c.max_num_seqs,
        engines_text.join(" vs "),
        if first.calibrated {
            "calibrated on this GPU".to_string()
        } else {
            format!(
                "UNCALIBRATED ({}'s fitted fractions applied to this GPU's peaks)",
                scenario::REFERENCE_GPU
            )
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        engine: EngineArgs,
    }

    fn parse(args: &[&str]) -> EngineArgs {
        let mut v = vec!["x"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().engine
    }

    #[test]
    fn defaults_resolve_to_the_seed_8b() {
        let r = parse(&[]).resolve().unwrap();
        let s = r.single().unwrap();
        assert_eq!(s.config.tp, 1);
        assert!(r.calibrated());
        assert!(r.description.contains("h100-80gb"), "{}", r.description);
    }

    #[test]
    fn both_gives_two_engines_and_is_not_single() {
        let r = parse(&["--engine", "both"]).resolve().unwrap();
        assert_eq!(r.engines.len(), 2);
        assert_eq!(r.engines[1].1.cpu_gib_per_rank, Some(66.0));
        assert!(r.single().is_err());
    }

    #[test]
    fn bad_flags_name_themselves() {
        for (args, flag) in [
            (
                &["--gpu-memory-utilization", "1.5"][..],
                "--gpu-memory-utilization",
            ),
            (
                &["--tensor-parallel-size", "0"][..],
                "--tensor-parallel-size",
            ),
            (&["--lmcache-cpu-gib", "10"][..], "--lmcache-cpu-gib"),
            (&["--vllm-version", "x.y"][..], "--vllm-version"),
            (&["--gpu", "h1000"][..], "--gpu"),
        ] {
            let e = parse(args).resolve().unwrap_err();
            assert!(format!("{e:#}").contains(flag), "{args:?}: {e:#}");
        }
    }
}
