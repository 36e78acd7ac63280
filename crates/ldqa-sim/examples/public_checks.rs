//! Predicts public end-to-end vLLM measurements on GPUs other than the seed's and prints
//! each next to the published figure. Nothing is fitted to them: they check the per-GPU
//! kernel curves (`data/kernels/`) with the fixed costs fitted on the seed's H100 runs.
//! Sources and workloads: docs/simulator.md, "Checked against public measurements".
//!
//! `cargo run -p ldqa-sim --release --example public_checks`
//!
//! Each workload becomes a Long Doc QA warmup round of unique prompts (completions, no
//! chat template): `requests` prompts of `input` tokens, `output` tokens each, at most
//! `concurrency` in flight, so prefix caching has nothing to hit.

use ldqa_model::{PromptTemplate, RoundKind, RoundRecord};
use ldqa_recommend::{Deployment, VllmKnobs, VllmVersion};
use ldqa_sim::protocol::{run_protocol, SimClient};
use ldqa_sim::scenario::{self, EngineMode};
use ldqa_specs::catalog;
use ldqa_workload::{Workload, WorkloadConfig};

/// What a publication measured.
#[derive(Clone, Copy)]
enum Metric {
    /// Median time to first token, ms.
    MedianTtft,
    /// Median time per output token, ms.
    MedianTpot,
    /// Mean time per output token, ms.
    MeanTpot,
    /// Time until the last request finished (a batch's latency), ms.
    RoundTime,
}

/// One published measurement.
struct Check {
    id: &'static str,
    gpu: &'static str,
    model: &'static str,
    tp: u32,
    gpu_memory_utilization: f64,
    vllm: VllmVersion,
    input: usize,
    output: u32,
    requests: usize,
    concurrency: usize,
    metric: Metric,
    published_ms: f64,
}

/// `(GPU, model, TP)`.
type Deployed = (&'static str, &'static str, u32);
/// `(input tokens, output tokens, requests, concurrency)`.
type Load = (usize, u32, usize, usize);

const fn check(
    id: &'static str,
    (gpu, model, tp): Deployed,
    (input, output, requests, concurrency): Load,
    metric: Metric,
    published_ms: f64,
) -> Check {
    Check {
        id,
        gpu,
        model,
        tp,
        gpu_memory_utilization: 0.9,
        vllm: VllmVersion(0, 10, 1),
        input,
        output,
        requests,
        concurrency,
        metric,
        published_ms,
    }
}

const LLAMA8B: &str = "meta-llama/Llama-3.1-8B-Instruct";
const LLAMA70B: &str = "meta-llama/Llama-3.1-70B-Instruct";
const QWEN3_32B: &str = "Qwen/Qwen3-32B";
const QWEN25_7B: &str = "Qwen/Qwen2.5-7B-Instruct";
const QWEN25_14B: &str = "Qwen/Qwen2.5-14B-Instruct";
const QWEN25_32B: &str = "Qwen/Qwen2.5-32B-Instruct";

