//! Other people's benchmark clients against `ldqa serve`, each with its shared-prefix
//! workload: vLLM's own `vllm bench serve` (from the CPU vLLM's venv, `scripts/real-vllm
//! bench`) with `prefix_repetition`, and NVIDIA's AIPerf (`scripts/aiperf`) with a shared
//! system prompt. They complete, and the prefix cache hits what the block arithmetic says
//! (the peer-clients review found 0.9 % of tokens hit where about 75 % should).
//!
//! Ignored by a plain `cargo test`: they need the venvs and the tiny model folder, which
//! `scripts/test` installs and names (`LDQA_REAL_VLLM_MODEL_DIR`, `LDQA_AIPERF`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;

const NEEDS: &str = "needs vLLM's bench client and a model folder: LDQA_REAL_VLLM_MODEL_DIR is \
                     set by scripts/test after `scripts/real-vllm install` and `start`";

/// Prompts per prefix, prefixes, prefix and suffix tokens, and ldqa serve's block size.
const PER_PREFIX: u64 = 5;
const PREFIXES: u64 = 2;
const PREFIX_TOKENS: u64 = 300;
const SUFFIX_TOKENS: u64 = 100;
const BLOCK: u64 = 16;

fn model_dir() -> String {
    std::env::var("LDQA_REAL_VLLM_MODEL_DIR").unwrap_or_else(|_| panic!("{NEEDS}"))
}

/// `http://127.0.0.1:PORT` of a running `ldqa serve`.
fn root(server: &common::Server) -> String {
    format!("http://127.0.0.1:{}", server.port)
}

/// A server's prefix cache counters, from its `/metrics` at `root`: (queried tokens, hit
/// tokens).
fn prefix_cache_counters_at(root: &str) -> (u64, u64) {
    let (status, text) = common::http("GET", root.trim_start_matches("http://"), "/metrics");
    assert_eq!(status, 200);
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .round() as u64
    };
    (
        value("vllm:prefix_cache_queries_total"),
        value("vllm:prefix_cache_hits_total"),
    )
}

/// `ldqa serve`'s prefix cache counters on `port`.
fn prefix_cache_counters(port: u16) -> (u64, u64) {
    prefix_cache_counters_at(&format!("http://127.0.0.1:{port}"))
}

/// Runs `vllm bench serve` with the `prefix_repetition` dataset (the same prompts every
/// time: its seed is fixed), one request at a time, against the server at `root`
/// (`http://127.0.0.1:PORT`); its result JSON.
fn bench_prefix_repetition(root: &str, backend: &str, endpoint: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/real-vllm");
    let n = (PER_PREFIX * PREFIXES).to_string();
    let out = Command::new(script)
        .args([
            "bench",
            "serve",
            "--backend",
            backend,
            "--endpoint",
            endpoint,
        ])
        .args(["--base-url", root])
        .args(["--model", "tiny-llama", "--tokenizer", &model_dir()])
        .args(["--dataset-name", "prefix_repetition", "--num-prompts", &n])
        .args([
            "--prefix-repetition-prefix-len",
            &PREFIX_TOKENS.to_string(),
            "--prefix-repetition-suffix-len",
            &SUFFIX_TOKENS.to_string(),
            "--prefix-repetition-num-prefixes",
            &PREFIXES.to_string(),
            "--prefix-repetition-output-len",
            "4",
        ])
        .args(["--max-concurrency", "1", "--save-result", "--result-dir"])
        .arg(dir.path())
        .args(["--result-filename", "result.json"])
        .output()
        .unwrap();
    let log = common::output_log(&out);
    assert!(out.status.success(), "vllm bench serve failed:\n{log}");
    let text = std::fs::read_to_string(dir.path().join("result.json"))
        .unwrap_or_else(|e| panic!("no result ({e}):\n{log}"));
    let result: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result["completed"], PER_PREFIX * PREFIXES, "{log}");
    assert_eq!(result["failed"], 0, "{log}");
    result
}

/// An `ldqa serve` with the tiny model folder (its tokenizer and chat template).
fn serve() -> common::Server {
    common::start_serve(&[
        "--model",
        &model_dir(),
        "--served-model-name",
        "tiny-llama",
        "--block-size",
        &BLOCK.to_string(),
    ])
}

/// Completions: every prompt after the first of its prefix hits the prefix's full blocks,
/// the tokenizer's BOS included, exactly.
#[test]
#[ignore = "needs vLLM's bench client: scripts/test installs it (scripts/real-vllm)"]
fn vllm_bench_prefix_repetition_hits_the_shared_blocks_completions() {
    let server = serve();
    let result = bench_prefix_repetition(&root(&server), "openai", "/v1/completions");
    let (queried, hits) = prefix_cache_counters(server.port);
    assert_eq!(queried, result["total_input_tokens"].as_u64().unwrap());
    let hit_requests = (PER_PREFIX - 1) * PREFIXES;
    assert_eq!(hits, hit_requests * ((1 + PREFIX_TOKENS) / BLOCK * BLOCK));
}

