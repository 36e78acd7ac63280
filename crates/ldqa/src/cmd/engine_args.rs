//! The simulated engine's flags, shared by `ldqa predict` and `ldqa serve`: the deployment
//! ([`DeploymentArgs`], the same flags `recommend` and `ab` take) and which engine runs it.
//!
//! `--model` here names the *simulated* model (catalog name, local directory or Hugging
//! Face id); it is not `ldqa run`'s served-model name.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ldqa_recommend::Deployment;
use ldqa_sim::profile::AnyProfile;
use ldqa_sim::scenario::{self, CostSource, EngineMode, Scenario};
use ldqa_sim::{Efficiencies, EngineKind};

use super::deployment_args::DeploymentArgs;

/// `predict --engine`. Its values are explained in the flag's one help line: help on each
/// value would switch `--help` to clap's long, spaced layout, unlike every other command's
/// (usability finding 27).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    // vLLM with its GPU prefix cache only.
    Vllm,
    // vLLM + LMCache's CPU tier.
    Lmcache,
    // Both, side by side.
    Both,
}

impl EngineChoice {
    /// The engines to simulate, vLLM first.
    pub fn kinds(self) -> &'static [EngineKind] {
        match self {
            EngineChoice::Vllm => &[EngineKind::Vllm],
            EngineChoice::Lmcache => &[EngineKind::Lmcache],
            EngineChoice::Both => &[EngineKind::Vllm, EngineKind::Lmcache],
        }
    }
}

/// `serve --engine`: one server is one engine, so `both` is not offered (finding 31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServedEngine {
    // vLLM with its GPU prefix cache only.
    Vllm,
    // vLLM + LMCache's CPU tier.
    Lmcache,
}

impl ServedEngine {
    /// The one engine served.
    pub fn kinds(self) -> &'static [EngineKind] {
        match self {
            ServedEngine::Vllm => &[EngineKind::Vllm],
            ServedEngine::Lmcache => &[EngineKind::Lmcache],
        }
    }
}

/// The deployment the simulated engine runs (flatten into a command's arguments); each
/// command adds its own `--engine`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub deployment: DeploymentArgs,

    /// Step costs from a profile instead of the catalog's: one `ldqa calibrate` measured
    /// on a server, or a GPU's kernel curves (as in crates/ldqa-sim/data/kernels/).
    #[arg(long, value_name = "FILE", help_heading = "Simulated engine")]
    pub profile: Option<std::path::PathBuf>,
}

/// What the flags resolve to: one scenario per engine, and a one-line description.
#[derive(Debug, Clone)]
pub struct ResolvedEngine {
    /// The deployment every engine runs.
    pub deployment: Deployment,
    /// One entry, or two (vLLM then LMCache) for `--engine both`.
    pub engines: Vec<(EngineKind, Scenario)>,
    /// `model on GPU × TP n, GPU KV …, CPU tier …; step costs: <where they come from>`.
    pub description: String,
}

impl ResolvedEngine {
    /// The single engine (`serve`); an error for `--engine both`.
    pub fn single(&self) -> anyhow::Result<&Scenario> {
        match self.engines.as_slice() {
            [(_, s)] => Ok(s),
            _ => bail!("--engine both is only for `ldqa predict`: choose vllm or lmcache"),
        }
    }

    /// Whether every engine's step costs rest on measurements of its GPU or server.
    pub fn calibrated(&self) -> bool {
        self.engines.iter().all(|(_, s)| s.calibrated())
    }
}

impl EngineArgs {
    /// Resolves the deployment and the engines `kinds`; errors name the flag.
    pub fn resolve(&self, kinds: &[EngineKind]) -> anyhow::Result<ResolvedEngine> {
        let d = &self.deployment;
        let cpu_gib = d.lmcache_cpu_gib()?;
        if cpu_gib.is_some() && !kinds.contains(&EngineKind::Lmcache) {
            bail!("--lmcache-cpu-gib needs --engine lmcache (or both)");
        }
        let deployment = d.deployment(d.model_spec()?, d.catalog_gpu()?)?;
        let profile = self.read_profile(&deployment)?;
        let mut engines = Vec::new();
        for &kind in kinds {
            let mode = match kind {
                EngineKind::Vllm => EngineMode::Vllm,
                EngineKind::Lmcache => EngineMode::Lmcache {
                    cpu_gib_per_rank: cpu_gib,
                },
            };
            let mut s = scenario::build(&deployment, mode).with_context(|| {
                format!(
                    "simulating {} on {}",
                    deployment.model.name, deployment.gpu.name
                )
            })?;
            if let Some(p) = &profile {
                apply_profile(&mut s, p)?;
            }
            engines.push((kind, s));
        }
        let mut description = describe(&deployment, &engines);
        if let Some(path) = &self.profile {
            description = format!("{description} ({})", path.display());
        }
        Ok(ResolvedEngine {
            deployment,
            engines,
            description,
        })
    }
}

