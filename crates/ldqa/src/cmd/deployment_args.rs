//! The one description of a deployment, shared by `ldqa recommend`, `predict`, `serve` and
//! `ab`: model, GPU, tensor parallelism, every vLLM knob that sizes the KV cache or the
//! batch, and LMCache's CPU size. One flag group, one validated builder
//! ([`DeploymentArgs::deployment`] → `ldqa_recommend::Deployment`), one set of defaults:
//! the same flags give the same GPU KV capacity in every command.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Args;
use ldqa_recommend::{Deployment, VllmKnobs, VllmVersion};
use ldqa_specs::{catalog, resolve_model, GpuSpec, KvDtype, ModelSpec, ResolveOptions};

/// The model when `--model` is not given: the seed's first example.
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// The GPU simulated or planned for when `--gpu` is not given and none is found here.
pub const DEFAULT_GPU: &str = "h100-80gb";
/// The help heading of these flags (set per flag, so that it does not leak to the next group).
const HEADING: &str = "Deployment (same flags in recommend, predict, serve and ab)";
/// The vLLM release whose accounting is followed by default (upstream's recommender era).
pub const DEFAULT_VLLM_VERSION: &str = "0.10.1";

/// Flags of one deployment (flatten into a command's arguments).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct DeploymentArgs {
    /// Model: a catalog name, a local model directory or a Hugging Face id.
    #[arg(long, default_value = DEFAULT_MODEL, value_name = "NAME", help_heading = HEADING)]
    pub model: String,

    /// GPU: a catalog name (h100-80gb, h200, a100-80gb, l40s, …). Default: the local GPU
    /// for `recommend` and for `ab` without --sim; h100-80gb for the simulator.
    #[arg(long, value_name = "NAME", help_heading = HEADING)]
    pub gpu: Option<String>,

    /// Tensor-parallel size (default: the smallest power of two at which vLLM starts).
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = HEADING)]
    pub tensor_parallel_size: Option<u32>,

    /// vLLM --gpu-memory-utilization: the fraction of GPU memory vLLM may use.
    #[arg(
        long,
        default_value_t = 0.9,
        value_name = "FRACTION",
        allow_negative_numbers = true, help_heading = HEADING)]
    pub gpu_memory_utilization: f64,

    /// vLLM --max-model-len: prompt + output limit in tokens (default: the model's maximum).
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true, help_heading = HEADING)]
    pub max_model_len: Option<u64>,

    /// vLLM --kv-cache-dtype: auto, bfloat16, fp8, fp8_e4m3, fp8_e5m2 or fp8_ds_mla.
    #[arg(long, default_value = "auto", value_name = "DTYPE", help_heading = HEADING)]
    pub kv_cache_dtype: String,

    /// vLLM --max-num-batched-tokens (default: vLLM's for the GPU and version).
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true, help_heading = HEADING)]
    pub max_num_batched_tokens: Option<u64>,

    /// vLLM --max-num-seqs (default: vLLM's for the GPU and version).
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = HEADING)]
    pub max_num_seqs: Option<u64>,

    /// vLLM --block-size: tokens per KV block (default: 16, 64 for MLA models).
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true, help_heading = HEADING)]
    pub block_size: Option<u64>,

    /// vLLM --num-gpu-blocks-override: this many KV blocks (the null block included),
    /// whatever the GPU's memory allows, e.g. to describe a server started with it.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = HEADING)]
    pub num_gpu_blocks: Option<u64>,

    /// vLLM --enforce-eager: no CUDA graphs (from 0.21 on, vLLM reserves memory for them).
    #[arg(long, help_heading = HEADING)]
    pub enforce_eager: bool,

    /// The vLLM release whose KV accounting and defaults to follow.
    #[arg(long, default_value = DEFAULT_VLLM_VERSION, value_name = "VERSION", help_heading = HEADING)]
    pub vllm_version: String,

    /// LMCache's CPU cache per GPU in GiB (LMCACHE_MAX_LOCAL_CPU_SIZE; default: upstream's
    /// rule, GPU KV + 120k tokens' worth, capped by host RAM in `recommend`).
    #[arg(long, value_name = "GIB", allow_negative_numbers = true, help_heading = HEADING)]
    pub lmcache_cpu_gib: Option<f64>,
}

