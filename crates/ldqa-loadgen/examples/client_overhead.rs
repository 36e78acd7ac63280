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
//! `ldqa_loadgen::Client`) − the server's own TTFT (its request's first bytes reached the
//! kernel → the server had written the first token), which the server reports at
//! `GET /served`. Both processes stamp `CLOCK_MONOTONIC`, one clock for the machine, so it
//! splits into the send side (client's send stamp → the request's bytes reached the
//! server's kernel: the client's send path and a loopback crossing) and the receive side
//! (the server had written the first token → the client's first-content stamp: a loopback
//! crossing and the client's receive/decode path).
//!
//! The last two columns measure the server's TTFT from when it had *read* the request, as
//! this benchmark did at first: that also charges the server's own read queue to the
//! client (a single-threaded server takes milliseconds to read a burst of 512 requests).
//!
//! Quantiles: `ldqa_metrics::quantile_sorted`, linear interpolation between closest ranks
//! (numpy's default), as in every report of `ldqa`.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use ldqa_loadgen::{run_round, Cancel, Client, ClientConfig, Endpoint, NoObserver, RoundObserver};
use ldqa_metrics::quantile_sorted;
use ldqa_model::{Api, PromptSource, RequestSpec, RoundKind};

/// The benchmark's flags.
#[derive(Clone, clap::Parser)]
struct Options {
    /// The `bench_server` binary to start.
    #[arg(long, default_value = "target/release/examples/bench_server")]
    server: String,
    /// The server's delay to the first token, ms.
    #[arg(long, default_value_t = 100)]
    delay_ms: u64,
    /// The server's extra pseudo-random delay, 0..=N ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// In-flight levels to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,128,512")]
    levels: Vec<usize>,
    /// Timed requests per level (at least the level).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Content events of the ingest test (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    ingest_events: u64,
    /// Tokio worker threads (`ldqa run` uses 2).
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    threads: usize,
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

/// `CLOCK_MONOTONIC` now, in ns: the clock the server's stamps are on.
fn monotonic_ns() -> i64 {
    i64::try_from(ldqa_testserver::monotonic_now_ns()).unwrap_or(i64::MAX)
}

/// Stamps `CLOCK_MONOTONIC` just before the runner stamps each request's `sent_ns`, which
/// places the round's start (records are relative to it) on the shared clock.
#[derive(Default)]
struct SendClock(Mutex<HashMap<usize, i64>>);

impl RoundObserver for SendClock {
    fn on_sent(&self, _kind: RoundKind, spec: &RequestSpec) {
        let now = monotonic_ns();
        let mut stamps = self.0.lock().expect("invariant: lock not poisoned");
        stamps.insert(spec.prompt_id, now);
    }
}

impl SendClock {
    /// The round's start on `CLOCK_MONOTONIC`: each stamp precedes `start + sent_ns`, so
    /// each gives a lower bound; the largest is within a few hundred ns.
    fn round_start(&self, records: &[ldqa_model::RequestRecord]) -> i64 {
        let stamps = self.0.lock().expect("invariant: lock not poisoned");
        records
            .iter()
            .filter_map(|r| Some(stamps.get(&r.prompt_id)? - r.sent_ns as i64))
            .max()
            .unwrap_or(0)
    }
}

fn specs(n: usize) -> Vec<RequestSpec> {
    (0..n)
        .map(|i| RequestSpec {
            prompt_id: i,
            document_id: i,
            is_miss: false,
            miss_prefix: None,
            prompt_tokens: 0,
        })
        .collect()
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
    let o = <Options as clap::Parser>::parse();
    let (mut server, url) = match start_server(&o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    // The same runtime shape as `ldqa run` (crates/ldqa/src/runtime.rs): two workers, the
    // benchmark a task on one of them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .enable_all()
        .build()
        .expect("invariant: a runtime starts");
    let result = runtime.block_on(async move {
        tokio::spawn(async move { bench(&o, &url).await })
            .await
            .map_err(|e| e.to_string())?
    });
    drop(server.stdin.take()); // the server exits on stdin EOF
    let _ = server.wait();
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One level's per-request figures, each sorted, in ns.
struct OverheadTable {
    /// Client TTFT − server TTFT measured from the request's arrival (kernel stamp).
    overhead: Vec<i64>,
    /// Client's send stamp → the request's bytes reached the server's kernel.
    send_side: Vec<i64>,
    /// The server had written the first token → the client's first-content stamp.
    receive_side: Vec<i64>,
    /// Client TTFT − server TTFT measured from when the server had *read* the request:
    /// also holds the server's own read queue.
    overhead_from_read: Vec<i64>,
    unmatched: usize,
}

/// Matches the client's records to the server's `/served` rows by prompt.
fn overhead_table(
    tag: &str,
    records: &[ldqa_model::RequestRecord],
    start_mono: i64,
    served: &serde_json::Value,
) -> OverheadTable {
    struct Row {
        arrived: i64,
        received: i64,
        first_written: i64,
    }
    let rows: HashMap<&str, Row> = served
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| {
            Some((
                row["prompt"].as_str()?,
                Row {
                    arrived: row["arrived_mono_ns"].as_i64()?,
                    received: row["received_mono_ns"].as_i64()?,
                    first_written: row["first_token_mono_ns"].as_i64()?,
                },
            ))
        })
        .collect();
    let mut t = OverheadTable {
        overhead: Vec::new(),
        send_side: Vec::new(),
        receive_side: Vec::new(),
        overhead_from_read: Vec::new(),
        unmatched: 0,
    };
    for r in records {
        let key = format!("{tag} #{}", r.prompt_id);
        let (Some(first), None, Some(row)) = (r.first_token_ns, &r.failure, rows.get(key.as_str()))
        else {
            t.unmatched += 1;
            continue;
        };
        let sent = start_mono + r.sent_ns as i64;
        let first = start_mono + first as i64;
        t.send_side.push(row.arrived - sent);
        t.receive_side.push(first - row.first_written);
        t.overhead
            .push((row.arrived - sent) + (first - row.first_written));
        t.overhead_from_read
            .push((first - sent) - (row.first_written - row.received));
    }
    for v in [
        &mut t.overhead,
        &mut t.send_side,
        &mut t.receive_side,
        &mut t.overhead_from_read,
    ] {
        v.sort_unstable();
    }
    t
}

async fn bench(o: &Options, url: &str) -> Result<(), String> {
    let endpoint = Endpoint::new(url, None).map_err(|e| e.to_string())?;
    println!(
        "server {url}: first token {} ms (+ up to {} ms jitter) after the request is read",
        o.delay_ms, o.jitter_ms
    );
    println!(
        "µs       requests  overhead: p50     p90     p99     max   send: p50     p99   recv: p50     p99   from read: p50  p99"
    );
    println!("inflight");
    for &level in &o.levels {
        let config = ClientConfig::new(endpoint.clone(), "scripted-model".into(), Api::Chat, 2);
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
        let send_clock = SendClock::default();
        let round = run_round(
            &client,
            RoundKind::Query,
            &specs(n),
            &Tagged(tag.clone()),
            level,
            &send_clock,
            &Cancel::new(),
        )
        .await;
        let start_mono = send_clock.round_start(&round.requests);
        let served: serde_json::Value = serde_json::from_str(
            &client
                .get_text(&format!("{}/served", url.trim_end_matches("/v1")))
                .await
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let table = overhead_table(&tag, &round.requests, start_mono, &served);
        if table.overhead.is_empty() {
            return Err(format!("no successful request at {level} in flight"));
        }
        let us = |sorted_ns: &[i64]| -> Vec<f64> {
            sorted_ns.iter().map(|&ns| ns as f64 / 1e3).collect()
        };
        let (all, send, recv, read) = (
            us(&table.overhead),
            us(&table.send_side),
            us(&table.receive_side),
            us(&table.overhead_from_read),
        );
        // Every matched request adds one sample to each column, so none is empty here.
        let q = |sorted: &[f64], p: f64| {
            quantile_sorted(sorted, p).expect("invariant: samples, and p within [0, 1]")
        };
        let max = all[all.len() - 1];
        print!(
            "{level:>8} {:>8}  {:>7.0} {:>7.0} {:>7.0} {:>7.0}  {:>7.0} {:>7.0}  {:>7.0} {:>7.0}  {:>7.0} {:>7.0}",
            all.len(),
            q(&all, 0.5),
            q(&all, 0.9),
            q(&all, 0.99),
            max,
            q(&send, 0.5),
            q(&send, 0.99),
            q(&recv, 0.5),
            q(&recv, 0.99),
            q(&read, 0.5),
            q(&read, 0.99),
        );
        if table.unmatched > 0 {
            print!("  ({} failed or unmatched)", table.unmatched);
        }
        println!();
    }
    if o.ingest_events > 0 {
        ingest(o, &endpoint).await?;
    }
    Ok(())
}

/// One stream of `ingest_events` content events, through the round runner (HTTP, chunked
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