impl EngineArgs {
    /// `--profile`, read and, for a server's, checked against the deployment's prefill
    /// chunk size.
    fn read_profile(&self, d: &Deployment) -> anyhow::Result<Option<AnyProfile>> {
        let Some(path) = &self.profile else {
            return Ok(None);
        };
        let p = AnyProfile::read(path).context("--profile")?;
        match &p {
            AnyProfile::Server(p) if p.max_num_batched_tokens != d.kv.max_num_batched_tokens => {
                bail!(
                    "--profile {} was measured with max_num_batched_tokens {}, but this deployment has {}: pass --max-num-batched-tokens {}",
                    path.display(),
                    p.max_num_batched_tokens,
                    d.kv.max_num_batched_tokens,
                    p.max_num_batched_tokens
                );
            }
            AnyProfile::Kernels(k) if k.gpu != d.gpu.name => eprintln!(
                "warning: --profile {} holds {}'s kernel curves: simulating their speeds with {}'s memory",
                path.display(),
                k.gpu,
                d.gpu.name
            ),
            _ => {}
        }
        Ok(Some(p))
    }
}

/// A profile replaces what the catalog says about the step costs; the rest of the scenario
/// (cache sizes, scheduler) stays the deployment's. A server's measured step and front-end
/// costs replace the forward pass and the front end; a GPU's kernel curves replace the
/// forward pass, with the fixed costs fitted alongside the catalog's curves.
fn apply_profile(s: &mut Scenario, p: &AnyProfile) -> anyhow::Result<()> {
    match p {
        AnyProfile::Server(p) => {
            s.efficiencies.linear_cost = Some(p.cost);
            s.efficiencies.frontend_request_ns = p.frontend_request_ns.round() as u64;
            s.efficiencies.frontend_ns_per_prompt_token = p.frontend_prompt_token_ns.round() as u64;
            s.cost_source = CostSource::Measured {
                server: p.server.clone(),
            };
        }
        AnyProfile::Kernels(k) => {
            s.efficiencies = Efficiencies::with_kernels(k.kernels.clone())?;
            s.cost_source = CostSource::Kernels {
                gpu: k.gpu.clone(),
                source: k.source.clone(),
                fixed_costs_from: scenario::REFERENCE_GPU.to_string(),
            };
        }
    }
    Ok(())
}

fn describe(d: &Deployment, engines: &[(EngineKind, Scenario)]) -> String {
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
    // What the engine runs with (equal for every engine: one deployment).
    let gpu_kv_tokens = engines.first().map_or(0, |(_, s)| s.config.gpu_kv_tokens);
    let cost = engines
        .first()
        .map_or(String::new(), |(_, s)| s.cost_source.describe());
    format!(
        "{} on {} × TP {}: GPU KV {} tokens, max_model_len {}, max_num_batched_tokens {}, max_num_seqs {}; engine {}; step costs: {cost}",
        d.model.name,
        d.gpu.name,
        d.tp,
        gpu_kv_tokens,
        d.kv.max_model_len,
        d.kv.max_num_batched_tokens,
        d.kv.max_num_seqs,
        engines_text.join(" vs "),
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
        #[arg(long, value_enum, default_value_t = EngineChoice::Vllm)]
        engine_choice: EngineChoice,
    }

    /// The deployment flags, resolved for `--engine-choice` (vllm unless given).
    struct Parsed(EngineArgs, EngineChoice);

    impl Parsed {
        fn resolve(&self) -> anyhow::Result<ResolvedEngine> {
            self.0.resolve(self.1.kinds())
        }
    }

    fn parse(args: &[&str]) -> Parsed {
        let mut v = vec!["x"];
        v.extend(args.iter().map(|a| {
            if *a == "--engine" {
                "--engine-choice"
            } else {
                a
            }
        }));
        let cli = Cli::try_parse_from(v).unwrap();
        Parsed(cli.engine, cli.engine_choice)
    }

    #[test]
    fn defaults_resolve_to_the_seed_8b() {
        let r = parse(&[]).resolve().unwrap();
        let s = r.single().unwrap();
        assert_eq!(s.config.tp, 1);
        assert_eq!(s.config.gpu_kv_tokens, r.deployment.kv_pool_tokens());
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
    fn lmcache_size_needs_the_lmcache_engine() {
        let e = parse(&["--lmcache-cpu-gib", "10"]).resolve().unwrap_err();
        assert!(format!("{e:#}").contains("--lmcache-cpu-gib"), "{e:#}");
    }

    /// Finding 4: the context length is the model's own (Qwen3-8B: 40,960), as vLLM's is.
    #[test]
    fn the_context_length_comes_from_the_model() {
        let r = parse(&["--model", "Qwen/Qwen3-8B"]).resolve().unwrap();
        assert_eq!(r.single().unwrap().config.max_model_len_tokens, 40_960);
        let r = parse(&["--max-model-len", "5000"]).resolve().unwrap();
        assert_eq!(r.single().unwrap().config.max_model_len_tokens, 5000);
    }

    #[test]
    fn an_undeployable_plan_says_what_to_change() {
        let args = [
            "--tensor-parallel-size",
            "1",
            "--gpu-memory-utilization",
            "0.2",
        ];
        let e = parse(&args).resolve();
        let e = format!("{:#}", e.unwrap_err());
        assert!(e.contains("--gpu-memory-utilization"), "{e}");
    }
}
