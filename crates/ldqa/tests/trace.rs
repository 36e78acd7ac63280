//! `ldqa trace stats`: a hand-checked trace through the command line, the formats, and
//! bad traces refused with the line named.

mod common;

use assert_cmd::Command;
use predicates::str::contains;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test")
        .env("NO_COLOR", "1");
    c
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Bailian's format (16-token blocks), worked by hand: a conversation of two turns (the
/// second's prompt starts with the first's two blocks) and a stranger.
/// - chat 1, turn 1: 40 tokens `[1 2 3]`, nothing seen: 0.
/// - chat 1, turn 2: 70 tokens `[1 2 3 4 5]`: 3 leading blocks seen: 48.
/// - chat 2: 20 tokens `[9 2]`: 9 unseen, so 0 (2 was seen, but after a miss).
///
/// Unbounded: 48 of 130 tokens, 1 request. An LRU of 2 blocks (32 tokens) holds only
/// turn 1's head, 1 and 2 (3 was evicted first): turn 2 hits 32.
#[test]
fn a_hand_checked_bailian_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "t.jsonl",
        r#"{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 40, "output_length": 5, "turn": 1, "type": "text", "hash_ids": [1, 2, 3]}
{"chat_id": 2, "parent_chat_id": 1, "timestamp": 2.5, "input_length": 70, "output_length": 5, "turn": 2, "type": "text", "hash_ids": [1, 2, 3, 4, 5]}
{"chat_id": 3, "parent_chat_id": -1, "timestamp": 3.0, "input_length": 20, "output_length": 1, "turn": 1, "type": "text", "hash_ids": [9, 2]}
"#,
    );
    let out = ldqa()
        .args(["trace", "stats", "--json", "--capacity", "32"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &report["stats"];
    assert_eq!(s["format"], "bailian");
    assert_eq!(s["block_tokens"], 16);
    assert_eq!(s["requests"], 3);
    assert_eq!(s["duration_s"], 3.0);
    assert_eq!(s["input_tokens"], 130);
    assert_eq!(s["unbounded"]["hit_tokens"], 48);
    assert_eq!(s["unbounded"]["requests_with_hits"], 1);
    assert_eq!(s["lru"][0]["hit_tokens"], 32);
    let table = ldqa()
        .args(["trace", "stats", "--capacity", "32"])
        .arg(&trace)
        .assert()
        .success();
    let text = String::from_utf8(table.get_output().stdout.clone()).unwrap();
    assert!(text.contains("unbounded"), "{text}");
    assert!(text.contains("36.9 %"), "48 of 130: {text}");
}

/// Without --capacity the caches are the deployment's (the `predict` flags).
#[test]
fn default_caches_are_the_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1, 2]}\n{\"timestamp\": 1000, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1, 2]}\n",
    );
    let out = ldqa()
        .args(["trace", "stats", "--json", "--gpu", "h200"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["lru_labels"],
        serde_json::json!(["GPU prefix cache", "GPU + LMCache CPU tier"])
    );
    assert!(report["deployment"].as_str().unwrap().contains("h200"));
    assert_eq!(report["stats"]["lru"][0]["hit_tokens"], 1024);
}

#[test]
fn bad_traces_exit_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        (
            "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1]}\n{\"timestamp\": 1, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1]}\n",
            "line 2: 1 hash_ids for input_length 600",
        ),
        ("{\"a\": 1}\n", "name the format with --format"),
        ("", "no request in the trace"),
        ("{\"timestamp\": 0, \"input_length\": \"x\"", "line 1"),
    ] {
        let trace = write(&dir, "bad.jsonl", text);
        ldqa()
            .args(["trace", "stats", "--capacity", "100"])
            .arg(&trace)
            .assert()
            .code(2)
            .stderr(contains(says));
    }
    ldqa()
        .args([
            "trace",
            "stats",
            "/nonexistent/trace.jsonl",
            "--capacity",
            "1",
        ])
        .assert()
        .code(2)
        .stderr(contains("/nonexistent/trace.jsonl"));
    ldqa()
        .args(["trace", "stats", "x.jsonl", "--format", "csv"])
        .assert()
        .code(2)
        .stderr(contains("expected mooncake or bailian"));
}

