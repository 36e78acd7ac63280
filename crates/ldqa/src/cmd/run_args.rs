//! The flags of `ldqa run`: LMCache `long_doc_qa.py`'s, under the same names, and ours.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ldqa_model::{Api, Plan};
use ldqa_workload::arrivals::OpenLoop;
use ldqa_workload::{HitMissRatio, RepeatMode, TextSource, Workload, WorkloadConfig};

use crate::output::Gates;

/// Arguments of `ldqa run`: the workload flags (shared with `ldqa predict`) and the server's.
#[derive(Debug, Clone, Args)]
// Negative numbers are values, so that `-5` gets a range error naming its flag.
#[command(allow_negative_numbers = true)]
pub struct RunArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,

    /// Server host (default localhost; exclusive with --base-url).
    #[arg(long, help_heading = "Server", conflicts_with = "base_url")]
    pub host: Option<String>,

    /// Server port (default 8000; exclusive with --base-url).
    #[arg(long, help_heading = "Server", conflicts_with = "base_url")]
    pub port: Option<u16>,

    /// API root, e.g. http://localhost:8000/v1 (exclusive with --host/--port). Give it once
    /// per server to spread each round over several (request i to server i mod N: a
    /// client-side round robin), with a section per server in the output.
    #[arg(long, value_name = "URL", help_heading = "Server")]
    pub base_url: Vec<String>,

    /// Model name, or `auto` for the first model the server lists at /v1/models.
    #[arg(long, default_value = "auto", help_heading = "Server")]
    pub model: String,

    /// API key sent as a bearer token (never printed).
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Server"
    )]
    pub api_key: Option<String>,

    /// Give up on a request after this many seconds (default: wait forever, like upstream).
    #[arg(
        long,
        value_name = "SECONDS",
        allow_negative_numbers = true,
        help_heading = "Server"
    )]
    pub request_timeout: Option<f64>,

    /// Fail a request whose stream has sent nothing for this many seconds once the
    /// server has answered (a stalled server); 0 waits forever, like upstream.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600.0,
        allow_negative_numbers = true,
        help_heading = "Server"
    )]
    pub stall_timeout: f64,

    /// Prometheus endpoint read around each round (default: /metrics beside the API).
    /// With several --base-url, once per server in the same order; through a router (one
    /// --base-url), once per instance behind it, for a section of each one's counters.
    #[arg(long, value_name = "URL", help_heading = "Server")]
    pub metrics_url: Vec<String>,

    /// Do not read the server's /metrics.
    #[arg(long, conflicts_with = "metrics_url", help_heading = "Server")]
    pub no_metrics: bool,

    /// Write every response to this file (`-` for stdout, as upstream does by default).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
}

/// The workload, output and gate flags of `ldqa run`, shared with `ldqa predict`.
///
/// Defaults follow the seed tutorial where it states them (20 documents of 10000 tokens,
/// 100 output tokens) and LMCache's `long_doc_qa.py` elsewhere (repeat count 2, random
/// order, seed 0, 2 requests in flight).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Workload (same flags as LMCache long_doc_qa.py)")]
pub struct WorkloadArgs {
    /// Number of documents (the seed tutorial's default; upstream's script uses 8).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub num_documents: usize,

    /// Length of each document: "hi" words, or exact tokens with --tokenizer
    /// (the seed tutorial's default; upstream's script uses 20000).
    #[arg(long, default_value_t = 10_000, value_name = "TOKENS")]
    pub document_length: usize,

    /// Maximum tokens generated per request (max_tokens).
    #[arg(long, default_value_t = 100, value_name = "TOKENS")]
    pub output_len: u32,

    /// Times each document is repeated in the query round.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub repeat_count: usize,

    /// Order of the query round: random (shuffled, seeded), tile (1 2 3 1 2 3), interleave (1 1 2 2 3 3).
    #[arg(long, default_value = "random", value_name = "MODE", value_parser = parse_repeat_mode)]
    pub repeat_mode: RepeatMode,

