//! Soak test: many short streamed requests through a real `ldqa serve` child process,
//! sampling its resident memory as they go.
//!
//! ```text
//! cargo build --release -p ldqa
//! cargo run --release -p ldqa-serve --example soak -- \
//!     [--ldqa target/release/ldqa] [--requests 200000] [--clients 64] [--max-tokens 8] \
//!     [--time-scale 1000] [--pool 500] [--sample-every 10000] [--warmup 20000] \
//!     [--abort-every 0] [--engine vllm|lmcache] [--words 40]
//! ```
//! The server is `ldqa serve --port 0 --time-scale F` (default engine: the seed's
//! Llama-3.1-8B on one H100, vLLM mode), started as a child so that its `VmRSS` (read
//! from `/proc/PID/status`) is the server's alone. CLIENTS tasks each hold one keep-alive
//! HTTP/1.1 connection (raw TCP, reconnecting after an error) and send streamed
//! completions with `include_usage` until REQUESTS were sent. Prompts are WORDS words: even
//! requests repeat one of POOL documents (prefix cache hits), odd ones are unique (misses
//! that fill the GPU cache until it evicts).
//!
//! With ABORT_EVERY = N > 0, every Nth request's client closes its connection as soon
//! as the first token arrives (the server must abort it and free its KV blocks) and
//! reconnects for the next one; those requests are counted as cut, not as errors.
//!
//! Every SAMPLE_EVERY finished requests the server's `VmRSS` is recorded. The first
//! WARMUP requests are warm-up; the check is max/min of the samples after it ≤ 1.10.
//! Reports: the RSS series, that ratio, wall time, errors (connect, non-200, stream
//! without `[DONE]`, wrong token count), prompt tokens the server reported as cached, and
//! the server's `/metrics` at the end (running, waiting, KV usage, prefix cache counters).
//! Exits 1 if there were errors or the ratio is over 1.10.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest accepted growth of `VmRSS` after warm-up (max/min).
const MAX_RATIO: f64 = 1.10;

/// The soak's flags (see the module docs for what each one changes).
#[derive(Debug, Clone, clap::Parser)]
struct Opts {
    /// The `ldqa` binary to start as the server.
    #[arg(long, default_value = "target/release/ldqa")]
    ldqa: String,
    /// Requests to send in all.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, default_value_t = 64, value_parser = at_least_one_usize())]
    clients: usize,
    /// `max_tokens` of every request.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: u32,
    /// `ldqa serve --time-scale`.
    #[arg(long, default_value_t = 1000.0)]
    time_scale: f64,
    /// Documents that the even (hit) requests repeat.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pool: u64,
    /// Finished requests between two `VmRSS` samples.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    sample_every: u64,
    /// Requests before the samples that the growth check reads.
    #[arg(long, default_value_t = 20_000)]
    warmup: u64,
    /// Every Nth request is cut after its first token (0: none).
    #[arg(long, default_value_t = 0)]
    abort_every: u64,
    /// `ldqa serve --engine`.
    #[arg(long, default_value = "vllm")]
    engine: String,
    /// Words per prompt after its `Document ID:` header.
    #[arg(long, default_value_t = 40)]
    words: u64,
}

fn at_least_one_usize() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// `VmRSS` (or another `/proc/PID/status` field) in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts `ldqa serve` and waits for its `listening on http://HOST:PORT` line. Its later
/// stderr lines are kept in the returned buffer.
/// The server's stderr lines after its address line.
type Log = Arc<Mutex<Vec<String>>>;

fn start_server(o: &Opts) -> Result<(std::process::Child, SocketAddr, Log), String> {
    let mut child = std::process::Command::new(&o.ldqa)
        .args(["serve", "--port", "0", "--time-scale"])
        .arg(o.time_scale.to_string())
        .args(["--engine", &o.engine])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}); run cargo build --release -p ldqa",
                o.ldqa
            )
        })?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                    continue;
                }
            }
            if let Ok(mut l) = log2.lock() {
                l.push(line);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the server did not print its address within 60 s".to_owned())?;
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?} ({e})"))?;
    Ok((child, addr, log))
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    done: AtomicU64,
    ok: AtomicU64,
    connect_errors: AtomicU64,
    bad_status: AtomicU64,
    bad_stream: AtomicU64,
    cut: AtomicU64,
    cached_tokens: AtomicU64,
}