/// `predict --trace` replays a trace in virtual time: a later request hits exactly the
/// trace blocks it shares with an earlier one (1,024 tokens: two 512-token blocks), on
/// both engines; the arrivals are the trace's over --speedup.
#[test]
fn predict_replays_a_trace_with_its_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 1536, \"output_length\": 2, \"hash_ids\": [1, 2, 3]}\n{\"timestamp\": 4000, \"input_length\": 1536, \"output_length\": 2, \"hash_ids\": [1, 2, 4]}\n{\"timestamp\": 8000, \"input_length\": 512, \"output_length\": 2, \"hash_ids\": [5]}\n",
    );
    let out = ldqa()
        .args(["predict", "--engine", "both", "--speedup", "2", "--trace"])
        .arg(&trace)
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("3 requests"), "{table}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("trace_prediction.json")).unwrap())
            .unwrap();
    assert_eq!(report["format"], "mooncake");
    for engine in report["engines"].as_array().unwrap() {
        assert_eq!(engine["requests"], 3);
        assert_eq!(engine["failed"], 0);
        let hits =
            engine["gpu_hit_tokens"].as_u64().unwrap() + engine["cpu_hit_tokens"].as_u64().unwrap();
        assert_eq!(hits, 1024, "{engine}");
        assert_eq!(engine["prompt_tokens"], 3584);
    }
    // Requests 4 s apart at ×2: the makespan runs past the last send, 4 s.
    assert!(report["engines"][0]["makespan_s"].as_f64().unwrap() > 4.0);
}

#[test]
fn predict_trace_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 512, \"output_length\": 2, \"hash_ids\": [1]}\n",
    );
    for (flags, says) in [
        (
            vec!["--speedup", "0"],
            "--speedup must be a positive number",
        ),
        (vec!["--time-window", "-1"], "--time-window"),
        (
            vec!["--max-concurrency", "0"],
            "--max-concurrency must be at least 1",
        ),
        (vec!["--instances", "0"], "--instances must be 1 to 1024"),
        (vec!["--router", "fastest"], "possible values: round-robin"),
    ] {
        ldqa()
            .args(["predict", "--trace"])
            .arg(&trace)
            .args(&flags)
            .arg("--output-dir")
            .arg(dir.path())
            .assert()
            .code(2)
            .stderr(contains(says));
    }
    ldqa()
        .args(["predict", "--trace", "/nonexistent/t.jsonl"])
        .arg("--output-dir")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(contains("/nonexistent/t.jsonl"));
}

/// `--instances N --router P`: the table and the JSON gain a section per instance, whose
/// requests and cached tokens add up to the arm's; a prefix-aware router keeps a repeated
/// document where it was cached, so it hits where round robin misses. `predict` simulates
/// one cluster: several values (a sweep's axis) are refused, not ignored.
#[test]
fn predict_simulates_instances_behind_a_router() {
    let dir = tempfile::tempdir().unwrap();
    let trace = common::three_documents_four_times(dir.path());
    let cached_by = |router: &str| -> serde_json::Value {
        let out = ldqa()
            .args([
                "predict",
                "--engine",
                "vllm",
                "--instances",
                "2",
                "--router",
                router,
            ])
            .arg("--trace")
            .arg(&trace)
            .arg("--output-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let table = String::from_utf8(out.stdout).unwrap();
        assert!(table.contains("  #1") && table.contains("  #2"), "{table}");
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("trace_prediction.json")).unwrap(),
        )
        .unwrap();
        let arm = report["engines"][0].clone();
        let parts = arm["instances"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        for field in ["requests", "cached_tokens", "prompt_tokens"] {
            let sum: u64 = parts.iter().map(|p| p[field].as_u64().unwrap()).sum();
            assert_eq!(Some(sum), arm[field].as_u64(), "{router}: {field}");
        }
        arm
    };
    // 1,008 tokens a hit (the prompt less its last 16-token block).
    assert_eq!(cached_by("round-robin")["cached_tokens"], 6 * 1008);
    assert_eq!(cached_by("cache-aware")["cached_tokens"], 9 * 1008);
    assert_eq!(cached_by("kv-aware")["cached_tokens"], 9 * 1008);
    ldqa()
        .args(["predict", "--instances", "2,4"])
        .arg("--trace")
        .arg(&trace)
        .arg("--output-dir")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(contains("predict simulates one cluster"));
    ldqa()
        .args(["predict", "--router", "kv-aware,session"])
        .arg("--output-dir")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(contains("predict simulates one cluster"));
}