    /// Seed of the shuffle and of the miss prefixes (Python's `random`, so orders match upstream's).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "SEED",
        allow_negative_numbers = true
    )]
    pub shuffle_seed: i64,

    /// In the query round, H hits then M forced misses, repeated (e.g. 2:2).
    #[arg(long, value_name = "H:M", value_parser = parse_hit_miss)]
    pub hit_miss_ratio: Option<HitMissRatio>,

    /// Seconds to wait between the warmup and the query round.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub sleep_time_after_warmup: f64,

    /// Maximum number of requests in flight.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_inflight_requests: usize,

    /// Open loop: send the warmup and query requests at this mean rate (requests per
    /// second, Poisson unless --burstiness), instead of keeping --max-inflight-requests in
    /// flight. TTFT then includes queueing at the server.
    #[arg(
        long,
        value_name = "R",
        allow_negative_numbers = true,
        help_heading = "Open-loop arrivals"
    )]
    pub request_rate: Option<f64>,

    /// Gamma shape of the gaps between arrivals, as vLLM's bench: 1 is Poisson, below 1
    /// burstier, above 1 more even.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "B",
        requires = "request_rate",
        allow_negative_numbers = true,
        help_heading = "Open-loop arrivals"
    )]
    pub burstiness: f64,

    /// Open loop (or a trace): at most this many requests in flight; one due while all
    /// are busy is sent late, and the lag is reported.
    #[arg(long, value_name = "N", help_heading = "Open-loop arrivals")]
    pub max_concurrency: Option<usize>,

    /// Use /v1/completions instead of /v1/chat/completions.
    #[arg(long)]
    pub completions: bool,

    /// Bias against this token id (logit_bias -100) so every output is --output-len tokens.
    #[arg(long, value_name = "ID")]
    pub eos_token_id: Option<u32>,

    /// Build documents of exactly --document-length tokens with this tokenizer
    /// (a tokenizer.json file or a model directory).
    #[arg(long, value_name = "PATH", help_heading = "Documents")]
    pub tokenizer: Option<PathBuf>,

    /// Document text: hi (upstream's "hi hi hi …") or random (random tokens; needs
    /// --tokenizer; built before the run into a temporary file under $TMPDIR, about 5 bytes
    /// per token, deleted when ldqa exits).
    #[arg(long, default_value = "hi", value_name = "SOURCE", value_parser = parse_text_source, help_heading = "Documents")]
    pub text_source: TextSource,

    /// Folder for warmup_round.csv, query_round.csv, records.jsonl and plots.
    #[arg(long, default_value = ".", value_name = "DIR", help_heading = "Output")]
    pub output_dir: PathBuf,

    /// Write the full result (config, environment, summaries, every request) as JSON.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub save_result: Option<PathBuf>,

    /// Draw warmup_round.png and query_round.png (per-request timelines) and report.html.
    #[arg(long, help_heading = "Output")]
    pub visualize: bool,

    /// Print upstream's one-line JSON summary last on stdout.
    #[arg(long, help_heading = "Output")]
    pub json_output: bool,

    /// Fail (exit 1) when warmup/query mean TTFT is below this factor.
    #[arg(
        long,
        value_name = "FACTOR",
        allow_negative_numbers = true,
        help_heading = "Gates"
    )]
    pub expected_ttft_gain: Option<f64>,

    /// Fail (exit 1) when warmup/query per-prompt round time is below this factor.
    #[arg(
        long,
        value_name = "FACTOR",
        allow_negative_numbers = true,
        help_heading = "Gates"
    )]
    pub expected_latency_gain: Option<f64>,
}