/// One sample: finished requests, seconds since the start, `VmRSS` KiB.
type Sample = (u64, f64, u64);

const WORDS: [&str; 8] = [
    "the",
    "quarterly",
    "report",
    "shows",
    "revenue",
    "growth",
    "across",
    "regions",
];

/// Request `i`'s prompt: even requests repeat one of `pool` documents (the server's
/// prompt identity is the whole text, so these hit the prefix cache once seen), odd
/// ones are unique (they miss, fill the cache and make it evict).
fn prompt(i: u64, pool: u64, words: u64) -> String {
    let (seed, mut p) = if i.is_multiple_of(2) {
        let d = (i / 2) % pool;
        (d, format!("Document {d}:"))
    } else {
        (i, format!("Document u{i}:"))
    };
    for k in 0..words {
        p.push(' ');
        p.push_str(WORDS[((seed + k) % 8) as usize]);
    }
    p
}

/// Sends one request on `s` and reads its whole chunked response, or (`cut`) stops
/// reading at its first token and returns `None`.
async fn one_request(
    s: &mut TcpStream,
    buf: &mut [u8],
    o: &Opts,
    i: u64,
    cut: bool,
) -> std::io::Result<Option<Vec<u8>>> {
    let body = format!(
        r#"{{"model":"meta-llama/Llama-3.1-8B-Instruct","prompt":"{}","max_tokens":{},"stream":true,"stream_options":{{"include_usage":true}}}}"#,
        prompt(i, o.pool, o.words),
        o.max_tokens
    );
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = s.read(buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.extend_from_slice(&buf[..n]);
        if cut && out.starts_with(b"HTTP/1.1 200") && find(&out, b"\"finish_reason\":").is_some() {
            return Ok(None);
        }
        // The last chunk of a chunked body; chunk contents are SSE text with `\n` only.
        if out.ends_with(b"\r\n0\r\n\r\n") {
            return Ok(Some(out));
        }
        // A non-streamed (error) response has a Content-Length and no chunks.
        if let Some(head_end) = find(&out, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                if out.len() >= head_end + 4 + len {
                    return Ok(Some(out));
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

async fn client(
    addr: SocketAddr,
    o: Arc<Opts>,
    c: Arc<Counters>,
    pid: u32,
    start: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let i = c.sent.fetch_add(1, Ordering::Relaxed);
        if i >= o.requests {
            return;
        }
        if conn.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn = Some(s);
                }
                Err(_) => {
                    c.connect_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(s) = conn.as_mut() {
            let cut = o.abort_every > 0 && (i + 1).is_multiple_of(o.abort_every);
            match one_request(s, &mut buf, &o, i, cut).await {
                Ok(None) => {
                    // Closing the connection is how a client cancels a stream.
                    c.cut.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
                Ok(Some(resp)) => {
                    let tokens = count(&resp, b"\"finish_reason\":");
                    if !resp.starts_with(b"HTTP/1.1 200") {
                        c.bad_status.fetch_add(1, Ordering::Relaxed);
                    } else if find(&resp, b"data: [DONE]").is_none()
                        // Token chunks and the usage chunk have no finish_reason key
                        // in the usage chunk (empty choices), so tokens == max_tokens.
                        || tokens != o.max_tokens as usize
                    {
                        c.bad_stream.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.ok.fetch_add(1, Ordering::Relaxed);
                        if let Some(at) = find(&resp, b"\"cached_tokens\":") {
                            let digits: String = resp[at + 16..]
                                .iter()
                                .take_while(|b| b.is_ascii_digit())
                                .map(|&b| b as char)
                                .collect();
                            let n: u64 = digits.parse().unwrap_or(0);
                            c.cached_tokens.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                }
                Err(_) => {
                    c.bad_stream.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
            }
        }
        let done = c.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(o.sample_every) || done == o.requests {
            let rss = status_kib(pid, "VmRSS:").unwrap_or(0);
            if let Ok(mut v) = samples.lock() {
                v.push((done, start.elapsed().as_secs_f64(), rss));
            }
        }
    }
}

/// `GET /metrics` on a fresh connection.
async fn fetch_metrics(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn main() {
    match run(<Opts as clap::Parser>::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "a benchmark script read top to bottom: set-up, load, checks, report"
)]
fn run(o: Opts) -> Result<bool, String> {
    let (mut child, addr, log) = start_server(&o)?;
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let o = Arc::new(o);
    let c = Arc::new(Counters::default());
    let samples = Arc::new(Mutex::new(vec![(
        0,
        0.0,
        status_kib(pid, "VmRSS:").unwrap_or(0),
    )]));
    let start = Instant::now();
    let metrics = rt.block_on(async {
        let tasks: Vec<_> = (0..o.clients)
            .map(|_| {
                tokio::spawn(client(
                    addr,
                    o.clone(),
                    c.clone(),
                    pid,
                    start,
                    samples.clone(),
                ))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        // Let the engine publish its last gauges.
        tokio::time::sleep(Duration::from_millis(200)).await;
        fetch_metrics(addr).await
    });
    let wall_s = start.elapsed().as_secs_f64();
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();

    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    println!(
        "requests {}, clients {}, max_tokens {}, time scale {}, prompt pool {}, engine {}, {} words a prompt",
        o.requests, o.clients, o.max_tokens, o.time_scale, o.pool, o.engine, o.words
    );
    println!("finished | wall s | server VmRSS MiB");
    for (done, t, rss) in &samples {
        println!("{done:>8} | {t:>6.1} | {:.1}", *rss as f64 / 1024.0);
    }
    let after: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 >= o.warmup && s.0 > 0)
        .map(|s| s.2)
        .collect();
    let (min, max) = (
        after.iter().copied().min().unwrap_or(0),
        after.iter().copied().max().unwrap_or(0),
    );
    let ratio = if min > 0 {
        max as f64 / min as f64
    } else {
        f64::NAN
    };
    let ok = c.ok.load(Ordering::Relaxed);
    let cut = c.cut.load(Ordering::Relaxed);
    let errors = o.requests - ok - cut;
    println!(
        "after warm-up ({} requests): min {:.1} MiB, max {:.1} MiB, max/min {ratio:.4} (limit {MAX_RATIO}); peak VmHWM {:.1} MiB",
        o.warmup,
        min as f64 / 1024.0,
        max as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "ok {ok}, cut by the client {cut}, errors {errors} (connect {}, status {}, stream {}), wall {wall_s:.1} s, {:.0} requests/s, cached prompt tokens reported {}",
        c.connect_errors.load(Ordering::Relaxed),
        c.bad_status.load(Ordering::Relaxed),
        c.bad_stream.load(Ordering::Relaxed),
        ok as f64 / wall_s,
        c.cached_tokens.load(Ordering::Relaxed)
    );
    match metrics {
        Ok(text) => {
            println!("/metrics at the end:");
            for line in text.lines().filter(|l| {
                !l.starts_with('#')
                    && [
                        "num_requests_running",
                        "num_requests_waiting",
                        "kv_cache_usage_perc",
                        "prefix_cache_",
                        "lmcache:",
                        "request_success_total",
                        "generation_tokens_total",
                        "aborted_requests_total",
                        "num_preemptions_total",
                    ]
                    .iter()
                    .any(|k| l.contains(k))
            }) {
                println!("  {line}");
            }
        }
        Err(e) => println!("/metrics: {e}"),
    }
    if let Ok(l) = log.lock() {
        for line in l.iter().take(20) {
            println!("server stderr: {line}");
        }
    }
    Ok(errors == 0 && ratio.is_finite() && ratio <= MAX_RATIO)
}