/// `--remote-gib`: LMCache behind round robin, each instance's tiers serve only what it
/// computed (the second sighting on each instance, 6 hits of 1,023 tokens: a full hit less
/// one); a shared remote tier also serves a document the other instance computed (9 hits).
#[test]
fn a_shared_remote_tier_serves_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let trace = common::three_documents_four_times(dir.path());
    let lmcache_cached = |extra: &[&str]| -> u64 {
        let out = ldqa()
            .args([
                "predict",
                "--engine",
                "lmcache",
                "--instances",
                "2",
                "--trace",
            ])
            .arg(&trace)
            .args(extra)
            .arg("--output-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("trace_prediction.json")).unwrap(),
        )
        .unwrap();
        report["engines"][0]["cached_tokens"].as_u64().unwrap()
    };
    assert_eq!(lmcache_cached(&[]), 6 * 1023);
    assert_eq!(lmcache_cached(&["--remote-gib", "1"]), 9 * 1023);
    assert_eq!(lmcache_cached(&["--remote-gib", "0"]), 6 * 1023, "0: none");
    for (flags, says) in [
        (
            vec!["--remote-gib", "-1"],
            "--remote-gib must be a number of GiB, 0 or more",
        ),
        (vec!["--remote-gib", "1,2"], "predict simulates one cluster"),
        (
            vec!["--remote-gib", "1", "--remote-gbps", "-3"],
            "--remote-gbps must be a positive number",
        ),
        (vec!["--remote-latency-ms", "2"], "--remote-gib"),
    ] {
        ldqa()
            .args(["predict", "--trace"])
            .arg(&trace)
            .args(&flags)
            .arg("--output-dir")
            .arg(dir.path())
            .assert()
            .code(2)
            .stderr(contains(says));
    }
}

/// `replay` sends a trace to a server on its schedule, its prompts synthesised as token ids
/// so that equal block ids are equal blocks: against `ldqa serve`, every request's cached
/// tokens are what `predict --trace` predicts. (How close the TTFTs come is a benchmark's
/// business, not a timed test's: docs/benchmarks.md.)
#[test]
fn replay_against_the_simulator_caches_what_predict_predicts() {
    let dir = tempfile::tempdir().unwrap();
    // Six requests 300 ms apart, 16 blocks of 512 each; every other one shares its first
    // six blocks with the one two before.
    let mut text = String::new();
    for i in 0..6u64 {
        let base = if i % 2 == 1 { 100 } else { 200 };
        let ids: Vec<String> = (0..6)
            .map(|j| (base + j).to_string())
            .chain((0..10).map(|j| (1000 + i * 100 + j).to_string()))
            .collect();
        text.push_str(&format!(
            "{{\"timestamp\": {}, \"input_length\": 8192, \"output_length\": 4, \"hash_ids\": [{}]}}\n",
            i * 300,
            ids.join(", ")
        ));
    }
    let trace = write(&dir, "t.jsonl", &text);
    let server = common::start_serve(&[]);
    let url = format!("http://127.0.0.1:{}/v1", server.port);
    let out = ldqa()
        .args(["replay", "--base-url", &url, "--output-dir"])
        .arg(dir.path().join("replay"))
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let predicted = ldqa()
        .args(["predict", "--trace"])
        .arg(&trace)
        .arg("--output-dir")
        .arg(dir.path().join("predict"))
        .output()
        .unwrap();
    assert!(predicted.status.success(), "{predicted:?}");
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap()
    };
    let replayed = read("replay/replay.json");
    let predicted = read("predict/trace_prediction.json");
    let cached = |v: &serde_json::Value| v["engines"][0]["cached_tokens_per_request"].clone();
    assert_eq!(cached(&replayed), cached(&predicted));
    assert_eq!(
        cached(&replayed),
        serde_json::json!([0, 0, 3072, 3072, 3072, 3072]),
        "six shared blocks of 512 from the third request on"
    );
    assert_eq!(replayed["engines"][0]["failed"], 0);
    assert!(replayed["engines"][0]["send_lag_max_s"].is_number());
}

