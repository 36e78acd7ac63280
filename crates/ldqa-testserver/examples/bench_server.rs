//! The scripted server as a separate process, for the client benchmarks in
//! `docs/benchmarks.md` (and for `ldqa run` memory measurements).
//!
//! ```text
//! cargo run --release -p ldqa-testserver --example bench_server -- [--delay-ms 20] [--jitter-ms 0] [--threads 1] [--exit-on-eof]
//! ```
//!
//! Prints `listening http://127.0.0.1:PORT/v1` on stdout, then serves:
//! - chat and completions requests with `max_tokens` ≤ 1000: the first token
//!   `--delay-ms` (plus a fixed pseudo-random 0..=`--jitter-ms`) after the request was read, then `max_tokens - 1` more content events
//!   (each its own chunk), usage, `[DONE]`;
//! - requests with `max_tokens` > 1000: an ingest stream of `max_tokens` content events,
//!   written back to back in chunks of 1,000 events (as fast as the socket takes them);
//! - `GET /served`: for every generation request served so far, its prompt's first 64
//!   characters, the server's own `read → first token written` interval in ns,
//!   and, on `CLOCK_MONOTONIC`, when the request's first bytes reached the kernel
//!   (`arrived_mono_ns`, the socket's receive timestamp), when the server had read it
//!   (`received_mono_ns`) and when it had written the first token (`first_token_mono_ns`);
//! - `/v1/models`, `/health`, `/metrics` like vLLM ([`default_reply`]).
//!
//! With `--exit-on-eof` it exits when its stdin closes (the benchmark drives it that way).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ldqa_testserver::{
    chat_stream, completion_stream, default_reply, done, usage_chunk, Reply, ScriptedServer, Step,
};
use serde_json::{json, Value};

/// Above this `max_tokens`, a request gets the bulk ingest stream.
const BULK_THRESHOLD: u64 = 1000;
/// Content events per written chunk in the ingest stream.
const EVENTS_PER_CHUNK: u64 = 1000;

/// The server's flags.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Milliseconds from reading a request to its first token.
    #[arg(long = "delay-ms", default_value_t = 20)]
    delay_ms: u64,
    /// Adds a fixed pseudo-random 0..=N ms to each request's delay.
    #[arg(long = "jitter-ms", default_value_t = 0)]
    jitter_ms: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    threads: usize,
    /// Exit when stdin closes (the benchmark drives the server that way).
    #[arg(long)]
    exit_on_eof: bool,
}

fn main() {
    let options = <Options as clap::Parser>::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .expect("invariant: a runtime starts");
    if let Err(e) = runtime.block_on(serve(options)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve(options: Options) -> std::io::Result<()> {
    let server_cell: Arc<OnceLock<Arc<ScriptedServer>>> = Arc::new(OnceLock::new());
    let cell = Arc::clone(&server_cell);
    let (delay, jitter_ms) = (Duration::from_millis(options.delay_ms), options.jitter_ms);
    let server = Arc::new(
        ScriptedServer::start(move |req| {
            if req.path == "/served" {
                return Reply::Json(200, served_json(cell.get()));
            }
            if !req.path.ends_with("completions") {
                return default_reply(req);
            }
            let max_tokens = req.body["max_tokens"].as_u64().unwrap_or(1).max(1);
            let chat = req.path.ends_with("chat/completions");
            if max_tokens > BULK_THRESHOLD {
                Reply::Stream(bulk_stream(chat, max_tokens))
            } else {
                let pieces = vec!["tok"; max_tokens as usize];
                // A fixed pseudo-random spread, so first tokens need not all land at once.
                let spread = (req.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
                let delay = delay + Duration::from_millis(spread % (jitter_ms + 1));
                let steps = if chat {
                    chat_stream(delay, &pieces, 10)
                } else {
                    completion_stream(delay, &pieces, 10)
                };
                Reply::Stream(steps)
            }
        })
        .await?,
    );
    let _ = server_cell.set(Arc::clone(&server));
    println!("listening {}", server.base_url());
    if options.exit_on_eof {
        // tokio's stdin needs a feature the workspace does not enable; a thread will do.
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    std::future::pending::<()>().await;
    Ok(())
}

/// `[{"prompt": "...", "server_ttft_ns": N}, ...]` for the generation requests served so far.
fn served_json(server: Option<&Arc<ScriptedServer>>) -> Value {
    let Some(server) = server else {
        return json!([]);
    };
    let rows: Vec<Value> = server
        .served()
        .iter()
        .filter(|s| s.request.path.ends_with("completions"))
        .map(|s| {
            let prompt: String = s.request.prompt().unwrap_or("").chars().take(64).collect();
            let ttft_ns = s
                .first_token_at
                .map(|t| t.saturating_duration_since(s.received_at).as_nanos() as u64);
            json!({"prompt": prompt, "server_ttft_ns": ttft_ns,
                   "arrived_mono_ns": s.arrived_monotonic_ns,
                   "received_mono_ns": monotonic_ns(s.received_at),
                   "first_token_mono_ns": s.first_token_at.map(monotonic_ns)})
        })
        .collect();
    Value::Array(rows)
}

/// `t` on `CLOCK_MONOTONIC` (tokio's `Instant` is std's, which reads that clock).
fn monotonic_ns(t: tokio::time::Instant) -> u64 {
    ldqa_testserver::monotonic_ns(t.into_std())
}

/// `events` content events in chunks of [`EVENTS_PER_CHUNK`], usage, `[DONE]`.
///
/// Each event is a vLLM-shaped chunk (about 150 bytes on the wire, like a real server's).
fn bulk_stream(chat: bool, events: u64) -> Vec<Step> {
    let event = if chat {
        json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": "scripted-model",
               "choices": [{"index": 0, "delta": {"content": " tok"}, "logprobs": null, "finish_reason": null}]})
    } else {
        json!({"id": "cmpl-bench", "object": "text_completion", "created": 1_700_000_000,
               "model": "scripted-model",
               "choices": [{"index": 0, "text": " tok", "logprobs": null, "finish_reason": null}]})
    };
    let one = format!("data: {event}\n\n");
    let mut steps = Vec::new();
    let mut left = events;
    while left > 0 {
        let n = left.min(EVENTS_PER_CHUNK);
        steps.push(Step::Raw(one.repeat(n as usize).into_bytes()));
        left -= n;
    }
    steps.push(usage_chunk(10, events, None));
    steps.push(done());
    steps
}
