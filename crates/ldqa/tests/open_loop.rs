//! Long Doc QA with open-loop arrivals (`--request-rate`, `--burstiness`,
//! `--max-concurrency`): in virtual time and against `ldqa serve`, the same schedule.

mod common;

use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test")
        .env("NO_COLOR", "1");
    c
}

const WORKLOAD: &[&str] = &[
    "--num-documents",
    "4",
    "--document-length",
    "2000",
    "--output-len",
    "10",
    "--request-rate",
    "4",
];

/// The query round's records from a saved result: (due, sent, end, cached tokens).
fn query_records(path: &Path) -> Vec<(u64, u64, u64, u64)> {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(doc["config"]["request_rate"], 4.0);
    let rounds = doc["rounds"].as_array().unwrap();
    let query = rounds.iter().find(|r| r["kind"] == "query").unwrap();
    query["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                n("queued_ns"),
                n("sent_ns"),
                n("end_ns"),
                r["usage"]["cached_tokens"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn predict(dir: &Path, extra: &[&str]) -> Vec<(u64, u64, u64, u64)> {
    let result = dir.join("result.json");
    let out = ldqa()
        .arg("predict")
        .args(WORKLOAD)
        .args(extra)
        .arg("--output-dir")
        .arg(dir)
        .arg("--save-result")
        .arg(&result)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    query_records(&result)
}

/// Requests are due on a Poisson schedule (uneven gaps, 0.25 s on average), each sent when
/// due while the cap allows; with one slot, none is sent before the previous ended.
#[test]
fn requests_go_out_on_their_schedule_and_wait_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let free = predict(dir.path(), &[]);
    assert_eq!(free.len(), 8);
    assert_eq!(free[0].0, 0);
    for r in &free {
        assert_eq!(r.0, r.1, "no cap: sent when due");
    }
    let gaps: Vec<u64> = free.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().any(|&g| g != gaps[0]), "{gaps:?}");
    // The cap of one slot: 8 requests of about 0.1 s each, due 0.25 s apart on average.
    let one = predict(dir.path(), &["--max-concurrency", "1"]);
    for w in one.windows(2) {
        assert!(w[1].1 >= w[0].2, "sent before the previous ended: {one:?}");
        assert!(w[1].1 >= w[1].0);
    }
    assert!(
        one.iter().any(|r| r.1 > r.0),
        "a full slot delays a request"
    );
}

/// The same seed draws the same schedule; another seed another one.
#[test]
fn the_schedule_follows_the_shuffle_seed() {
    let dir = tempfile::tempdir().unwrap();
    let a = predict(dir.path(), &[]);
    let b = predict(dir.path(), &[]);
    let c = predict(dir.path(), &["--shuffle-seed", "3"]);
    let due = |v: &[(u64, u64, u64, u64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(due(&a), due(&b));
    assert_ne!(due(&a), due(&c));
}

/// Against `ldqa serve`, `run` sends on the schedule `predict` simulates, and every request
/// caches what was predicted.
#[test]
fn a_served_run_keeps_the_predicted_schedule() {
    let server = common::start_serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("run.json");
    let out = ldqa()
        .args(["run", "--port", &server.port.to_string()])
        .args(WORKLOAD)
        .arg("--output-dir")
        .arg(dir.path())
        .arg("--save-result")
        .arg(&result)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    let served = query_records(&result);
    let predicted = predict(dir.path(), &[]);
    let due = |v: &[(u64, u64, u64, u64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(due(&served), due(&predicted));
    let cached = |v: &[(u64, u64, u64, u64)]| v.iter().map(|r| r.3).collect::<Vec<_>>();
    assert_eq!(cached(&served), cached(&predicted));
}

#[test]
fn open_loop_flags_are_checked() {
    ldqa()
        .args(["predict", "--max-concurrency", "2"])
        .assert()
        .code(2)
        .stderr(contains("--request-rate"));
    ldqa()
        .args(["predict", "--request-rate", "0"])
        .assert()
        .code(2)
        .stderr(contains("--request-rate"));
    ldqa()
        .args(["predict", "--burstiness", "2"])
        .assert()
        .code(2)
        .stderr(contains("--request-rate"));
    ldqa()
        .args(["predict", "--request-rate", "1", "--burstiness", "-1"])
        .assert()
        .code(2)
        .stderr(contains("--burstiness"));
}