/// A Bailian conversation's second turn, recorded 10 ms after the first, is sent only once
/// the first's 100-token answer has ended (at least 100 decode steps of several ms each on
/// the simulated H100): against `ldqa serve` and in `predict`, it hits the first turn's
/// three 16-token blocks, and the replay reports how late it went.
#[test]
fn a_bailian_turn_waits_for_the_previous_answer() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "b.jsonl",
        r#"{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 48, "output_length": 100, "turn": 1, "type": "text", "hash_ids": [1, 2, 3]}
{"chat_id": 2, "parent_chat_id": 1, "timestamp": 0.01, "input_length": 64, "output_length": 2, "turn": 2, "type": "text", "hash_ids": [1, 2, 3, 4]}
"#,
    );
    let server = common::start_serve(&[]);
    let url = format!("http://127.0.0.1:{}/v1", server.port);
    let out = ldqa()
        .args(["replay", "--base-url", &url, "--output-dir"])
        .arg(dir.path().join("replay"))
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let predicted = ldqa()
        .args(["predict", "--trace"])
        .arg(&trace)
        .arg("--output-dir")
        .arg(dir.path().join("predict"))
        .output()
        .unwrap();
    assert!(predicted.status.success(), "{predicted:?}");
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap()
    };
    let replayed = &read("replay/replay.json")["engines"][0];
    let predicted = &read("predict/trace_prediction.json")["engines"][0];
    assert_eq!(
        replayed["cached_tokens_per_request"],
        serde_json::json!([0, 48])
    );
    assert_eq!(
        predicted["cached_tokens_per_request"],
        replayed["cached_tokens_per_request"]
    );
    let lag = replayed["send_lag_max_s"].as_f64().unwrap();
    assert!(lag > 0.3, "the second turn went {lag} s late");
}

