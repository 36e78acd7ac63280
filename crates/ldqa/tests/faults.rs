//! `ldqa run` against `ldqa serve --fault-rate 0.1 --faults all`: every round completes,
//! every injected fault is counted as the failure kind it stands for (checked against the
//! server's own fault log and `/metrics`), the engine ends with no request and no block
//! held, and the successful requests match a fault-free run of the same workload.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{start_serve, Server};

/// `ldqa serve` at 50× real time with `args`.
fn start_server(args: &[&str]) -> Server {
    let mut all = vec!["--time-scale", "50"];
    all.extend_from_slice(args);
    start_serve(&all)
}

/// `/metrics` as name → sum over label sets (and the raw text).
fn metrics(port: u16) -> (BTreeMap<String, f64>, String) {
    let (_, text) = common::http("GET", &format!("127.0.0.1:{port}"), "/metrics");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (Some(name_end), Some(value)) = (
            line.find(['{', ' ']),
            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        *out.entry(line[..name_end].to_owned()).or_insert(0.0) += value;
    }
    (out, text)
}

/// Runs the workload against `port`; returns (exit code, records.jsonl lines, result).
fn run_client(port: u16, dir: &Path) -> (Option<i32>, Vec<Value>, Value) {
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .env_remove("OPENAI_API_KEY")
        .env("NO_COLOR", "1")
        .args(["run", "--base-url", &format!("http://127.0.0.1:{port}/v1")])
        .args(["--num-documents", "40", "--document-length", "200"])
        .args(["--output-len", "5", "--repeat-count", "4"])
        .args(["--max-inflight-requests", "8", "--request-timeout", "1.5"])
        .arg("--output-dir")
        .arg(dir)
        .arg("--save-result")
        .arg(dir.join("result.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let records = std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap_or_else(|e| panic!("no records.jsonl ({e}): {stderr}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = serde_json::from_str(
        &std::fs::read_to_string(dir.join("result.json"))
            .unwrap_or_else(|e| panic!("no result.json ({e}): {stderr}")),
    )
    .unwrap();
    (out.status.code(), records, result)
}

/// The client's failure kind for each injected fault kind (`None`: success, only slower).
fn client_kind(fault: &str) -> Option<&'static str> {
    match fault {
        "http500" | "http429" => Some("http_status"),
        "drop" => Some("connect"),
        "disconnect" => Some("truncated_stream"),
        "stall" => Some("timeout"),
        "malformed" => Some("malformed_event"),
        "error_event" => Some("error_event"),
        "slow_first_byte" => None,
        other => panic!("unknown fault kind in the log: {other}"),
    }
}

/// (prompt tokens, completion tokens, content events) of a successful record.
fn usage_of(record: &Value) -> (u64, u64, u64) {
    let u = &record["record"]["usage"];
    (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
        record["record"]["content_events"].as_u64().unwrap(),
    )
}

#[test]
fn ldqa_run_survives_every_fault_kind_and_counts_each_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.jsonl");
    let log_arg = log.to_str().unwrap();
    let faulty = start_server(&[
        "--fault-rate",
        "0.1",
        "--faults",
        "http500,http429,drop,disconnect,stall,malformed,error_event,slow_first_byte",
        "--fault-seed",
        "1",
        "--fault-stall-s",
        "3",
        "--fault-slow-ms",
        "50",
        "--fault-log",
        log_arg,
    ]);
    let faulty_dir = dir.path().join("faulty");
    let (code, records, result) = run_client(faulty.port, &faulty_dir);
    assert_eq!(code, Some(0), "ldqa run must finish every round");

    // The server's own log: one line per injected fault.
    let log_text = std::fs::read_to_string(&log).unwrap();
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    for line in log_text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["request_index"].as_u64().unwrap() < records.len() as u64);
        *injected
            .entry(v["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Seed 1 over this workload's 205 requests injects every kind at least once.
    assert_eq!(injected.len(), 8, "kinds injected: {injected:?}");

    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for (kind, n) in &injected {
        if let Some(k) = client_kind(kind) {
            *expected.entry(k).or_default() += n;
        }
    }
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &records {
        if let Some(kind) = r["record"]["failure"]["kind"].as_str() {
            *counted.entry(client_kind_name(kind)).or_default() += 1;
        }
    }
    assert_eq!(
        counted, expected,
        "client failures vs the server's fault log"
    );

    // The saved result's per-round counts agree with the records of those rounds.
    for round in result["rounds"].as_array().unwrap() {
        let name = round["kind"].as_str().unwrap();
        let mut per_round: BTreeMap<String, u64> = BTreeMap::new();
        for r in records.iter().filter(|r| r["round"] == name) {
            if let Some(kind) = r["record"]["failure"]["kind"].as_str() {
                *per_round.entry(kind.to_owned()).or_default() += 1;
            }
        }
        let saved: BTreeMap<String, u64> =
            serde_json::from_value(round["summary"]["failures_by_kind"].clone()).unwrap();
        assert_eq!(saved, per_round, "round {name}");
    }

    // The server counted the same faults and holds no request and no block.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (m, text) = loop {
        let (m, text) = metrics(faulty.port);
        if m["vllm:num_requests_running"] == 0.0 && m["vllm:kv_cache_usage_perc"] == 0.0 {
            break (m, text);
        }
        assert!(Instant::now() < deadline, "engine still busy:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(m["vllm:num_requests_waiting"], 0.0);
    for (kind, n) in &injected {
        let line = format!("kind=\"{kind}\"}} {n}");
        assert!(text.contains(&line), "/metrics lacks {line}:\n{text}");
    }

    // A fault-free run of the same workload: every request succeeds, and each request
    // that succeeded under faults used the same prompt and completion tokens. (Cached
    // tokens may differ: a request that failed before the engine cached nothing.)
    let clean = start_server(&[]);
    let (code, clean_records, _) = run_client(clean.port, &dir.path().join("clean"));
    assert_eq!(code, Some(0));
    assert_eq!(clean_records.len(), records.len());
    let clean_usage: HashMap<(String, u64), (u64, u64, u64)> = clean_records
        .iter()
        .map(|r| {
            assert!(r["record"]["failure"].is_null(), "{r}");
            let key = (
                r["round"].as_str().unwrap().to_owned(),
                r["record"]["prompt_id"].as_u64().unwrap(),
            );
            (key, usage_of(r))
        })
        .collect();
    let ok: Vec<_> = records
        .iter()
        .filter(|r| r["record"]["failure"].is_null())
        .collect();
    let failed_faults: u64 = expected.values().sum();
    assert_eq!(ok.len() as u64 + failed_faults, clean_records.len() as u64);
    for r in ok {
        let key = (
            r["round"].as_str().unwrap().to_owned(),
            r["record"]["prompt_id"].as_u64().unwrap(),
        );
        assert_eq!(Some(&usage_of(r)), clean_usage.get(&key), "{r}");
    }
}

/// The records' kind names are the client's; this only checks they are known ones.
fn client_kind_name(kind: &str) -> &'static str {
    match kind {
        "connect" => "connect",
        "http_status" => "http_status",
        "timeout" => "timeout",
        "truncated_stream" => "truncated_stream",
        "malformed_event" => "malformed_event",
        "error_event" => "error_event",
        other => panic!("a failure no fault explains: {other}"),
    }
}