impl WorkloadArgs {
    /// Validates the workload and gate flags and returns the workload to build; the error
    /// names the flag.
    pub fn config(&self) -> anyhow::Result<WorkloadConfig> {
        let workload = WorkloadConfig {
            num_documents: self.num_documents,
            document_length: self.document_length,
            repeat_count: self.repeat_count,
            repeat_mode: self.repeat_mode,
            shuffle_seed: self.shuffle_seed,
            hit_miss: self.hit_miss_ratio,
            text: self.text_source,
            tokenizer: self.tokenizer.clone(),
        };
        workload.validate()?;
        if self.output_len == 0 {
            bail!("--output-len must be at least 1");
        }
        if self.max_inflight_requests == 0 {
            bail!("--max-inflight-requests must be at least 1");
        }
        check_gain_gates(self.expected_ttft_gain, self.expected_latency_gain)?;
        self.open_loop()?;
        Ok(workload)
    }

    /// `--request-rate`, `--burstiness` and `--max-concurrency`, checked: `None` in closed
    /// loop. Arrivals are drawn with `--shuffle-seed`.
    pub fn open_loop(&self) -> anyhow::Result<Option<OpenLoop>> {
        let Some(rate_per_s) = self.request_rate else {
            if self.max_concurrency.is_some() {
                bail!(
                    "--max-concurrency caps open-loop arrivals: give --request-rate too (the closed loop's cap is --max-inflight-requests)"
                );
            }
            return Ok(None);
        };
        let open = OpenLoop {
            rate_per_s,
            burstiness: self.burstiness,
            max_concurrency: self.max_concurrency,
            seed: self.shuffle_seed as u64,
        };
        open.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(open))
    }

    /// The rounds of `workload`: closed loop, or open loop with `--request-rate`; the
    /// query round after `pause_ns`.
    pub fn plan(&self, workload: &Workload, pause_ns: u64) -> anyhow::Result<Plan> {
        Ok(match self.open_loop()? {
            None => workload.plan(self.max_inflight_requests, pause_ns),
            Some(open) => workload.plan_open_loop(self.max_inflight_requests, &open, pause_ns),
        })
    }

    /// `--sleep-time-after-warmup` as a duration.
    pub fn sleep_after_warmup(&self) -> anyhow::Result<Duration> {
        seconds(
            "--sleep-time-after-warmup",
            self.sleep_time_after_warmup,
            true,
        )
    }

    /// Chat, or completions with `--completions`.
    pub fn api(&self) -> Api {
        if self.completions {
            Api::Completions
        } else {
            Api::Chat
        }
    }

    /// The gain gates (`--expected-ttft-gain`, `--expected-latency-gain`).
    pub fn gates(&self) -> Gates {
        Gates {
            expected_ttft_gain: self.expected_ttft_gain,
            expected_latency_gain: self.expected_latency_gain,
        }
    }
}

/// A flag's seconds as a duration; the error names the flag.
/// `--expected-ttft-gain` and `--expected-latency-gain` must be positive factors
/// (shared by `run`, `predict` and `ab`).
pub fn check_gain_gates(ttft: Option<f64>, latency: Option<f64>) -> anyhow::Result<()> {
    for (flag, v) in [
        ("--expected-ttft-gain", ttft),
        ("--expected-latency-gain", latency),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            bail!("{flag} must be a positive factor such as 2.5, not {v}");
        }
    }
    Ok(())
}

pub fn seconds(flag: &str, v: f64, zero_ok: bool) -> anyhow::Result<Duration> {
    if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) {
        bail!(
            "{flag} must be a {} number of seconds, not {v}",
            if zero_ok { "non-negative" } else { "positive" }
        );
    }
    Duration::try_from_secs_f64(v).with_context(|| format!("{flag} is too large"))
}

pub(crate) fn parse_repeat_mode(s: &str) -> Result<RepeatMode, String> {
    s.parse()
        .map_err(|_| format!("unknown mode {s:?}; expected random, tile or interleave"))
}

pub(crate) fn parse_hit_miss(s: &str) -> Result<HitMissRatio, String> {
    s.parse()
        .map_err(|e: ldqa_workload::WorkloadError| e.to_string())
}

pub(crate) fn parse_text_source(s: &str) -> Result<TextSource, String> {
    s.parse()
        .map_err(|_| format!("unknown text source {s:?}; expected hi or random"))
}