/// Chat: the same through the model's own chat template, whose header comes before the
/// prefix; within one block per request of the arithmetic (the prefix's last token may
/// merge with the suffix's first when the prompt is tokenized whole).
#[test]
#[ignore = "needs vLLM's bench client: scripts/test installs it (scripts/real-vllm)"]
fn vllm_bench_prefix_repetition_hits_the_shared_blocks_chat() {
    let server = serve();
    bench_prefix_repetition(&root(&server), "openai-chat", "/v1/chat/completions");
    let header = ldqa_workload::chat_template::model_chat_template(Path::new(&model_dir()))
        .unwrap()
        .shared_prefix_tokens;
    let shared = u64::from(header) + PREFIX_TOKENS;
    let (_, hits) = prefix_cache_counters(server.port);
    let hit_requests = (PER_PREFIX - 1) * PREFIXES;
    let expected = hit_requests * (shared / BLOCK * BLOCK);
    assert!(
        hits.abs_diff(expected) <= hit_requests * BLOCK,
        "{hits} tokens hit, {expected} expected"
    );
    assert!(hits > 0);
}

/// NVIDIA's AIPerf (`scripts/aiperf`), chat and streaming, every conversation opening with
/// the same 300-token system prompt: it completes, and every request after the first hits
/// the system prompt's full blocks (within one block: the system message's closing and
/// the user header are shared too).
#[test]
#[ignore = "needs AIPerf: scripts/test installs it (scripts/aiperf) and sets LDQA_AIPERF"]
fn aiperf_shared_system_prompt_hits_its_blocks() {
    let aiperf = std::env::var("LDQA_AIPERF").unwrap_or_else(|_| {
        panic!("LDQA_AIPERF names the aiperf executable; scripts/test sets it")
    });
    let server = serve();
    let dir = tempfile::tempdir().unwrap();
    const REQUESTS: u64 = 10;
    const SYSTEM_TOKENS: u64 = 300;
    let out = Command::new(aiperf)
        .args([
            "profile",
            "--model",
            "tiny-llama",
            "--endpoint-type",
            "chat",
        ])
        .args([
            "--streaming",
            "--url",
            &format!("http://127.0.0.1:{}", server.port),
        ])
        .args(["--tokenizer", &model_dir()])
        .args([
            "--shared-system-prompt-length",
            &SYSTEM_TOKENS.to_string(),
            "--isl",
            "100",
            "--osl",
            "4",
            "--request-count",
            &REQUESTS.to_string(),
            "--concurrency",
            "1",
            "--random-seed",
            "1",
            "--ui-type",
            "none",
            "--artifact-dir",
        ])
        .arg(dir.path())
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let log = common::output_log(&out);
    assert!(out.status.success(), "aiperf failed:\n{log}");
    let (status, metrics) = common::http("GET", &format!("127.0.0.1:{}", server.port), "/metrics");
    assert_eq!(status, 200);
    let finished = metrics
        .lines()
        .find(|l| l.starts_with("vllm:request_success_total") && l.contains("\"length\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no finished requests in /metrics:\n{metrics}"));
    assert_eq!(finished, REQUESTS as f64, "{log}");
    let header = ldqa_workload::chat_template::model_chat_template(Path::new(&model_dir()))
        .unwrap()
        .shared_prefix_tokens;
    let (_, hits) = prefix_cache_counters(server.port);
    let hit_requests = REQUESTS - 1;
    let expected = hit_requests * ((u64::from(header) + SYSTEM_TOKENS) / BLOCK * BLOCK);
    assert!(
        hits.abs_diff(expected) <= hit_requests * BLOCK,
        "{hits} tokens hit, {expected} expected"
    );
}

/// The same `prefix_repetition` prompts hit the same tokens on the real vLLM and on an
/// `ldqa serve` describing it (its model folder and engine flags).
#[test]
#[ignore = "needs a real vLLM and its bench client: scripts/test starts one (scripts/real-vllm)"]
fn vllm_bench_prefix_repetition_hits_alike_on_vllm_and_ldqa_serve() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name}: {NEEDS}"));
    let real = var("LDQA_REAL_VLLM_URL")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let vllm_args: Vec<String> = var("LDQA_REAL_VLLM_ARGS")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let (status, body) = common::http(
        "POST",
        real.trim_start_matches("http://"),
        "/reset_prefix_cache",
    );
    assert_eq!(status, 200, "{body}");
    let served = common::start_serve_like_real_vllm("tiny-llama", &model_dir(), &vllm_args);
    let mut hits = Vec::new();
    for root in [real.clone(), root(&served)] {
        let before = prefix_cache_counters_at(&root);
        bench_prefix_repetition(&root, "openai", "/v1/completions");
        let after = prefix_cache_counters_at(&root);
        hits.push((after.0 - before.0, after.1 - before.1));
    }
    assert_eq!(
        hits[0], hits[1],
        "(queried, hit) tokens: vLLM, then ldqa serve"
    );
    assert!(hits[0].1 > 0, "{hits:?}");
}