fn checks() -> Vec<Check> {
    use Metric::*;
    let a7 = |id, n, metric, ms| Check {
        gpu_memory_utilization: 0.5,
        ..check(
            id,
            ("a100-80gb", QWEN25_7B, 1),
            (1024, 1024, n, n),
            metric,
            ms,
        )
    };
    let batch8 = (32, 128, 8, 8);
    vec![
        // vLLM CI benchmark_latency (offline: no HTTP front end), batch of 8, 32 in, 128 out.
        check("R1", ("h200", LLAMA8B, 1), batch8, RoundTime, 833.42),
        check("R2", ("h200", LLAMA70B, 4), batch8, RoundTime, 2077.53),
        check("A10", ("a100-80gb", LLAMA70B, 4), batch8, RoundTime, 4946.0),
        // AIConfigurator silicon_sample.csv, vLLM 0.12.0, Qwen3-32B bf16, concurrency 8.
        check(
            "H1a",
            ("h100-80gb", QWEN3_32B, 2),
            (1024, 128, 32, 8),
            MedianTtft,
            154.2,
        ),
        check(
            "H1b",
            ("h100-80gb", QWEN3_32B, 2),
            (1024, 128, 32, 8),
            MedianTpot,
            18.04,
        ),
        check(
            "H1c",
            ("h100-80gb", QWEN3_32B, 8),
            (1024, 1024, 32, 8),
            MedianTtft,
            91.8,
        ),
        check(
            "H1d",
            ("h100-80gb", QWEN3_32B, 8),
            (1024, 1024, 32, 8),
            MedianTpot,
            7.96,
        ),
        // dennislee22/vLLM-benchmarking, vLLM 0.10.1.1, random 1024/1024 all at once.
        a7("A7a", 1, MeanTpot, 11.75),
        a7("A7b", 10, MeanTpot, 13.47),
        a7("A7c", 100, MeanTpot, 25.26),
        check(
            "A8",
            ("a100-80gb", QWEN25_32B, 1),
            (1024, 1024, 10, 10),
            MeanTpot,
            51.64,
        ),
        // databasemart.com A40 benchmark: 50 concurrent, 100 in, outputs ~443 / ~504 tokens.
        check(
            "V1a",
            ("a40", LLAMA8B, 1),
            (100, 443, 50, 50),
            MedianTtft,
            219.88,
        ),
        check(
            "V1b",
            ("a40", LLAMA8B, 1),
            (100, 443, 50, 50),
            MedianTpot,
            35.96,
        ),
        check(
            "V3",
            ("a40", QWEN25_14B, 1),
            (100, 504, 50, 50),
            MedianTtft,
            1434.29,
        ),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn measure(round: &RoundRecord, metric: Metric) -> f64 {
    let ms = |ns: u64| ns as f64 / 1e6;
    let ttfts = || round.requests.iter().filter_map(|r| r.ttft_ns()).map(ms);
    let tpots = || round.requests.iter().filter_map(|r| r.tpot_ns()).map(ms);
    match metric {
        Metric::MedianTtft => median(ttfts().collect()),
        Metric::MedianTpot => median(tpots().collect()),
        Metric::MeanTpot => tpots().sum::<f64>() / round.requests.len().max(1) as f64,
        Metric::RoundTime => ms(round.duration_ns),
    }
}

fn predict(c: &Check) -> Result<(f64, String), Box<dyn std::error::Error>> {
    let knobs = VllmKnobs {
        gpu_memory_utilization: c.gpu_memory_utilization,
        version: c.vllm,
        ..VllmKnobs::default()
    };
    let model = catalog::model(c.model).ok_or("not in the catalog")?;
    let gpu = catalog::gpu(c.gpu)?;
    let deployment = Deployment::new(model, gpu, Some(c.tp), knobs)?;
    let s = scenario::build(&deployment, EngineMode::Vllm)?;
    let workload = Workload::build(&WorkloadConfig {
        num_documents: c.requests,
        document_length: c.input,
        repeat_count: 1,
        ..WorkloadConfig::default()
    })?;
    let plan = workload.plan(c.concurrency, 0);
    let client = SimClient {
        output_len: c.output,
        template: PromptTemplate::NONE,
    };
    let rounds = run_protocol(&s, &plan, &client)?;
    let warmup = rounds
        .iter()
        .find(|r| r.kind == RoundKind::Warmup)
        .ok_or("no warmup round")?;
    Ok((measure(warmup, c.metric), s.cost_source.short()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("| id | GPU | model | TP | workload | metric | published | predicted | error | step costs |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for c in checks() {
        let (predicted, source) = predict(&c)?;
        let metric = match c.metric {
            Metric::MedianTtft => "median TTFT",
            Metric::MedianTpot => "median TPOT",
            Metric::MeanTpot => "mean TPOT",
            Metric::RoundTime => "batch latency",
        };
        let error = (predicted - c.published_ms) / c.published_ms * 100.0;
        println!(
            "| {} | {} | {} | {} | {} in / {} out, {} at {} | {metric} | {:.1} ms | {predicted:.1} ms | {error:+.0} % | {source} |",
            c.id,
            c.gpu,
            c.model.rsplit('/').next().unwrap_or(c.model),
            c.tp,
            c.input,
            c.output,
            c.requests,
            c.concurrency,
            c.published_ms
        );
    }
    Ok(())
}
