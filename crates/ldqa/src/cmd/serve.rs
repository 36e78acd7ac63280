//! `ldqa serve`: the simulated engine as an OpenAI-compatible HTTP server, in real time.
//!
//! On start it prints exactly one line to stderr,
//! `ldqa serve: listening on http://HOST:PORT (model M, engine vllm|lmcache, …)`, which
//! `ldqa ab --sim` parses for the port (`--port 0` picks a free one). Ctrl-C or SIGTERM
//! stop it gracefully (open streams are drained).
//!
//! `--time-scale F` runs simulated time F times faster than the wall clock: every time a
//! client measures is then wall time, and F × that is the simulated time `ldqa predict`
//! reports.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ldqa_serve::{ServerConfig, TokenCounter};

use crate::cmd::engine_args::EngineArgs;

/// Arguments of `ldqa serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub engine: EngineArgs,

    /// Address to bind (127.0.0.1 unless told otherwise).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub host: IpAddr,

    /// Port to listen on; 0 picks a free port (printed on start).
    #[arg(long, default_value_t = 8000, value_name = "PORT")]
    pub port: u16,

    /// Model id clients must send (default: the simulated model's name).
    #[arg(long, value_name = "NAME")]
    pub served_model_name: Option<String>,

    /// Require this bearer token on /v1/* and /reset_prefix_cache (never logged).
    #[arg(
        long,
        env = "LDQA_SERVE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,

    /// Simulated seconds per wall second (e.g. 10: ten times faster; reported times × 10
    /// = simulated times).
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub time_scale: f64,

    /// Count prompt tokens with this tokenizer.json (default: the word-based count
    /// `ldqa predict` uses for `ldqa run`'s documents).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// vLLM's --max-model-len: prompt + max_tokens limit in tokens.
    #[arg(long, default_value_t = ldqa_serve::DEFAULT_MAX_MODEL_LEN_TOKENS, value_name = "TOKENS")]
    pub max_model_len: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!(
            "--time-scale must be a positive number, not {}",
            args.time_scale
        );
    }
    let resolved = args.engine.resolve()?;
    let scenario = resolved.single()?.clone();
    let model = args
        .served_model_name
        .clone()
        .unwrap_or_else(|| resolved.model_name.clone());
    let mut config = ServerConfig::new(
        scenario.config.clone(),
        scenario.efficiencies.clone(),
        model.clone(),
    );
    config.api_key = args.api_key.clone();
    config.time_scale = args.time_scale;
    config.max_model_len_tokens = args.max_model_len;
    if let Some(path) = &args.tokenizer {
        config.token_counter = TokenCounter::from_file(path).context("--tokenizer")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        eprintln!(
            "ldqa serve: listening on http://{host}:{} (model {model}, engine {}, time scale {}, {})",
            addr.port(),
            ldqa_serve::engine_label(&config.engine),
            args.time_scale,
            resolved.description,
        );
        ldqa_serve::serve(listener, config, shutdown_signal())
            .await
            .context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
