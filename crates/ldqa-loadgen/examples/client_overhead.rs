//! Client overhead and streaming ingest of the real round runner, against the
//! scripted server in a separate process (`ldqa-testserver`'s `bench_server` example).
//!
//! ```text
//! cargo build --release -p ldqa-testserver --example bench_server
//! cargo run --release -p ldqa-loadgen --example client_overhead -- \
//!     --server target/release/examples/bench_server [--delay-ms 100] [--jitter-ms 0] \
//!     [--levels 4,128,512] [--requests 2000] [--ingest-events 1000000]
//! ```
//!
//! Overhead of one request = client TTFT (first content event − send, both stamped by
//! `ldqa_loadgen::Client`) − the server's own `request read → first token written`
//! interval, which the server reports at `GET /served`. What is left is the client's
//! send path, two loopback crossings, the server's reading of the request head, and the
//! client's receive/decode path: an upper bound on what the client adds to TTFT.
//!
//! Quantiles: linear interpolation between closest ranks (numpy's default).

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ldqa_loadgen::{run_round, Cancel, Client, ClientConfig, Endpoint, NoObserver};
use ldqa_model::{Api, PromptSource, RequestSpec, RoundKind};

struct Options {
    server: String,
    delay_ms: u64,
    jitter_ms: u64,
    levels: Vec<usize>,
    requests: usize,
    ingest_events: u64,
    threads: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        server: "target/release/examples/bench_server".into(),
        delay_ms: 100,
        jitter_ms: 0,
        levels: vec![4, 128, 512],
        requests: 2000,
        ingest_events: 1_000_000,
        threads: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
        match arg.as_str() {
            "--server" => o.server = value()?,
            "--delay-ms" => o.delay_ms = num(value()?)?,
            "--jitter-ms" => o.jitter_ms = num(value()?)?,
            "--requests" => o.requests = num(value()?)? as usize,
            "--ingest-events" => o.ingest_events = num(value()?)?,
            "--threads" => o.threads = num(value()?)?.max(1) as usize,
            "--levels" => {
                o.levels = value()?
                    .split(',')
                    .map(|s| s.parse::<usize>().map_err(|e| format!("{s:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// Prompts that name their round and position, so server rows match client records.
struct Tagged(String);

impl PromptSource for Tagged {
    fn write_prompt(&self, spec: &RequestSpec, buf: &mut String) {
        use std::fmt::Write;
        buf.clear();
        let _ = write!(buf, "{} #{}", self.0, spec.prompt_id);
    }
}

fn specs(n: usize) -> Vec<RequestSpec> {
    (0..n)
        .map(|i| RequestSpec {
            prompt_id: i,
            document_id: i,
            is_miss: false,
            miss_prefix: None,
            prompt_tokens: None,
        })
        .collect()
}

/// Linear interpolation between closest ranks (numpy `quantile`'s default); `sorted` non-empty.
fn quantile(sorted: &[i64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    sorted[lo] as f64 + (sorted[hi] - sorted[lo]) as f64 * frac
}

fn start_server(o: &Options) -> Result<(Child, String), String> {
    let mut child = Command::new(&o.server)
        .args(["--delay-ms", &o.delay_ms.to_string()])
        .args(["--jitter-ms", &o.jitter_ms.to_string()])
        .arg("--exit-on-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "starting {}: {e} (build it first, see the doc comment)",
                o.server
            )
        })?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let url = line
        .trim()
        .strip_prefix("listening ")
        .ok_or(format!("unexpected server line {line:?}"))?
        .to_owned();
    Ok((child, url))
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let (mut server, url) = match start_server(&o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    // The same runtime shape as `ldqa run`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .enable_all()
        .build()
        .expect("invariant: a runtime starts");
    let result = runtime.block_on(bench(&o, &url));
    drop(server.stdin.take()); // the server exits on stdin EOF
    let _ = server.wait();
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn bench(o: &Options, url: &str) -> Result<(), String> {
    let endpoint = Endpoint::new(url, None).map_err(|e| e.to_string())?;
    println!(
        "server {url}: first token {} ms (+ up to {} ms jitter) after the request is read",
        o.delay_ms, o.jitter_ms
    );
    println!("inflight  requests  overhead_ns: p50      p90      p99      max   (client TTFT − server TTFT)");
    for &level in &o.levels {
        let mut config = ClientConfig::new(endpoint.clone(), "scripted-model".into(), Api::Chat, 2);
        config.pool_size = level;
        let client = Client::new(config).map_err(|e| e.to_string())?;
        // Open the connections first, as `ldqa run`'s warmup round does.
        let tag = format!("L{level} warm");
        let _ = run_round(
            &client,
            RoundKind::Warmup,
            &specs(level),
            &Tagged(tag),
            level,
            &NoObserver,
            &Cancel::new(),
        )
        .await;
        let tag = format!("L{level} timed");
        let n = o.requests.max(level);
        let round = run_round(
            &client,
            RoundKind::Query,
            &specs(n),
            &Tagged(tag.clone()),
            level,
            &NoObserver,
            &Cancel::new(),
        )
        .await;
        let served: serde_json::Value = serde_json::from_str(
            &client
                .get_text(&format!("{}/served", url.trim_end_matches("/v1")))
                .await
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let server_ttft: HashMap<String, i64> = served
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| {
                Some((
                    row["prompt"].as_str()?.to_owned(),
                    row["server_ttft_ns"].as_i64()?,
                ))
            })
            .collect();
        let mut overheads = Vec::with_capacity(n);
        let mut failed = 0;
        for r in &round.requests {
            let (Some(first), None) = (r.first_token_ns, &r.failure) else {
                failed += 1;
                continue;
            };
            let key = format!("{tag} #{}", r.prompt_id);
            let Some(&server_ns) = server_ttft.get(&key) else {
                failed += 1;
                continue;
            };
            overheads.push((first - r.sent_ns) as i64 - server_ns);
        }
        if overheads.is_empty() {
            return Err(format!("no successful request at {level} in flight"));
        }
        overheads.sort_unstable();
        println!(
            "{level:>8}  {:>8}  {:>19.0}  {:>7.0}  {:>7.0}  {:>7}{}",
            overheads.len(),
            quantile(&overheads, 0.5),
            quantile(&overheads, 0.9),
            quantile(&overheads, 0.99),
            overheads[overheads.len() - 1],
            if failed > 0 {
                format!("  ({failed} failed or unmatched)")
            } else {
                String::new()
            },
        );
    }
    if o.ingest_events > 0 {
        ingest(o, &endpoint).await?;
    }
    Ok(())
}

/// One stream of `ingest_events` content events, through `Client::send` (HTTP, chunked
/// decoding, SSE decoder, JSON chunk parsing, timing), written by the server back to back.
async fn ingest(o: &Options, endpoint: &Endpoint) -> Result<(), String> {
    let output_len = u32::try_from(o.ingest_events).map_err(|e| e.to_string())?;
    let client = Client::new(ClientConfig::new(
        endpoint.clone(),
        "scripted-model".into(),
        Api::Chat,
        output_len,
    ))
    .map_err(|e| e.to_string())?;
    for attempt in 0..3 {
        let round = run_round(
            &client,
            RoundKind::Query,
            &specs(1),
            &Tagged(format!("ingest {attempt}")),
            1,
            &NoObserver,
            &Cancel::new(),
        )
        .await;
        let r = &round.requests[0];
        if let Some(f) = &r.failure {
            return Err(format!("ingest stream failed: {}", f.message));
        }
        let elapsed = Duration::from_nanos(r.end_ns - r.sent_ns);
        println!(
            "ingest: {} content events in {:.1} ms = {:.0} events/s",
            r.content_events,
            elapsed.as_secs_f64() * 1e3,
            f64::from(r.content_events) / elapsed.as_secs_f64()
        );
    }
    Ok(())
}
