//! `ldqa multi-round-qa`: LMCache's multi-round QA benchmark (users in conversations whose
//! history grows every round, joining at `--qps`), drop-in for upstream's
//! `multi-round-qa.py`: its flags, its periodic performance block and its `summary.csv`;
//! plus ldqa's table (TTFT, cached tokens, hit rate) and `multi_round_qa.json`.
//!
//! Against a server (`--base-url`, [`live`]) or in virtual time on the simulated engine
//! (`--predict`, [`predict`]), which tokenizes the conversation as `ldqa serve` does, so a
//! prediction and a served run see the same prompts.

mod live;
mod predict;
mod summary;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ldqa_workload::multi_round::{MultiRoundConfig, SessionEvent, ShareGpt};

use super::engine_args::{EngineArgs, EngineChoice};
use crate::exit::ExitStatus;
use summary::{EngineRun, QaDocument, QaRun};

/// Arguments of `ldqa multi-round-qa`: upstream's flags under their names, then ldqa's.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("model", |a| a.long("deployment-model").hide(true)))]
pub struct MultiRoundArgs {
    /// Max number of users in the system concurrently.
    #[arg(long, value_name = "N")]
    pub num_users: u32,

    /// Length of the shared system prompt (tokens).
    #[arg(long, value_name = "TOKENS")]
    pub shared_system_prompt: u32,

    /// Length of the user-specific history prompt (tokens).
    #[arg(long, value_name = "TOKENS")]
    pub user_history_prompt: u32,

    /// Length of the answer in one round (max_tokens).
    #[arg(long, value_name = "TOKENS")]
    pub answer_len: u32,

    /// Number of rounds in the conversation.
    #[arg(long, value_name = "N")]
    pub num_rounds: u32,

    /// Overall QPS.
    #[arg(long, value_name = "QPS")]
    pub qps: f64,

    /// Model name to send (default: the first the server lists); with --predict, the
    /// simulated model (catalog name or local folder; default Llama-3.1-8B-Instruct).
    #[arg(long = "model", value_name = "NAME")]
    pub served_model: Option<String>,

    /// Base URL of the serving engine endpoint, e.g. http://localhost:8000/v1 (a router's,
    /// or one instance's). Given several times, each user talks to one instance, user `u`
    /// to the `u mod N`-th (client-side session affinity), and the table gains a line per
    /// instance.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "predict",
        action = clap::ArgAction::Append
    )]
    pub base_url: Vec<String>,

    /// A server's Prometheus endpoint, once per instance (ldqa's, not upstream's): each
    /// instance's own requests and prefix-cache hits over the run, printed under the table
    /// with whether they add up to what the client saw.
    #[arg(long, value_name = "URL", conflicts_with = "predict")]
    pub metrics_url: Vec<String>,

    /// The time to run the simulation in seconds (default: until Ctrl-C; required with
    /// --predict).
    #[arg(long, value_name = "SECONDS", required_if_eq("predict", "true"))]
    pub time: Option<f64>,

    /// The output file name for the summary csv.
    #[arg(long, default_value = "summary.csv", value_name = "FILE")]
    pub output: PathBuf,

    /// The initial user id to start with.
    #[arg(long, default_value_t = 0, value_name = "ID")]
    pub init_user_id: u64,

    /// Accepted for upstream's scripts: the x-user-id header is always sent, as upstream does.
    #[arg(long)]
    pub request_with_user_id: bool,

    /// The time between two summary loggings in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub log_interval: f64,

    /// Log every request.
    #[arg(long)]
    pub verbose: bool,

    /// Ask ShareGPT's conversations instead of the "hi" questions: upstream's preprocessed
    /// ShareGPT.json (in the current folder), or FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "ShareGPT.json")]
    pub sharegpt: Option<PathBuf>,

    /// Strictly enforce concurrent users count to match --num-users.
    #[arg(long)]
    pub enforce_strict_concurrent_users: bool,

    /// Disable the initial ramp-up phase, allowing users to join gradually.
    #[arg(long)]
    pub disable_ramp_up: bool,

    /// Skip upstream's warm-up (ten short requests before the run, not recorded).
    #[arg(long)]
    pub no_warmup: bool,

    /// Folder for multi_round_qa.json.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Run in virtual time on the simulated engine instead of against a server (the
    /// deployment flags below describe it).
    #[arg(long, conflicts_with = "base_url")]
    pub predict: bool,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// With --predict: the simulated engines behind a router (--instances, --router,
    /// --remote-gib); each user is a session.
    #[command(flatten)]
    pub cluster: crate::cmd::predict_trace::ClusterArgs,

    /// With --predict: vllm, lmcache, or both side by side.
    #[arg(
        long = "engine",
        value_enum,
        default_value_t = EngineChoice::Vllm,
        value_name = "ENGINE",
        help_heading = "Simulated engine"
    )]
    pub engine_choice: EngineChoice,

    /// With --predict: count tokens with this tokenizer.json (as `ldqa serve --tokenizer`).
    #[arg(long, value_name = "FILE", help_heading = "Simulated engine")]
    pub tokenizer: Option<PathBuf>,
}