/// `--base-url` twice: requests go to the two servers in turn (client-side round robin),
/// and the JSON has the total and a line per instance that add up to it. Two requests
/// sharing a prefix land on different servers, so neither hits; a third, on the first
/// server again, hits the first's blocks.
#[test]
fn replay_round_robins_over_several_servers() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [1, 2]}\n{\"timestamp\": 200, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [1, 2]}\n{\"timestamp\": 400, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [1, 2]}\n",
    );
    let (a, b) = (common::start_serve(&[]), common::start_serve(&[]));
    let url = |s: &common::Server| format!("http://127.0.0.1:{}/v1", s.port);
    let metrics = |s: &common::Server| format!("http://127.0.0.1:{}/metrics", s.port);
    let out = ldqa()
        .args(["replay", "--base-url", &url(&a), "--base-url", &url(&b)])
        .args(["--metrics-url", &metrics(&a), "--metrics-url", &metrics(&b)])
        .arg("--output-dir")
        .arg(dir.path())
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("server 2"), "{table}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("replay.json")).unwrap()).unwrap();
    let engines = report["engines"].as_array().unwrap();
    assert_eq!(engines.len(), 1);
    // A whole-prompt hit recomputes its last block (vLLM computes at least one token).
    assert_eq!(
        engines[0]["cached_tokens_per_request"],
        serde_json::json!([0, 0, 1008])
    );
    let each = engines[0]["instances"].as_array().unwrap();
    assert_eq!(each[0]["requests"], 2);
    assert_eq!(each[1]["requests"], 1);
    assert_eq!(each[0]["cached_tokens"], 1008);
    assert_eq!(each[1]["cached_tokens"], 0);
    assert_eq!(engines[0]["load_imbalance"], 2.0 / 1.5);
    for e in std::iter::once(&engines[0]).chain(each) {
        assert_eq!(e["shed"], 0);
    }
    // Each instance's own counters: what the client saw, split as it was sent.
    let counters = report["instance_counters"].as_array().unwrap();
    let own = |k: usize, field: &str| counters[k][field].as_u64().unwrap();
    assert_eq!((own(0, "requests"), own(1, "requests")), (2, 1));
    assert_eq!(
        (
            own(0, "prefix_cache_hits_tokens"),
            own(1, "prefix_cache_hits_tokens")
        ),
        (1008, 0)
    );
    assert!(
        table.contains("they add up to what the client saw"),
        "{table}"
    );
}

/// A server that sheds load (HTTP 429, injected) is reported as such, per instance: in
/// the JSON and in a line under the table.
#[test]
fn requests_a_server_sheds_are_counted_per_instance() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..4)
        .map(|i| format!("{{\"timestamp\": {}, \"input_length\": 64, \"output_length\": 2, \"hash_ids\": [{i}]}}\n", i * 100))
        .collect();
    let trace = write(&dir, "m.jsonl", &lines);
    let ok = common::start_serve(&[]);
    let shedding = common::start_serve(&["--fault-rate", "1", "--faults", "http429"]);
    let url = |s: &common::Server| format!("http://127.0.0.1:{}/v1", s.port);
    let out = ldqa()
        .args([
            "replay",
            "--base-url",
            &url(&ok),
            "--base-url",
            &url(&shedding),
        ])
        .arg("--output-dir")
        .arg(dir.path())
        .arg(&trace)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("server 2: 2 of its 2 failed requests were shed (HTTP 429 or 503)"),
        "{}",
        common::output_log(&out)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("replay.json")).unwrap()).unwrap();
    let all = &report["engines"][0];
    assert_eq!(
        (all["failed"].as_u64(), all["shed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(all["instances"][0]["shed"], 0);
    assert_eq!(all["instances"][1]["shed"], 2);
}

/// A `--metrics-url` that does not answer stops the replay before anything is sent.
#[test]
fn an_unreadable_metrics_url_stops_the_replay_first() {
    let dir = tempfile::tempdir().unwrap();
    let trace = common::three_documents_four_times(dir.path());
    let server = common::start_serve(&[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/metrics", closed.local_addr().unwrap());
    drop(closed);
    ldqa()
        .args(["replay", "--base-url"])
        .arg(format!("http://127.0.0.1:{}/v1", server.port))
        .args(["--metrics-url", &dead])
        .arg("--output-dir")
        .arg(dir.path())
        .arg(&trace)
        .assert()
        .code(2)
        .stderr(contains(format!("--metrics-url {dead}")));
    let sent = common::counter(server.port, "vllm:request_success_total");
    assert_eq!(sent, 0.0, "nothing was sent");
}

#[test]
fn replay_flags_are_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 512, \"output_length\": 2, \"hash_ids\": [1]}\n",
    );
    for (flags, says) in [
        (
            vec!["--speedup", "-2"],
            "--speedup must be a positive number",
        ),
        (
            vec!["--max-concurrency", "0"],
            "--max-concurrency must be at least 1",
        ),
        (
            vec!["--vocab-size", "10"],
            "--vocab-size must be above 1000",
        ),
    ] {
        ldqa()
            .args(["replay", "--base-url", "http://127.0.0.1:9/v1"])
            .arg(&trace)
            .args(&flags)
            .arg("--output-dir")
            .arg(dir.path())
            .assert()
            .code(2)
            .stderr(contains(says));
    }
    ldqa()
        .args(["replay", "--base-url", "http://127.0.0.1:9/v1"])
        .arg(&trace)
        .arg("--output-dir")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(contains("127.0.0.1:9"));
}

/// `sweep --trace` replays a trace on both engines at each value of a deployment axis.
/// Three 1,024-token prompts, then the first again: a GPU cache of 99 blocks of 16
/// (1,584 tokens) has evicted it by then, so only LMCache's CPU tier can serve it, and only
/// when the tier holds it: 0.01 GiB (81 tokens of Llama-3.1-8B's 128 KiB per token) is
/// less than one 256-token chunk; 1 GiB holds it all.
#[test]
fn sweep_replays_a_trace_along_the_cpu_tier() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write(
        &dir,
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [1, 2]}\n{\"timestamp\": 1000, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [3, 4]}\n{\"timestamp\": 2000, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [5, 6]}\n{\"timestamp\": 3000, \"input_length\": 1024, \"output_length\": 2, \"hash_ids\": [1, 2]}\n",
    );
    let out = ldqa()
        .args([
            "sweep",
            "--lmcache-cpu-gib",
            "0.01,1",
            "--num-gpu-blocks",
            "100",
            "--trace",
        ])
        .arg(&trace)
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("4 requests"), "{table}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sweep_trace.json")).unwrap())
            .unwrap();
    assert_eq!(report["axis"], "--lmcache-cpu-gib");
    let points = report["points"].as_array().unwrap();
    let cpu = |i: usize| points[i]["lmcache"]["cpu_hit_tokens"].as_u64().unwrap();
    // All of the prompt but its last token, which the engine computes to sample from.
    assert_eq!((cpu(0), cpu(1)), (0, 1023));
    for p in points {
        assert_eq!(p["vllm"]["cached_tokens"], 0, "{p}");
    }
    ldqa()
        .args(["sweep", "--trace"])
        .arg(&trace)
        .assert()
        .code(2)
        .stderr(contains("--lmcache-cpu-gib"));
}

