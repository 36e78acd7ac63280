//! `recommend`, `predict` and `serve` describe one deployment: for every catalog model ×
//! catalog GPU × TP ∈ {1, 2, 4, 8} × a few knob sets, the same flags give the same GPU KV
//! capacity through each command's own code path (the number `recommend --json` prints
//! as `gpu_kv.pool_tokens`, the engine `predict` simulates, the one `serve` builds and
//! announces), or the same refusal; and every plan `recommend` prints can run by its own
//! numbers.

use clap::Parser;
use ldqa_specs::catalog;

use super::engine_args::ResolvedEngine;
use super::predict::PredictArgs;
use super::recommend::{self, RecommendArgs};
use super::serve::ServeArgs;

#[derive(Parser)]
enum Cli {
    Recommend(RecommendArgs),
    Predict(PredictArgs),
    Serve(ServeArgs),
}

fn parse(command: &str, flags: &[String]) -> Cli {
    let argv = ["x", command].into_iter().map(String::from);
    Cli::try_parse_from(argv.chain(flags.iter().cloned())).unwrap()
}

/// GPU KV tokens of the one engine a resolved `predict` or `serve` builds, checking that
/// the line `serve` announces says the same.
fn engine_kv(r: anyhow::Result<ResolvedEngine>) -> Option<u64> {
    let r = r.ok()?;
    let kv = r.single().unwrap().config.gpu_kv_tokens;
    let announced = format!("GPU KV {kv} tokens");
    assert!(r.description.contains(&announced), "{}", r.description);
    Some(kv)
}

fn recommend_kv(flags: &[String]) -> Option<u64> {
    let Cli::Recommend(args) = parse("recommend", flags) else {
        unreachable!()
    };
    let resolved = recommend::resolve(&args).ok()?;
    let input = &resolved.input;
    let Ok(p) = ldqa_recommend::plan(input) else {
        // Still a deployment vLLM starts: refused for its workload, not its engine.
        return Some(input.deployment.kv_pool_tokens());
    };
    let d = &input.deployment;
    let w = &input.workload;
    assert!(d.kv.num_blocks > 0 && d.kv.fits_one_request(), "{flags:?}");
    assert!(
        d.model.num_attention_heads.is_multiple_of(p.tp),
        "{flags:?}"
    );
    assert!(p.num_documents >= 1, "{flags:?}");
    assert!(
        w.document_length + w.output_len <= d.kv.max_model_len,
        "{flags:?}"
    );
    assert!(
        p.offload.offload_gib > p.offload.kv_gib_per_gpu,
        "{flags:?}"
    );
    let json = recommend::plan_json(input, &p, &d.vllm_serve_flags(), String::new());
    json["gpu_kv"]["pool_tokens"].as_u64()
}

#[test]
fn every_command_sizes_the_same_gpu_kv_cache() {
    let knob_sets: [&[&str]; 3] = [
        &[],
        &[
            "--gpu-memory-utilization",
            "0.8",
            "--max-model-len",
            "32768",
        ],
        &[
            "--kv-cache-dtype",
            "fp8",
            "--max-num-batched-tokens",
            "4096",
            "--max-num-seqs",
            "64",
            "--enforce-eager",
            "--vllm-version",
            "0.21.0",
        ],
    ];
    let (mut cases, mut deployable) = (0, 0);
    for model in catalog::model_names() {
        for gpu in catalog::gpu_names() {
            for tp in ["1", "2", "4", "8"] {
                for knobs in knob_sets {
                    let base = ["--model", model, "--gpu", gpu, "--tensor-parallel-size", tp];
                    let flags: Vec<String> =
                        base.iter().chain(knobs).map(|s| s.to_string()).collect();
                    let mut planning = flags.clone();
                    planning.extend(["--cpu-ram-gib", "100000"].map(String::from));
                    let recommended = recommend_kv(&planning);
                    let Cli::Predict(p) = parse("predict", &flags) else {
                        unreachable!()
                    };
                    let Cli::Serve(s) = parse("serve", &flags) else {
                        unreachable!()
                    };
                    let predicted = engine_kv(p.engine.resolve(p.engine_choice.kinds()));
                    let served = engine_kv(s.engine.resolve(s.engine_choice.kinds()));
                    // A GPU without the peaks the cost model needs cannot be simulated.
                    let simulable = catalog::gpu(gpu).unwrap().bf16_flops > 0;
                    if simulable {
                        assert_eq!(recommended, predicted, "{flags:?}");
                    }
                    assert_eq!(predicted, served, "{flags:?}");
                    cases += 1;
                    deployable += usize::from(recommended.is_some());
                }
            }
        }
    }
    assert!(
        cases > 1000 && deployable > cases / 4,
        "{deployable} of {cases}"
    );
}

/// Every deployment flag parses to the same description in every command that takes it.
#[test]
fn each_deployment_flag_means_the_same_in_every_command() {
    use super::ab::AbArgs;
    use super::deployment_args::DeploymentArgs;

    #[derive(Parser)]
    enum WithAb {
        Recommend(RecommendArgs),
        Predict(PredictArgs),
        Serve(ServeArgs),
        Ab(AbArgs),
    }
    let parsed = |command: &str, flag: &[&str]| -> DeploymentArgs {
        let argv = ["x", command].into_iter().chain(flag.iter().copied());
        match WithAb::try_parse_from(argv).unwrap() {
            WithAb::Recommend(a) => a.deployment,
            WithAb::Predict(a) => a.engine.deployment,
            WithAb::Serve(a) => a.engine.deployment,
            WithAb::Ab(a) => a.deployment,
        }
    };
    let flags: [&[&str]; 12] = [
        &["--model", "Qwen/Qwen3-8B"],
        &["--gpu", "l40s"],
        &["--tensor-parallel-size", "2"],
        &["--gpu-memory-utilization", "0.75"],
        &["--max-model-len", "8192"],
        &["--kv-cache-dtype", "fp8"],
        &["--max-num-batched-tokens", "4096"],
        &["--max-num-seqs", "32"],
        &["--block-size", "32"],
        &["--enforce-eager"],
        &["--vllm-version", "0.21.1"],
        &["--lmcache-cpu-gib", "12.5"],
    ];
    let defaults = parsed("recommend", &[]);
    for flag in flags {
        let want = parsed("recommend", flag);
        assert_ne!(want, defaults, "{flag:?} changed nothing");
        for command in ["predict", "serve", "ab"] {
            assert_eq!(parsed(command, flag), want, "{command} {flag:?}");
        }
    }
}