impl DeploymentArgs {
    /// vLLM's knobs, validated; errors name the flag.
    pub fn knobs(&self) -> anyhow::Result<VllmKnobs> {
        let kv_cache_dtype = KvDtype::parse(&self.kv_cache_dtype).with_context(|| {
            format!(
                "unknown --kv-cache-dtype `{}` (auto, bfloat16, fp8, fp8_e4m3, fp8_e5m2, fp8_ds_mla)",
                self.kv_cache_dtype
            )
        })?;
        let knobs = VllmKnobs {
            gpu_memory_utilization: self.gpu_memory_utilization,
            max_model_len: self.max_model_len,
            max_num_batched_tokens: self.max_num_batched_tokens,
            max_num_seqs: self.max_num_seqs,
            kv_cache_dtype,
            block_size: self.block_size,
            version: VllmVersion::parse(&self.vllm_version).context("--vllm-version")?,
            enforce_eager: self.enforce_eager,
            kv_cache_memory_bytes: None,
            num_gpu_blocks_override: self.num_gpu_blocks,
        };
        knobs.validate()?;
        Ok(knobs)
    }

    /// `--lmcache-cpu-gib`, checked.
    pub fn lmcache_cpu_gib(&self) -> anyhow::Result<Option<f64>> {
        match self.lmcache_cpu_gib {
            Some(g) if !(g.is_finite() && g > 0.0) => {
                bail!("--lmcache-cpu-gib must be a positive number of GiB, not {g}")
            }
            g => Ok(g),
        }
    }

    /// The model's spec (a directory, the HF cache, the catalog, then the Hub).
    pub fn model_spec(&self) -> anyhow::Result<ModelSpec> {
        let looks_like_path = ["./", "../", "/", "~"]
            .iter()
            .any(|p| self.model.starts_with(p));
        if looks_like_path && !Path::new(&self.model).is_dir() {
            bail!("--model {}: no such directory", self.model);
        }
        let (model, _) =
            resolve_model(&self.model, &ResolveOptions::from_env()).context("--model")?;
        Ok(model)
    }

    /// The catalog GPU named by `--gpu`, or [`DEFAULT_GPU`].
    pub fn catalog_gpu(&self) -> anyhow::Result<GpuSpec> {
        let name = self.gpu.as_deref().unwrap_or(DEFAULT_GPU);
        catalog::gpu(name).context("--gpu")
    }

    /// The deployment on `gpu`, checked to start; the error says what to change.
    pub fn deployment(&self, model: ModelSpec, gpu: GpuSpec) -> anyhow::Result<Deployment> {
        if self.tensor_parallel_size == Some(0) {
            bail!("--tensor-parallel-size must be at least 1");
        }
        let knobs = self.knobs()?;
        let name = format!("{} on {}", model.name, gpu.name);
        Deployment::new(model, gpu, self.tensor_parallel_size, knobs)
            .with_context(|| format!("{name} cannot be deployed"))
    }

