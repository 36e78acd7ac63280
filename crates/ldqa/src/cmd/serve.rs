//! `ldqa serve`: the simulated engine as an OpenAI-compatible HTTP server, in real time.
//!
//! On start it prints exactly one line to stderr,
//! `ldqa serve: listening on http://HOST:PORT (model M, engine vllm|lmcache, …)`, which
//! `ldqa ab --sim` parses for the port (`--port 0` picks a free one). Ctrl-C or SIGTERM
//! stop it gracefully (open streams are drained).
//!
//! `--time-scale F` runs simulated time F times faster than the wall clock: a client
//! measures wall time, and F × that is the simulated time `ldqa predict` reports. The
//! server advertises F in `/v1/models` (`ldqa_time_scale`), and `ldqa run` reports in
//! simulated time.
//!
//! `--fault-rate P --faults KINDS` injects seeded faults into generation requests (what
//! a client sees for each kind: `ldqa_serve::faults`), logged per request to stderr or
//! `--fault-log FILE` (JSONL) and counted in `/metrics` (`ldqa:injected_faults_total`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ldqa_serve::faults::FaultConfig;
use ldqa_serve::{ChatFormat, ServerConfig, TokenCounter};

use crate::cmd::engine_args::{EngineArgs, ServedEngine};
use crate::exit::ExitStatus;

/// Arguments of `ldqa serve`.
#[derive(Debug, clap::Args)]
// Negative numbers are values, so that `-5` gets a range error naming its flag.
#[command(allow_negative_numbers = true)]
pub struct ServeArgs {
    #[command(flatten)]
    pub engine: EngineArgs,

    /// Engine: vllm (GPU prefix cache only) or lmcache (plus the CPU tier).
    #[arg(
        long = "engine",
        value_enum,
        default_value_t = ServedEngine::Vllm,
        value_name = "ENGINE",
        help_heading = "Simulated engine"
    )]
    pub engine_choice: ServedEngine,

    /// Address to bind (127.0.0.1 unless told otherwise).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub host: IpAddr,

    /// Port to listen on; 0 picks a free port (printed on start).
    #[arg(long, default_value_t = 8000, value_name = "PORT")]
    pub port: u16,

    /// Serve this many instances of the engine, each with its own caches, queue and
    /// /metrics, on consecutive ports from --port (--port 0: a free port each); each prints
    /// its own listening line. For routers: `vllm-router --worker-urls` in front of them.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub instances: u16,

    /// Publish the engine's KV cache events as vLLM does with the same flag (JSON:
    /// `{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557",
    /// "topic": ""}`), for KV-aware routers; with --instances, instance k on the port + k.
    #[arg(long, value_name = "JSON")]
    pub kv_events_config: Option<String>,

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

    /// Simulated seconds per wall second (e.g. 10: ten times faster). Advertised in
    /// /v1/models: `ldqa run` reports simulated times; other clients' wall times × 10 are.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub time_scale: f64,

    /// On Ctrl-C or SIGTERM, let open streams finish for at most this long, then stop
    /// (a second Ctrl-C or SIGTERM stops at once).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub drain_timeout: f64,

    /// Close a connection that has not sent a whole request head this long after the
    /// server began waiting for it (a client trickling its headers, or an idle keep-alive
    /// connection; vLLM's server closes idle ones after 5 s).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub header_timeout: f64,

    /// Count prompt tokens with this tokenizer.json (default: the word-based count
    /// `ldqa predict` uses for `ldqa run`'s documents).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// Inject a fault into each generation request with this probability (0..1),
    /// decided independently per request from --fault-seed and the request's index.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "P",
        help_heading = "Fault injection"
    )]
    pub fault_rate: f64,

    /// Comma-separated kinds, chosen uniformly: http500, http429, drop (connection closed
    /// before any header), disconnect (mid-stream), stall, malformed, error_event,
    /// slow_first_byte; or `all`.
    #[arg(
        long,
        default_value = "all",
        value_name = "KINDS",
        help_heading = "Fault injection"
    )]
    pub faults: String,

    /// Seed of the fault decisions.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        help_heading = "Fault injection"
    )]
    pub fault_seed: u64,

    /// How long a `stall` keeps its stream silent before closing it (longer than the
    /// client's timeout).
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECONDS",
        help_heading = "Fault injection"
    )]
    pub fault_stall_s: f64,

    /// How long a `slow_first_byte` waits before answering.
    #[arg(
        long,
        default_value_t = 500,
        value_name = "MS",
        help_heading = "Fault injection"
    )]
    pub fault_slow_ms: u64,

    /// Append one JSON line per injected fault here (`{"request_index":N,"kind":"…"}`);
    /// default: one line per fault on stderr.
    #[arg(long, value_name = "FILE", help_heading = "Fault injection")]
    pub fault_log: Option<PathBuf>,
}