impl MultiRoundArgs {
    fn config(&self) -> anyhow::Result<MultiRoundConfig> {
        let config = MultiRoundConfig {
            num_users: self.num_users,
            num_rounds: self.num_rounds,
            qps: self.qps,
            shared_system_prompt: self.shared_system_prompt,
            user_history_prompt: self.user_history_prompt,
            answer_len: self.answer_len,
            init_user_id: self.init_user_id,
            ramp_up: !self.disable_ramp_up,
            strict_concurrent_users: self.enforce_strict_concurrent_users,
        };
        config.validate().map_err(anyhow::Error::msg)?;
        if let Some(t) = self.time {
            anyhow::ensure!(
                t.is_finite() && t > 0.0,
                "--time must be a positive number of seconds, not {t}"
            );
        }
        anyhow::ensure!(
            self.log_interval.is_finite() && self.log_interval > 0.0,
            "--log-interval must be a positive number of seconds, not {}",
            self.log_interval
        );
        if !self.predict {
            anyhow::ensure!(
                self.tokenizer.is_none() && self.engine_choice == EngineChoice::Vllm,
                "--tokenizer and --engine describe the simulated engine: they need --predict"
            );
        }
        Ok(config)
    }
}

/// Entry point of `ldqa multi-round-qa`.
pub fn run(args: MultiRoundArgs) -> anyhow::Result<ExitStatus> {
    let config = args.config()?;
    let questions = match &args.sharegpt {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--sharegpt {}", path.display()))?;
            let data = ShareGpt::parse(&text, config.num_rounds)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("--sharegpt {}", path.display()))?;
            log_info(&format!("There are {} users satisfying ", data.len()));
            Some(data)
        }
    };
    log_info(&format!(
        "Gap between users: {} secs.\nGap between user reqs: {} secs.\nExpected length of user session: {} secs.",
        config.gap_between_users_s(),
        config.gap_between_requests_s(),
        config.session_alive_s()
    ));
    anyhow::ensure!(
        args.predict || args.cluster.is_single_engine(),
        "--instances and --remote-gib simulate a cluster: with --predict (against servers, give --base-url once per instance, or a router's)"
    );
    if args.predict {
        args.cluster.check_single()?;
    }
    for url in &args.metrics_url {
        ldqa_loadgen::Endpoint::new(url, None).with_context(|| format!("--metrics-url {url}"))?;
    }
    let (description, runs, counters) = if args.predict {
        let (description, runs) = predict::run(&args, &config, questions.as_ref())?;
        (description, runs, Vec::new())
    } else {
        live::run(&args, &config, questions)?
    };
    let interrupted = runs.iter().any(|(_, r)| r.interrupted);
    // Upstream's last block (the whole run) and CSV, from the first (or only) engine.
    if let Some((_, run)) = runs.first() {
        let end_s = run.duration_ns as f64 / 1e9;
        let color = std::io::stdout().is_terminal();
        crate::stdout::write(&summary::performance_block(
            run, 0.0, end_s, 0, config.qps, color,
        ))?;
        log_info(&format!(
            "Finished benchmarking, dumping summary to {}",
            args.output.display()
        ));
        write_creating_folder(&args.output, summary::summary_csv(run).as_bytes())?;
    }
    let doc = QaDocument {
        schema: "ldqa-multi-round-qa",
        schema_version: 1,
        description,
        num_users: config.num_users,
        num_rounds: config.num_rounds,
        qps: config.qps,
        shared_system_prompt: config.shared_system_prompt,
        user_history_prompt: config.user_history_prompt,
        answer_len: config.answer_len,
        engines: runs.iter().map(|(e, r)| EngineRun::of(e, r)).collect(),
        instance_counters: counters,
    };
    write_document(&args.output_dir, &doc)?;
    Ok(if interrupted {
        ExitStatus::Interrupted
    } else {
        ExitStatus::Success
    })
}

/// Writes `bytes` to `path`, creating its folder first.
fn write_creating_folder(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    ldqa_report::write_atomically(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn write_document(dir: &std::path::Path, doc: &QaDocument) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("multi_round_qa.json");
    let json = serde_json::to_string_pretty(doc)? + "\n";
    ldqa_report::write_atomically(&path, json.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let engines: Vec<_> = doc.engines.iter().map(EngineRun::summary).collect();
    let title = format!(
        "Multi-round QA: {} users × {} rounds at {} QPS — {}\n",
        doc.num_users, doc.num_rounds, doc.qps, doc.description
    );
    let all = engines.first();
    let lines = super::instance_counters::lines(
        &doc.instance_counters,
        all.map_or(0, |a| a.requests() - a.failed()),
        all.map_or(0, |a| a.cached_tokens()),
    );
    crate::stdout::write(&(super::predict_trace::engine_table(&title, &engines) + &lines))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Upstream's INFO line (on stderr).
fn log_info(message: &str) {
    eprintln!("[{}] INFO: {message}", clock_now());
}

/// Upstream's WARNING line (on stderr).
fn log_warning(message: &str) {
    eprintln!("[{}] WARNING: {message}", clock_now());
}

/// The wall clock as `HH:MM:SS` (UTC), for log lines.
fn clock_now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// Logs what the sessions did in a step, as upstream's lines.
fn log_events(events: &mut Vec<SessionEvent>) {
    for e in events.drain(..) {
        match e {
            SessionEvent::Joined { user_id, active } => {
                log_info(&format!(
                    "Joined a new user {user_id}, now active users: {active}"
                ));
            }
            SessionEvent::Removed { count, active } => log_info(&format!(
                "Removing {count} finished sessions, now active users: {active}"
            )),
            SessionEvent::Behind { user_id } => log_warning(&format!(
                "User {user_id} has an unfinished request and unable to fit the QPS requirement."
            )),
        }
    }
}

/// Upstream's warm-up prompt `i` (ten are sent before the run).
fn warmup_prompt(i: u32) -> String {
    format!(
        "WARMUP: Hi, I'm user {i}. Here are some text: {}.",
        "hi ".repeat(100)
    )
}

/// The warm-up's size: requests and their `max_tokens`.
const WARMUP_REQUESTS: u32 = 10;
const WARMUP_MAX_TOKENS: u32 = 100;

/// The run's records: (engine name, run) per engine.
type Runs = Vec<(String, QaRun)>;
