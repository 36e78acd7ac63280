//! The resolved configuration each command records in its result (the `config` object of
//! `--save-result`, `result.json`, `ab_result.json`): typed, so that the keys cannot drift
//! between commands; `docs/result-schema.json` checks them.

use ldqa_model::Api;
use ldqa_sim::{Efficiencies, EngineKind, Scenario};
use ldqa_workload::WorkloadConfig;
use serde::Serialize;

use crate::cmd::run_args::WorkloadArgs;

/// The workload part, the same in `run` and `predict`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadRecord {
    /// Documents, repeats, order, misses, text.
    pub workload: WorkloadConfig,
    /// `max_tokens` of every request.
    pub output_len: u32,
    /// The in-flight cap.
    pub max_inflight_requests: usize,
    /// Pause before the query round, seconds.
    pub sleep_time_after_warmup_s: f64,
    /// Chat or completions.
    pub api: Api,
    /// `--request-rate` (open loop), requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<f64>,
    /// `--burstiness` (open loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// `--max-concurrency` (open loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// `--expected-ttft-gain`.
    pub expected_ttft_gain: Option<f64>,
    /// `--expected-latency-gain`.
    pub expected_latency_gain: Option<f64>,
}

impl WorkloadRecord {
    /// The record of `args`, whose checked workload is `workload`.
    pub fn new(args: &WorkloadArgs, workload: &WorkloadConfig) -> Self {
        WorkloadRecord {
            workload: workload.clone(),
            output_len: args.output_len,
            max_inflight_requests: args.max_inflight_requests,
            sleep_time_after_warmup_s: args.sleep_time_after_warmup,
            api: args.api(),
            request_rate: args.request_rate,
            burstiness: args.request_rate.map(|_| args.burstiness),
            max_concurrency: args.max_concurrency,
            expected_ttft_gain: args.expected_ttft_gain,
            expected_latency_gain: args.expected_latency_gain,
        }
    }
}

/// `ldqa run`'s configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Always `run`.
    pub command: &'static str,
    /// The model the requests named.
    pub model: String,
    /// The server's API root (the first, with several).
    pub base_url: String,
    /// With several servers: every API root, in `--base-url` order.
    #[serde(skip_serializing_if = "fewer_than_two")]
    pub base_urls: Vec<String>,
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadRecord,
    /// Token id biased against, if any.
    pub eos_token_id: Option<u32>,
    /// Whole-request limit, seconds.
    pub request_timeout_s: Option<f64>,
    /// Longest silence of a stream, seconds (`None`: none).
    pub stall_timeout_s: Option<f64>,
    /// Where server metrics were read (the first server's, with several).
    pub metrics_url: Option<String>,
    /// With several servers: where each one's metrics were read.
    #[serde(skip_serializing_if = "fewer_than_two")]
    pub metrics_urls: Vec<String>,
}

fn fewer_than_two(urls: &[String]) -> bool {
    urls.len() < 2
}

/// `ldqa predict`'s configuration, one engine.
#[derive(Debug, Clone, Serialize)]
pub struct PredictConfig {
    /// Always `predict`.
    pub command: &'static str,
    /// Which engine was simulated.
    pub engine: EngineKind,
    /// The simulated model.
    pub model: String,
    /// The simulated GPU.
    pub gpu: String,
    /// Tensor-parallel size.
    pub tensor_parallel_size: u32,
    /// GPU KV capacity the engine ran with, tokens.
    pub gpu_kv_tokens: u64,
    /// `max_model_len`, tokens.
    pub max_model_len_tokens: u64,
    /// LMCache's CPU tier, GiB per GPU (LMCache only).
    pub lmcache_cpu_gib_per_rank: Option<f64>,
    /// LMCache's CPU tier, tokens (0 for vLLM).
    pub cpu_tier_tokens: u64,
    /// vLLM's `max_num_batched_tokens`.
    pub max_num_batched_tokens: u32,
    /// vLLM's `max_num_seqs`.
    pub max_num_seqs: u32,
    /// Whether the step costs rest on measurements of this GPU or server.
    pub efficiencies_calibrated: bool,
    /// Where the step costs come from, in words.
    pub step_costs: String,
    /// The efficiencies used.
    pub efficiencies: Efficiencies,
    /// The workload.
    #[serde(flatten)]
    pub workload: WorkloadRecord,
    /// The untimed pre-warmup round's simulated time, ns.
    pub pre_warmup_time_ns: u64,
}

