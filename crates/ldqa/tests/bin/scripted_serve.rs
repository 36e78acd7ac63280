//! A scripted OpenAI-compatible server as a process, standing in for `vllm serve` in
//! tests of `ldqa ab` (`tests/ab.rs`). Built only with the `scripted-serve` feature.
//!
//! ```text
//! scripted_serve [--port 0] [--ttft-ms 50] [--hit-ttft-ms MS] [--tokens 4] [--exit-after K]
//!                [--ready-after-ms MS]
//! ```
//! - prints `ldqa serve: listening on http://127.0.0.1:PORT (scripted)` on stderr, the line
//!   `ldqa serve` prints;
//! - answers a prompt it has seen before after `--hit-ttft-ms` (default: `--ttft-ms`), so it
//!   can play an engine with a CPU cache;
//! - `--exit-after K` exits (code 3) when the K-th generation request arrives: a crash;
//! - `--ready-after-ms` answers `/health` with 503 until then.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldqa_testserver::{chat_stream, completion_stream, default_reply, Reply, ScriptedServer};

struct Opts {
    port: u16,
    ttft_ms: u64,
    hit_ttft_ms: Option<u64>,
    tokens: usize,
    exit_after: Option<usize>,
    ready_after_ms: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        port: 0,
        ttft_ms: 50,
        hit_ttft_ms: None,
        tokens: 4,
        exit_after: None,
        ready_after_ms: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let v = args.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{flag}: not a number: {v}"))?;
        match flag.as_str() {
            "--port" => o.port = u16::try_from(n).map_err(|_| "--port too large")?,
            "--ttft-ms" => o.ttft_ms = n,
            "--hit-ttft-ms" => o.hit_ttft_ms = Some(n),
            "--tokens" => o.tokens = n as usize,
            "--exit-after" => o.exit_after = Some(n as usize),
            "--ready-after-ms" => o.ready_after_ms = n,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scripted_serve: {e}");
            std::process::exit(2);
        }
    };
    if o.port != 0 {
        eprintln!("scripted_serve: only --port 0 is supported");
        std::process::exit(2);
    }
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let generations = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let pieces: Vec<String> = (0..o.tokens).map(|i| format!(" t{i}")).collect();
    let server = ScriptedServer::start(move |req| {
        let is_chat = req.path.ends_with("/chat/completions");
        if !(is_chat || req.path.ends_with("/completions")) {
            if req.path == "/health" && started.elapsed() < Duration::from_millis(o.ready_after_ms)
            {
                return Reply::Text(503, "loading".into(), "text/plain");
            }
            return default_reply(req);
        }
        let n = generations.fetch_add(1, Ordering::SeqCst) + 1;
        if o.exit_after.is_some_and(|k| n >= k) {
            eprintln!("scripted_serve: exiting at generation request {n} (--exit-after)");
            std::process::exit(3);
        }
        let prompt = req.prompt().unwrap_or_default().to_string();
        let hit = !seen.lock().expect("lock").insert(prompt.clone());
        let ms = if hit {
            o.hit_ttft_ms.unwrap_or(o.ttft_ms)
        } else {
            o.ttft_ms
        };
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let tokens = prompt.split_whitespace().count() as u64;
        let delay = Duration::from_millis(ms);
        Reply::Stream(if is_chat {
            chat_stream(delay, &refs, tokens)
        } else {
            completion_stream(delay, &refs, tokens)
        })
    })
    .await
    .unwrap_or_else(|e| {
        eprintln!("scripted_serve: cannot bind: {e}");
        std::process::exit(2);
    });
    eprintln!(
        "ldqa serve: listening on http://{} (scripted)",
        server.addr()
    );
    // Serve until killed.
    std::future::pending::<()>().await;
}
