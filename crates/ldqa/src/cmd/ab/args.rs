//! The flags of `ldqa ab`.

use std::path::PathBuf;

use clap::Args;

use ldqa_workload::{HitMissRatio, RepeatMode, TextSource};

use crate::cmd::deployment_args::DeploymentArgs;
use crate::cmd::run_args::{parse_hit_miss, parse_repeat_mode, parse_text_source};

/// Arguments of `ldqa ab`.
#[derive(Debug, Clone, Args)]
// Negative numbers are values, so that `-5` gets a range error naming its flag.
#[command(allow_negative_numbers = true)]
pub struct AbArgs {
    /// Both servers are the simulated engine (`ldqa serve`), reached over real HTTP.
    #[arg(long)]
    pub sim: bool,

    /// The deployment both servers run (LMCache's CPU size defaults to the recommender's).
    #[command(flatten)]
    pub deployment: DeploymentArgs,

    /// Host RAM for LMCache, GiB (default: 1000 with --sim, else MemAvailable).
    #[arg(long, value_name = "GIB")]
    pub cpu_ram_gib: Option<f64>,

    /// Shell command that starts the baseline server (default: the recommender's `vllm serve`).
    #[arg(long, value_name = "CMD", help_heading = "Servers")]
    pub baseline_cmd: Option<String>,

    /// Shell command that starts the LMCache server (default: the recommender's).
    #[arg(long, value_name = "CMD", help_heading = "Servers")]
    pub lmcache_cmd: Option<String>,

    /// API root of the baseline server (default: the URL it prints as `listening on http://…`,
    /// else http://127.0.0.1:8000/v1).
    #[arg(long, value_name = "URL", help_heading = "Servers")]
    pub baseline_url: Option<String>,

    /// API root of the LMCache server (same default as --baseline-url).
    #[arg(long, value_name = "URL", help_heading = "Servers")]
    pub lmcache_url: Option<String>,

    /// Seconds to wait for a server to answer /health and /v1/models.
    #[arg(
        long,
        default_value_t = 600.0,
        value_name = "SECONDS",
        help_heading = "Servers"
    )]
    pub ready_timeout: f64,

    /// With --sim only (default 2): simulated time runs this many times faster than the wall
    /// clock. Reported times are simulated seconds. Faster also multiplies the machine's own
    /// delays (thread wake-ups, loopback): at 2 the seed's tutorial matches `ldqa predict`
    /// within 1 %; at 4 its warmup TTFT came out up to 7.5 % high on a 2-core machine.
    // An Option, not a default value, so that a --time-scale given without --sim is seen and
    // refused instead of silently ignored.
    #[arg(long, value_name = "F", help_heading = "Servers")]
    pub time_scale: Option<f64>,

    /// Number of documents (default: the recommender's).
    #[arg(long, value_name = "N", help_heading = "Workload")]
    pub num_documents: Option<usize>,

    /// Tokens ("hi" words) per document.
    #[arg(
        long,
        default_value_t = 10_000,
        value_name = "TOKENS",
        help_heading = "Workload"
    )]
    pub document_length: usize,

    /// Maximum tokens generated per request.
    #[arg(
        long,
        default_value_t = 100,
        value_name = "TOKENS",
        help_heading = "Workload"
    )]
    pub output_len: u32,

    /// Times each document is repeated in the query round (1, the seed tutorial's; `ldqa run`
    /// keeps upstream's 2).
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Workload")]
    pub repeat_count: usize,

    /// Maximum number of requests in flight (4, the seed tutorial's; `ldqa run` keeps
    /// upstream's 2).
    #[arg(long, default_value_t = 4, value_name = "N", help_heading = "Workload")]
    pub max_inflight_requests: usize,

    /// Use /v1/completions instead of /v1/chat/completions.
    #[arg(long, help_heading = "Workload")]
    pub completions: bool,

    /// Order of the query round: tile (the seed tutorial's, and this default), interleave or
    /// random (as `ldqa run`, whose default is upstream's random).
    #[arg(long, default_value = "tile", value_name = "MODE", value_parser = parse_repeat_mode, help_heading = "Workload")]
    pub repeat_mode: RepeatMode,

    /// Seed of the shuffle and of the miss prefixes (as `ldqa run`).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "SEED",
        help_heading = "Workload"
    )]
    pub shuffle_seed: i64,

    /// In the query round, H hits then M forced misses, repeated (e.g. 2:2), as `ldqa run`.
    #[arg(long, value_name = "H:M", value_parser = parse_hit_miss, help_heading = "Workload")]
    pub hit_miss_ratio: Option<HitMissRatio>,

    /// Documents of exactly --document-length tokens with this tokenizer (a tokenizer.json
    /// or a model directory), as `ldqa run`.
    #[arg(long, value_name = "PATH", help_heading = "Workload")]
    pub tokenizer: Option<PathBuf>,

    /// hi (upstream's "hi hi hi …") or random (realistic token text; needs --tokenizer).
    #[arg(long, default_value = "hi", value_name = "SOURCE", value_parser = parse_text_source, help_heading = "Workload")]
    pub text_source: TextSource,

    /// Run each engine this many times (a fresh server each time); gains get 95% intervals.
    /// (Not --repeat-count, which repeats documents within one run.)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub trials: usize,

    /// Reuse engine results already in --output-dir instead of measuring them again.
    #[arg(long)]
    pub resume: bool,

    /// Folder for per-engine CSVs, results and server logs, ab_result.json and report.html.
    #[arg(long, default_value = "ldqa-ab", value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Fail (exit 1) when baseline query mean TTFT / LMCache query mean TTFT is below this.
    #[arg(long, value_name = "FACTOR", help_heading = "Gates")]
    pub expected_ttft_gain: Option<f64>,

    /// Fail (exit 1) when baseline / LMCache query per-prompt round time is below this.
    #[arg(long, value_name = "FACTOR", help_heading = "Gates")]
    pub expected_latency_gain: Option<f64>,
}