impl ServeArgs {
    /// The fault settings, `None` when --fault-rate is 0.
    fn fault_config(&self) -> anyhow::Result<Option<FaultConfig>> {
        let kinds = ldqa_serve::faults::parse_kinds(&self.faults).context("--faults")?;
        let stall = Duration::try_from_secs_f64(self.fault_stall_s).map_err(|_| {
            anyhow::anyhow!(
                "--fault-stall-s must be a non-negative number of seconds, not {}",
                self.fault_stall_s
            )
        })?;
        let mut config = FaultConfig::new(self.fault_rate, kinds);
        config.seed = self.fault_seed;
        config.stall = stall;
        config.slow_first_byte = Duration::from_millis(self.fault_slow_ms);
        config.log = self.fault_log.clone();
        config.validate()?;
        Ok((config.rate > 0.0).then_some(config))
    }
}

/// How the simulated server turns prompts into tokens: a model folder counts as vLLM counts
/// (its own tokenizer and chat template); `--tokenizer` replaces the tokenizer; otherwise
/// the documented approximation and Llama-3.1's template by its counts. `predict`'s
/// multi-round QA counts with the same, so that it predicts what `serve` serves.
pub fn prompt_format(
    model: &str,
    tokenizer: Option<&std::path::Path>,
) -> anyhow::Result<(ChatFormat, TokenCounter)> {
    let own = ldqa_workload::chat_template::own_chat_template(model).context("--model")?;
    let chat = match &own {
        Some(own) => ChatFormat::Rendered(std::sync::Arc::new(own.template.clone())),
        None => ChatFormat::default(),
    };
    let counter = match (tokenizer, &own) {
        (Some(path), _) => TokenCounter::from_file(path).context("--tokenizer")?,
        (None, Some(own)) => TokenCounter::from_file(&own.tokenizer).context("--model")?,
        (None, None) => TokenCounter::Approx,
    };
    Ok((chat, counter))
}