    /// The same flags as arguments, every one spelled out: what `ab --sim` hands the
    /// `ldqa serve` it starts, so parent and child describe one deployment.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<String> = vec!["--model".into(), self.model.clone()];
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                argv.push(flag.into());
                argv.push(v);
            }
        };
        push("--gpu", self.gpu.clone());
        push(
            "--tensor-parallel-size",
            self.tensor_parallel_size.map(|v| v.to_string()),
        );
        push(
            "--gpu-memory-utilization",
            Some(self.gpu_memory_utilization.to_string()),
        );
        push("--max-model-len", self.max_model_len.map(|v| v.to_string()));
        push("--kv-cache-dtype", Some(self.kv_cache_dtype.clone()));
        push(
            "--max-num-batched-tokens",
            self.max_num_batched_tokens.map(|v| v.to_string()),
        );
        push("--max-num-seqs", self.max_num_seqs.map(|v| v.to_string()));
        push("--block-size", self.block_size.map(|v| v.to_string()));
        push(
            "--num-gpu-blocks",
            self.num_gpu_blocks.map(|v| v.to_string()),
        );
        push("--vllm-version", Some(self.vllm_version.clone()));
        push(
            "--lmcache-cpu-gib",
            self.lmcache_cpu_gib.map(|v| v.to_string()),
        );
        if self.enforce_eager {
            argv.push("--enforce-eager".into());
        }
        argv.into_iter().map(OsString::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        deployment: DeploymentArgs,
    }

    fn parse(args: &[&str]) -> DeploymentArgs {
        let mut v = vec!["x"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().deployment
    }

    fn reparse(a: &DeploymentArgs) -> DeploymentArgs {
        let mut v: Vec<OsString> = vec!["x".into()];
        v.extend(a.to_argv());
        Cli::try_parse_from(v).unwrap().deployment
    }

    /// `--num-gpu-blocks` sizes the pool as vLLM's override does, and the printed vLLM
    /// command carries it.
    #[test]
    fn num_gpu_blocks_overrides_the_pool() {
        let m = catalog::model(DEFAULT_MODEL).unwrap();
        let g = catalog::gpu(DEFAULT_GPU).unwrap();
        let args = [
            "--num-gpu-blocks",
            "130",
            "--block-size",
            "128",
            "--max-model-len",
            "16384",
        ];
        let d = parse(&args).deployment(m, g).unwrap();
        assert_eq!(d.kv.num_blocks, 130);
        assert_eq!(d.kv_pool_tokens(), 130 * 128);
        let flags = d.vllm_serve_flags();
        assert!(
            flags.contains(&"--num-gpu-blocks-override 130".to_string()),
            "{flags:?}"
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        let m = || catalog::model(DEFAULT_MODEL).unwrap();
        let g = || catalog::gpu(DEFAULT_GPU).unwrap();
        for (args, flag) in [
            (
                &["--gpu-memory-utilization", "1.5"][..],
                "--gpu-memory-utilization",
            ),
            (
                &["--gpu-memory-utilization", "-0.5"][..],
                "--gpu-memory-utilization",
            ),
            (
                &["--tensor-parallel-size", "0"][..],
                "--tensor-parallel-size",
            ),
            (&["--vllm-version", "x.y"][..], "--vllm-version"),
            (&["--kv-cache-dtype", "int3"][..], "--kv-cache-dtype"),
            (&["--max-model-len", "0"][..], "--max-model-len"),
            (&["--max-num-seqs", "0"][..], "--max-num-seqs"),
            (&["--block-size", "0"][..], "--block-size"),
            (&["--num-gpu-blocks", "1"][..], "--num-gpu-blocks"),
        ] {
            let e = parse(args).deployment(m(), g()).unwrap_err();
            assert!(format!("{e:#}").contains(flag), "{args:?}: {e:#}");
        }
        let e = parse(&["--gpu", "h1000"]).catalog_gpu().unwrap_err();
        assert!(format!("{e:#}").contains("--gpu"), "{e:#}");
        let e = parse(&["--lmcache-cpu-gib", "-3"])
            .lmcache_cpu_gib()
            .unwrap_err();
        assert!(format!("{e:#}").contains("--lmcache-cpu-gib"), "{e:#}");
        let e = parse(&["--model", "./no/such/dir"])
            .model_spec()
            .unwrap_err();
        assert!(format!("{e:#}").contains("no such directory"), "{e:#}");
    }

    #[test]
    fn defaults_are_the_seed_deployment() {
        let a = parse(&[]);
        let d = a
            .deployment(a.model_spec().unwrap(), a.catalog_gpu().unwrap())
            .unwrap();
        assert_eq!((d.tp, d.kv.max_num_batched_tokens), (1, 8192));
        assert_eq!(d.vllm_serve_flags(), ["--tensor-parallel-size 1"]);
    }

    #[test]
    fn printed_vllm_flags_carry_every_knob_that_was_set() {
        let a = parse(&[
            "--gpu-memory-utilization",
            "0.8",
            "--max-model-len",
            "32768",
            "--kv-cache-dtype",
            "fp8",
            "--max-num-seqs",
            "64",
            "--max-num-batched-tokens",
            "4096",
            "--enforce-eager",
            "--block-size",
            "32",
        ]);
        let d = a
            .deployment(a.model_spec().unwrap(), a.catalog_gpu().unwrap())
            .unwrap();
        let flags = d.vllm_serve_flags().join(" ");
        for want in [
            "--tensor-parallel-size 1",
            "--gpu-memory-utilization 0.8",
            "--max-model-len 32768",
            "--kv-cache-dtype fp8",
            "--max-num-seqs 64",
            "--max-num-batched-tokens 4096",
            "--enforce-eager",
            "--block-size 32",
        ] {
            assert!(flags.contains(want), "{want} missing from {flags}");
        }
    }

    proptest! {
        /// What `ab --sim` hands its child parses back to the same description.
        #[test]
        fn argv_round_trips(
            gpu in prop::option::of(prop::sample::select(vec!["h100-80gb", "l4"])),
            tp in prop::option::of(1u32..9),
            util in 0.01f64..1.0,
            len in prop::option::of(1u64..300_000),
            dtype in prop::sample::select(vec!["auto", "fp8"]),
            mnbt in prop::option::of(1u64..100_000),
            seqs in prop::option::of(1u64..2048),
            block in prop::option::of(1u64..128),
            blocks in prop::option::of(2u64..100_000),
            eager in any::<bool>(),
            cpu in prop::option::of(0.5f64..2000.0),
        ) {
            let a = DeploymentArgs {
                model: DEFAULT_MODEL.into(),
                gpu: gpu.map(str::to_string),
                tensor_parallel_size: tp,
                gpu_memory_utilization: util,
                max_model_len: len,
                kv_cache_dtype: dtype.into(),
                max_num_batched_tokens: mnbt,
                max_num_seqs: seqs,
                block_size: block,
                num_gpu_blocks: blocks,
                enforce_eager: eager,
                vllm_version: "0.9.2".into(),
                lmcache_cpu_gib: cpu,
            };
            prop_assert_eq!(reparse(&a), a);
        }
    }
}
