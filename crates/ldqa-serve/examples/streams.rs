//! Benchmark: N concurrent streaming connections through the real server on loopback.
//!
//! ```text
//! ulimit -n 65536   # each connection takes two descriptors (client and server side)
//! cargo run --release -p ldqa-serve --example streams -- [CONNECTIONS] [MAX_TOKENS] [TIME_SCALE]
//! ```
//! Defaults: 1000 connections, 100 tokens each, time scale 1 (real time). The server
//! (seed Llama-3.1-8B on one H100, vLLM mode) runs on its own 2-thread runtime, the
//! clients on another; each client opens its own TCP connection, sends one streamed
//! completion with a distinct prompt and reads until `[DONE]`.
//!
//! Reports: errors (connect, non-200, stream without `[DONE]`, wrong token count), token
//! emission lag (the server's `ldqa:token_emission_lag_seconds`: how late each token
//! left the server after its due wall time) and jitter (`ldqa:token_emission_jitter_seconds`:
//! how much that lateness changed from one token of a stream to the next); quantiles are
//! the upper bound of the bucket holding them; KV usage after the run (must be 0) and peak RSS of the whole process
//! (server and clients together, `VmHWM`).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MODEL: &str = "sim-llama-8b";

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    ok: bool,
    connect_error: bool,
    tokens: u32,
}

async fn one_stream(addr: std::net::SocketAddr, i: usize, max_tokens: u32) -> Outcome {
    let mut out = Outcome::default();
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        out.connect_error = true;
        return out;
    };
    let _ = s.set_nodelay(true);
    let prompt = format!("{i}{}", " hi".repeat(100));
    let body = format!(
        r#"{{"model":"{MODEL}","prompt":"{prompt}","max_tokens":{max_tokens},"stream":true}}"#
    );
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        out.connect_error = true;
        return out;
    }
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    out.tokens = text.matches("\"text\":\" hi\"").count() as u32;
    out.ok = text.starts_with("HTTP/1.1 200")
        && text.contains("data: [DONE]")
        && out.tokens == max_tokens;
    out
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The upper bound (seconds) of the bucket holding quantile `q`, from cumulative counts.
fn bucket_quantile_s(cumulative: &[(u64, u64)], total: u64, q: f64) -> Option<f64> {
    let rank = (q * total as f64).ceil() as u64;
    cumulative
        .iter()
        .find(|&&(_, c)| c >= rank.max(1))
        .map(|&(b, _)| b as f64 / 1e9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connections: usize = arg(1, 1000);
    let max_tokens: u32 = arg(2, 100);
    let time_scale: f64 = arg(3, 1.0);

    let engine = ldqa_sim::seed::llama8b_h100().vllm.config;
    let eff = ldqa_sim::Efficiencies::for_gpu("h100-80gb")?;
    let mut config = ldqa_serve::ServerConfig::new(engine, eff, MODEL.into());
    config.time_scale = time_scale;

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let (addr, handles, stop) = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (app, handles) = ldqa_serve::router_with_handles(config)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(ldqa_serve::serve_router(
            listener,
            app,
            std::time::Duration::from_secs(30),
            async move {
                let _ = rx.await;
            },
        ));
        Ok::<_, Box<dyn std::error::Error>>((addr, handles, tx))
    })?;

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let start = Instant::now();
    let outcomes = client_rt.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|i| tokio::spawn(one_stream(addr, i, max_tokens)))
            .collect();
        let mut v = Vec::with_capacity(connections);
        for t in tasks {
            v.push(t.await.unwrap_or_default());
        }
        v
    });
    let wall = start.elapsed();

    let m = &handles.metrics;
    // Aborts (if any) travel to the engine thread; give them a moment, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.kv_cache_usage() > 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ok = outcomes.iter().filter(|o| o.ok).count();
    let connect_errors = outcomes.iter().filter(|o| o.connect_error).count();
    let tokens: u64 = outcomes.iter().map(|o| u64::from(o.tokens)).sum();
    let quantiles = |h: &ldqa_serve::metrics::Histogram| {
        let (cumulative, n) = (h.cumulative(), h.count());
        let q = |p| {
            bucket_quantile_s(&cumulative, n, p)
                .map_or("> 0.1 s".into(), |s| format!("≤ {:.3} ms", s * 1e3))
        };
        format!("n {n}, p50 {}, p99 {}, p99.9 {}", q(0.5), q(0.99), q(0.999))
    };
    println!("connections {connections}, {max_tokens} tokens each, time scale {time_scale}");
    println!(
        "ok {ok}, errors {} (connect {connect_errors}), tokens received {tokens}, wall {:.2} s",
        connections - ok,
        wall.as_secs_f64()
    );
    println!("token emission lag: {}", quantiles(&m.emission_lag));
    println!("token emission jitter: {}", quantiles(&m.emission_jitter));
    println!(
        "KV usage after: {}; peak RSS {:.1} MiB (server and clients)",
        m.kv_cache_usage(),
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    let _ = stop.send(());
    Ok(())
}