/// Checks the numeric flags, before any work.
fn check_numbers(args: &ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=64).contains(&args.instances),
        "--instances must be 1 to 64, not {}",
        args.instances
    );
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!(
            "--time-scale must be a positive number, not {}",
            args.time_scale
        );
    }
    if !(args.drain_timeout.is_finite() && args.drain_timeout >= 0.0) {
        anyhow::bail!(
            "--drain-timeout must be a number of seconds, 0 or more, not {}",
            args.drain_timeout
        );
    }
    if !(args.header_timeout.is_finite()
        && args.header_timeout > 0.0
        && args.header_timeout <= 86_400.0)
    {
        anyhow::bail!(
            "--header-timeout must be a number of seconds above 0 (at most a day), not {}",
            args.header_timeout
        );
    }
    Ok(())
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitStatus> {
    check_numbers(&args)?;
    let drain = Duration::from_secs_f64(args.drain_timeout);
    let faults = args.fault_config()?;
    let kv_events =
        super::kv_events_config::parse(args.kv_events_config.as_deref(), args.instances)?;
    let resolved = args.engine.resolve(args.engine_choice.kinds())?;
    let scenario = resolved.single()?.clone();
    let model = args
        .served_model_name
        .clone()
        .unwrap_or_else(|| resolved.deployment.model.name.clone());
    let mut config = ServerConfig::new(
        scenario.config.clone(),
        scenario.efficiencies.clone(),
        model.clone(),
    );
    config.api_key = args.api_key.clone();
    config.vllm_version = args.engine.deployment.vllm_version.clone();
    config.time_scale = args.time_scale;
    config.header_read_timeout = Duration::from_secs_f64(args.header_timeout);
    let fault_note = faults.as_ref().map_or(String::new(), |f| {
        let kinds: Vec<_> = f.kinds.iter().map(|k| k.as_str()).collect();
        format!(
            ", faults {} at rate {} seed {}",
            kinds.join(","),
            f.rate,
            f.seed
        )
    });
    config.faults = faults;
    (config.chat_format, config.token_counter) =
        prompt_format(&args.engine.deployment.model, args.tokenizer.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let signals = StopSignals::install()?;
        let listeners = bind_instances(args.host, args.port, args.instances).await?;
        // One stop for every instance: the first signal stops them all.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop_with_deadline(signals, drain).await;
            let _ = stop_tx.send(true);
        });
        let count = listeners.len();
        let mut servers = tokio::task::JoinSet::new();
        for (k, listener) in listeners.into_iter().enumerate() {
            let addr = listener.local_addr().context("reading the bound address")?;
            let host = match addr.ip() {
                IpAddr::V6(ip) => format!("[{ip}]"),
                IpAddr::V4(ip) => ip.to_string(),
            };
            let mut config = config.clone();
            let mut kv_note = String::new();
            if let Some(c) = kv_events.get(k) {
                let publisher = ldqa_serve::kv_events::KvEventPublisher::start(c)
                    .with_context(|| format!("--kv-events-config, instance {}", k + 1))?;
                kv_note = format!(", KV events on {}", publisher.endpoint());
                config.kv_events = Some(publisher);
            }
            let instance = if count > 1 {
                format!(", instance {} of {count}", k + 1)
            } else {
                String::new()
            };
            eprintln!(
                "ldqa serve: listening on http://{host}:{} (model {model}, engine {}, time scale {}, {}{fault_note}{kv_note}{instance})",
                addr.port(),
                config.engine.mode.kind().as_str(),
                args.time_scale,
                resolved.description,
            );
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            servers.spawn(ldqa_serve::serve(listener, config, stopped));
        }
        while let Some(done) = servers.join_next().await {
            done.context("a server task failed")?.context("serving")?;
        }
        Ok(ExitStatus::Success)
    })
}

/// `instances` listeners on consecutive ports from `port` (0: a free port each), all bound
/// before any is announced, so a port in use fails the start, not the third instance.
async fn bind_instances(
    host: IpAddr,
    port: u16,
    instances: u16,
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(usize::from(instances));
    for k in 0..instances {
        let p = if port == 0 {
            0
        } else {
            port.checked_add(k).with_context(|| {
                format!("--port {port} with --instances {instances} runs past port 65535")
            })?
        };
        let listener = tokio::net::TcpListener::bind((host, p))
            .await
            .with_context(|| format!("cannot listen on {host}:{p}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Completes on the first Ctrl-C or SIGTERM, so that the server stops accepting and
/// drains its open streams; from then on a watcher ends the process when `drain` has
/// passed or at a second signal (reliability review B13: a long stream kept `serve` alive
/// through a second Ctrl-C and a SIGTERM).
async fn stop_with_deadline(mut signals: StopSignals, drain: Duration) {
    signals.next().await;
    eprintln!(
        "ldqa serve: stopping; open streams get {:.1} s to finish (Ctrl-C again to stop now)",
        drain.as_secs_f64()
    );
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(drain) => {
                eprintln!("ldqa serve: open streams cut after {:.1} s", drain.as_secs_f64());
            }
            () = signals.next() => eprintln!("ldqa serve: stopped at once"),
        }
        std::process::exit(i32::from(ExitStatus::Interrupted.code()));
    });
}

/// Ctrl-C and SIGTERM, caught from the moment this is made: made before the listening line
/// is printed, so that a signal sent as soon as the server answers is never the default
/// one, which kills (`tokio::signal::ctrl_c` registers only when first polled).
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt()).context("catching Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// The next Ctrl-C or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
