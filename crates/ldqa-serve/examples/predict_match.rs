//! Benchmark: `ldqa run`'s client against the server gives the simulator's numbers for
//! the same scenario within 5 % (warmup and query: mean TTFT, round time); exits 1 when
//! one differs by more. A wall-clock comparison, so a benchmark run on an idle machine
//! (`cargo run -p ldqa-serve --release --example predict_match`), not a test: the
//! figures are in docs/benchmarks.md.
//!
//! The server runs at `TIME_SCALE`× real time; its wall times × `TIME_SCALE` are
//! compared with the simulator's virtual times for the same plan, computed by the
//! function `ldqa predict` calls (`ldqa_sim::protocol::run_protocol`).
//!
//! The scenario has the seed's documents and concurrency (10,000 tokens, 4 in flight) with
//! a GPU cache smaller than the documents, so the query round exercises the LMCache tier;
//! its times are hundreds of milliseconds, as in the seed, so that the comparison is about
//! the model and not about a millisecond of loopback latency.
//!
//! One output token, not the seed's 100, on purpose: with 100, the last request of each
//! wave of 4 finishes its decode about 13 ms (simulated) after the next wave's first
//! request reaches the engine, so a few milliseconds of client or debug-build server
//! latency decide whether that request's last tokens wait behind a 220 ms prefill step:
//! a near-tie that moved the mean TTFT by 5.5 % between runs of the same code. With one
//! token, every request arrives in the middle of a 220 ms prefill step and no decision
//! hangs on a few milliseconds (worst error 2.1 % in a debug build, 0.8 % in release).
//! The decode steps are compared on their own, one request at a time (`DECODING`).
//!
//! The time scale stays at 2: the server's own processing time (a few ms in a debug build
//! on a busy 2-core machine) is multiplied by it.

#[path = "../tests/common/mod.rs"]
mod common;

use ldqa_loadgen::{run_protocol, Cancel, NoObserver, ProtocolOptions};
use ldqa_model::{PromptTemplate, RoundKind, RoundRecord};
use ldqa_sim::protocol::SimClient;
use ldqa_workload::{RepeatMode, Workload, WorkloadConfig};

const TIME_SCALE: f64 = 2.0;
const DOC_TOKENS: usize = 10000;

/// What varies between the two comparisons.
#[derive(Clone, Copy)]
struct Shape {
    docs: usize,
    output: u32,
    inflight: usize,
}

/// 4 in flight, one output token (see the module docs).
const CONCURRENT: Shape = Shape {
    docs: 12,
    output: 1,
    inflight: 4,
};

/// The seed's 100 output tokens, one request at a time: the decode steps, with nothing
/// to race them.
const DECODING: Shape = Shape {
    docs: 6,
    output: 100,
    inflight: 1,
};

fn within(what: &str, served_ns: f64, predicted_ns: f64) -> Result<(), String> {
    let rel = (served_ns - predicted_ns).abs() / predicted_ns;
    let line = format!(
        "{what}: served {:.2} ms vs predicted {:.2} ms ({:+.2}%)",
        served_ns / 1e6,
        predicted_ns / 1e6,
        100.0 * (served_ns / predicted_ns - 1.0)
    );
    eprintln!("{line}");
    if rel <= 0.05 {
        Ok(())
    } else {
        Err(line)
    }
}

fn mean_ttft_ns(round: &RoundRecord) -> f64 {
    round.mean_ttft_ns().unwrap_or(f64::NAN)
}

/// Both runs of one engine and shape; the comparisons that missed the 5 % band.
async fn check(lmcache: bool, shape: Shape) -> Vec<String> {
    let Shape {
        docs,
        output,
        inflight,
    } = shape;
    let mut scenario = common::scenario(lmcache);
    // A GPU cache that holds the 4 requests in flight (4 × ~10.1k tokens) but not 6 or
    // 12 documents: in tile order each document is evicted long before it comes back, so
    // the query round needs the CPU tier, and nothing depends on a near-tie in the LRU.
    scenario.config.gpu_kv_tokens = 48_000;
    let mut config = common::config(TIME_SCALE);
    config.engine = scenario.config.clone();
    let (base, _stop) = common::start(config).await;
    let workload = Workload::build(&WorkloadConfig {
        num_documents: docs,
        document_length: DOC_TOKENS,
        repeat_count: 1,
        repeat_mode: RepeatMode::Tile,
        ..Default::default()
    })
    .unwrap();
    let plan = workload.plan(inflight, 0);
    let client = common::client(&base, output);
    let options = ProtocolOptions::default();
    let served = run_protocol(
        std::slice::from_ref(&client),
        &plan,
        &workload,
        &options,
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    let sim_client = SimClient {
        output_len: output,
        template: PromptTemplate::LLAMA3_CHAT,
    };
    let predicted = ldqa_sim::protocol::run_protocol(&scenario, &plan, &sim_client).unwrap();
    let round = |rounds: &[RoundRecord], kind| {
        rounds
            .iter()
            .find(|r| r.kind == kind)
            .cloned()
            .expect("invariant: every round ran")
    };

    let mut failures = Vec::new();
    for (name, kind) in [("warmup", RoundKind::Warmup), ("query", RoundKind::Query)] {
        let (served, predicted) = (round(&served.rounds, kind), round(&predicted, kind));
        assert!(served.requests.iter().all(|r| r.is_success()));
        let mean = mean_ttft_ns(&served);
        let engine = if lmcache { "lmcache" } else { "vllm" };
        let engine = format!("{engine} ({inflight} in flight, {output} out)");
        failures.extend(
            within(
                &format!("{engine} {name} mean TTFT"),
                mean * TIME_SCALE,
                mean_ttft_ns(&predicted),
            )
            .err(),
        );
        failures.extend(
            within(
                &format!("{engine} {name} round time"),
                served.duration_ns as f64 * TIME_SCALE,
                predicted.duration_ns as f64,
            )
            .err(),
        );
    }
    failures
}

// Engines one after the other: two real-time servers side by side on a 2-core machine
// would measure each other.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let mut failures = check(false, CONCURRENT).await;
    failures.extend(check(true, CONCURRENT).await);
    // vLLM only: LMCache's query TTFT at one in flight is 73 ms (simulated), 37 ms of wall
    // time at this scale, and an idle 2-core VM wakes the server's threads 1–2 ms late
    // for the first token (its `ldqa:token_emission_lag_seconds`), which alone is 4–8 %
    // of that. The decode steps are the same code for both engines.
    failures.extend(check(false, DECODING).await);
    if failures.is_empty() {
        println!("every served figure within 5 % of the prediction");
        std::process::ExitCode::SUCCESS
    } else {
        println!("outside 5 %:\n{}", failures.join("\n"));
        std::process::ExitCode::FAILURE
    }
}