impl PredictConfig {
    /// The record of one engine's prediction.
    pub fn new(
        kind: EngineKind,
        scenario: &Scenario,
        workload: WorkloadRecord,
        pre_warmup_time_ns: u64,
    ) -> Self {
        let c = &scenario.config;
        PredictConfig {
            command: "predict",
            engine: kind,
            model: scenario.model_name.clone(),
            gpu: c.gpu.name.clone(),
            tensor_parallel_size: c.tp,
            gpu_kv_tokens: c.gpu_kv_tokens,
            max_model_len_tokens: c.max_model_len_tokens,
            lmcache_cpu_gib_per_rank: scenario.cpu_gib_per_rank,
            cpu_tier_tokens: scenario.cpu_tier_tokens(),
            max_num_batched_tokens: c.max_num_batched_tokens,
            max_num_seqs: c.max_num_seqs,
            efficiencies_calibrated: scenario.calibrated(),
            step_costs: scenario.cost_source.describe(),
            efficiencies: scenario.efficiencies.clone(),
            workload,
            pre_warmup_time_ns,
        }
    }
}

/// Serializes a record into the `config` object a report carries.
pub fn to_value(record: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(record)
        .expect("invariant: records serialize (no maps with non-string keys)")
}

/// `ldqa ab`'s configuration: the deployment both servers run and the workload.
#[derive(Debug, Clone, Serialize)]
pub struct AbConfig {
    /// Always `ab`.
    pub command: &'static str,
    /// The model as given.
    pub model: String,
    /// The GPU planned for (`None` without a GPU to plan for).
    pub gpu: Option<String>,
    /// The tensor-parallel size planned.
    pub tensor_parallel_size: Option<u32>,
    /// The `vllm serve` flags of the deployment.
    pub vllm_serve_flags: Option<Vec<String>>,
    /// Whether both servers were simulated.
    pub sim: bool,
    /// Simulated seconds per wall second (1 for real servers).
    pub time_scale: f64,
    /// Documents, repeats, order.
    pub workload: WorkloadConfig,
    /// `max_tokens` of every request.
    pub output_len: u32,
    /// The in-flight cap.
    pub max_inflight_requests: usize,
    /// Runs per engine.
    pub trials: usize,
    /// `LMCACHE_MAX_LOCAL_CPU_SIZE`, GiB per GPU.
    pub lmcache_max_local_cpu_size_gib: Option<u64>,
    /// The planned GPU KV capacity, tokens (what a simulated server runs with).
    pub gpu_kv_tokens: Option<u64>,
    /// How the baseline server was started.
    pub baseline_cmd: String,
    /// How the LMCache server was started.
    pub lmcache_cmd: String,
    /// `--expected-ttft-gain`.
    pub expected_ttft_gain: Option<f64>,
    /// `--expected-latency-gain`.
    pub expected_latency_gain: Option<f64>,
}

/// One engine run of `ab`: the A/B configuration, which arm, and its server.
#[derive(Debug, Clone, Serialize)]
pub struct EngineRunConfig {
    /// What both arms share.
    #[serde(flatten)]
    pub ab: AbConfig,
    /// `baseline` or `lmcache`.
    pub engine: String,
    /// How this arm's server was started.
    pub server_command: String,
    /// The server's API root, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The GPU KV capacity a simulated server announced it runs with, tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_gpu_kv_tokens: Option<u64>,
}