/// `sweep --trace` along the cluster: `--router` with several values on 2 instances (round
/// robin computes each document once per instance, cache-aware once), `--instances` with
/// several (one instance caches like cache-aware on two); two cluster axes at once, or
/// several values given to `predict`, are refused.
#[test]
fn sweep_replays_a_trace_along_the_router_and_the_instances() {
    let dir = tempfile::tempdir().unwrap();
    let trace = common::three_documents_four_times(dir.path());
    let vllm_cached = |flags: &[&str]| -> Vec<(String, u64)> {
        let out = ldqa()
            .arg("sweep")
            .args(flags)
            .arg("--trace")
            .arg(&trace)
            .arg("--output-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("sweep_trace.json")).unwrap())
                .unwrap();
        report["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["value"].to_string(),
                    p["vllm"]["cached_tokens"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        vllm_cached(&["--instances", "2", "--router", "round-robin,cache-aware"]),
        [
            ("\"round-robin\"".to_string(), 6 * 1008),
            ("\"cache-aware\"".to_string(), 9 * 1008)
        ]
    );
    assert_eq!(
        vllm_cached(&["--instances", "1,2", "--router", "round-robin"]),
        [("1".to_string(), 9 * 1008), ("2".to_string(), 6 * 1008)]
    );
    ldqa()
        .args([
            "sweep",
            "--instances",
            "1,2",
            "--router",
            "round-robin,kv-aware",
            "--trace",
        ])
        .arg(&trace)
        .assert()
        .code(2)
        .stderr(contains(
            "--instances and --router were given several values",
        ));
    ldqa()
        .args(["predict", "--instances", "1,2", "--trace"])
        .arg(&trace)
        .assert()
        .code(2)
        .stderr(contains("predict simulates one cluster"));
}
