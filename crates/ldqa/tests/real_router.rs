//! Behind the real router: vLLM's `vllm-router` (PyPI) in front of two `ldqa serve`
//! instances, and the simulated cluster (`predict --instances 2 --router …`) predicting the
//! same thing: every request's cached tokens, each instance's share (read from the
//! instances' own `/metrics`, by the test and by the client's `--metrics-url`, adding up to
//! what the client saw) and the mean TTFT and its gain (within 10 %). Three cases: a
//! trace replayed as token ids with `round_robin` and `cache_aware`; Long Doc QA's text
//! prompts (`ldqa run`), which `cache_aware` has every instance tokenize first, with the
//! same two; and `kv_aware` fed by the instances' KV events.
//!
//! Ignored by a plain `cargo test`: it needs the router, which `scripts/test` installs
//! (`scripts/vllm-router install`) and names in `LDQA_VLLM_ROUTER`. The cases run one at a
//! time: each times its servers on the machine's few cores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

const NEEDS: &str = "needs vllm-router: scripts/test installs it (scripts/vllm-router) and sets \
                     LDQA_VLLM_ROUTER";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The served instances' clock where TTFT is compared: 10× slower than the wall clock, so
/// that the HTTP hops between the test's processes (a few wall milliseconds a request,
/// not modelled) are small beside the simulated times (the clients report simulated
/// seconds).
const SLOWER: &str = "0.1";

/// Holds the machine for one case (a failed case does not stop the next).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running router, killed on drop (it renames its process, so only its PID stops it).
struct Router {
    child: Child,
    port: u16,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `vllm-router --policy POLICY [EXTRA…]` in front of `workers`, once it answers
/// `/v1/models`.
fn start_router(policy: &str, workers: &[String], extra: &[String]) -> Router {
    let exe = std::env::var("LDQA_VLLM_ROUTER").unwrap_or_else(|_| panic!("{NEEDS}"));
    let port = free_port();
    let child = Command::new(exe)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--prometheus-port", &free_port().to_string()])
        .args(["--policy", policy, "--worker-startup-check-interval", "1"])
        .arg("--worker-urls")
        .args(workers)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let router = Router { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answered = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && common::http("GET", &format!("127.0.0.1:{port}"), "/v1/models").0 == 200;
        if answered {
            return router;
        }
        assert!(
            Instant::now() < deadline,
            "vllm-router --policy {policy} did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (requests finished, prefix-cache hit tokens) of an instance so far.
fn served(port: u16) -> (u64, u64) {
    (
        common::counter(port, "vllm:request_success_total") as u64,
        common::counter(port, "vllm:prefix_cache_hits_total") as u64,
    )
}

fn per_request_cached(report: &Value) -> Vec<u64> {
    report["engines"][0]["cached_tokens_per_request"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().expect("every request succeeded"))
        .collect()
}

/// `--metrics-url` for each instance.
fn metrics_urls(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .flat_map(|p| {
            [
                "--metrics-url".to_string(),
                format!("http://127.0.0.1:{p}/metrics"),
            ]
        })
        .collect()
}

/// The instances' worker URLs, for `--worker-urls`.
fn workers(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect()
}

/// Empties every instance's prefix cache.
fn reset(ports: &[u16]) {
    for p in ports {
        let host = format!("127.0.0.1:{p}");
        assert_eq!(common::http("POST", &host, "/reset_prefix_cache").0, 200);
    }
}

/// Writes the Mooncake trace `name` in `dir`: per request (arrival ms, document, blocks of
/// 512 tokens, output tokens); document d's blocks are named d·10, d·10 + 1, ….
fn write_trace(dir: &Path, name: &str, requests: &[(u64, u64, u64, u64)]) -> PathBuf {
    let lines: String = requests
        .iter()
        .map(|&(at_ms, doc, blocks, out)| {
            let ids: Vec<String> = (0..blocks).map(|b| (doc * 10 + b).to_string()).collect();
            format!(
                "{{\"timestamp\": {at_ms}, \"input_length\": {}, \"output_length\": {out}, \"hash_ids\": [{}]}}\n",
                blocks * 512,
                ids.join(", ")
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines).unwrap();
    path
}

/// Asserts `real` is within 10 % of `predicted` (and prints both, for `--nocapture`).
fn within_ten_percent(what: &str, real: f64, predicted: f64) {
    let off = real / predicted - 1.0;
    eprintln!(
        "{what}: real {real:.4}, predicted {predicted:.4} ({:+.1} %)",
        off * 100.0
    );
    assert!(
        off.abs() <= 0.10,
        "{what}: real {real:.4}, predicted {predicted:.4} ({:+.1} %)",
        off * 100.0
    );
}

/// `ldqa replay` of `trace` through `router`, reading each instance's counters
/// (`--metrics-url`): `replay.json`.
fn replay_through(router: &Router, ports: &[u16], trace: &Path, dir: &Path) -> Value {
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["replay", "--speedup", "4", "--base-url"])
        .arg(format!("http://127.0.0.1:{}/v1", router.port))
        .args(metrics_urls(ports))
        .arg("--output-dir")
        .arg(dir)
        .arg(trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("they add up to what the client saw"),
        "{table}"
    );
    serde_json::from_slice(&std::fs::read(dir.join("replay.json")).unwrap()).unwrap()
}

/// `ldqa predict --instances 2 --router ROUTER` of `trace`: `trace_prediction.json`.
fn predict_cluster(router: &str, trace: &Path, dir: &Path) -> Value {
    let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
        .args(["predict", "--engine", "vllm", "--speedup", "4"])
        .args(["--instances", "2", "--router", router, "--trace"])
        .arg(trace)
        .arg("--output-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_log(&out));
    serde_json::from_slice(&std::fs::read(dir.join("trace_prediction.json")).unwrap()).unwrap()
}

/// (requests, `tokens`) of each entry of a JSON array.
fn pairs(entries: &Value, tokens: &str) -> Vec<(u64, u64)> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["requests"].as_u64().unwrap(), e[tokens].as_u64().unwrap()))
        .collect()
}

/// Three documents of 4,096 tokens as token ids (`ldqa replay`): each sent first while the
/// ones before are still being computed (5 ms apart after the replay's ×4), then asked
/// three times more in turn, one at a time (250 ms apart). Round robin sends each document to both
/// instances (half the requests hit). Cache-aware routing sends the first two to the idle
/// instances and the third to the first of two equally loaded, then every repeat where its
/// document is (9 hits); a router that ignored the prompts, sending each repeat to the
/// least loaded, would miss B's first repeat (8).
#[test]
#[ignore = "needs vllm-router: scripts/test installs it (scripts/vllm-router) and sets LDQA_VLLM_ROUTER"]
fn the_real_router_caches_what_the_simulated_cluster_predicts() {
    let _machine = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut requests = vec![(0, 0, 8, 2), (20, 1, 8, 2), (40, 2, 8, 2)];
    requests.extend((0..9).map(|i| (1000 * (i + 1), i % 3, 8, 2)));
    let trace = write_trace(dir.path(), "t.jsonl", &requests);
    let (_serve, ports) = common::start_serve_instances(2, &["--time-scale", SLOWER]);
    let hit = 4096 - 16;
    let mut mean_ttft = Vec::new();
    for (policy, simulated, hits) in [
        ("round_robin", "round-robin", 6),
        ("cache_aware", "cache-aware", 9),
    ] {
        reset(&ports);
        let before: Vec<(u64, u64)> = ports.iter().map(|&p| served(p)).collect();
        let router = start_router(policy, &workers(&ports), &[]);
        let replayed = replay_through(&router, &ports, &trace, dir.path());
        drop(router);
        let predicted = predict_cluster(simulated, &trace, dir.path());

        let real = per_request_cached(&replayed);
        assert_eq!(
            real,
            per_request_cached(&predicted),
            "{policy}: request by request"
        );
        assert_eq!(real.iter().sum::<u64>(), hits * hit, "{policy}: {real:?}");

        // Each instance's own counters: they add up to what the client saw through the
        // router, and split as the simulated instances do (which instance the router calls
        // first is its own business: compared as a set).
        let mut measured: Vec<(u64, u64)> = ports
            .iter()
            .zip(&before)
            .map(|(&p, b)| {
                let now = served(p);
                (now.0 - b.0, now.1 - b.1)
            })
            .collect();
        // `replay --metrics-url` read the same counters, instance by instance.
        let reported = pairs(&replayed["instance_counters"], "prefix_cache_hits_tokens");
        assert_eq!(
            reported, measured,
            "{policy}: replay's per-instance counters"
        );
        let total = measured.iter().fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1));
        assert_eq!(
            total,
            (12, real.iter().sum::<u64>()),
            "{policy}: {measured:?}"
        );
        let mut simulated_split = pairs(&predicted["engines"][0]["instances"], "cached_tokens");
        measured.sort_unstable();
        simulated_split.sort_unstable();
        assert_eq!(measured, simulated_split, "{policy}: per instance");

        let ttft = |report: &Value| report["engines"][0]["mean_ttft_s"].as_f64().unwrap();
        within_ten_percent(
            &format!("{policy}: mean TTFT (s)"),
            ttft(&replayed),
            ttft(&predicted),
        );
        mean_ttft.push((ttft(&replayed), ttft(&predicted)));
    }
    let gain = |k: fn(&(f64, f64)) -> f64| k(&mean_ttft[0]) / k(&mean_ttft[1]);
    within_ten_percent(
        "cache-aware's TTFT gain over round robin",
        gain(|t| t.0),
        gain(|t| t.1),
    );
}

/// Two free ports in a row (instance k of `serve --instances` publishes on port + k).
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        let both = p < u16::MAX
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok();
        if both {
            return p;
        }
    }
}

/// `kv_aware` fed by `ldqa serve`'s KV events (`--kv-events-config`, vLLM's ZMQ/msgpack
/// format; one `serve --instances 2` process, instance k publishing on the port + k):
/// document A, then B while A is still in flight, then each again twice, one at a time. B
/// goes to the idle instance (the busy one's cost counts A's prefill), and every repeat
/// goes where its document is cached, which the router learns only from the events
/// (without them a repeat of B would tie and go to the first instance, and miss). The
/// simulated cluster with `--router kv-aware` predicts every request's cached tokens.
#[test]
#[ignore = "needs vllm-router: scripts/test installs it (scripts/vllm-router) and sets LDQA_VLLM_ROUTER"]
fn kv_aware_routes_on_the_served_engines_kv_events() {
    let _machine = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // (arrival ms before the replay's ×4, document, blocks, output tokens): the first A
    // answers 40 tokens, in flight for about 250 ms, so B (5 ms later after the speed-up)
    // finds it busy however late the client sends it, and it has ended by the repeats
    // (500 ms on).
    let trace = write_trace(
        dir.path(),
        "two.jsonl",
        &[
            (0, 1, 2, 40),
            (20, 2, 2, 2),
            (2000, 1, 2, 2),
            (2500, 2, 2, 2),
            (3000, 1, 2, 2),
            (3500, 2, 2, 2),
        ],
    );
    let events = free_port_pair();
    let config = format!(
        r#"{{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://127.0.0.1:{events}", "topic": ""}}"#
    );
    let (_serve, ports) = common::start_serve_instances(2, &["--kv-events-config", &config]);
    let workers = workers(&ports);
    let mut sources = Vec::new();
    for (k, worker) in workers.iter().enumerate() {
        sources.push("--kv-event-source".to_string());
        sources.push(format!("{worker}=tcp://127.0.0.1:{}", events + k as u16));
    }
    sources.extend(["--kv-event-block-size", "16", "--kv-event-model", "m"].map(String::from));
    let router = start_router("kv_aware", &workers, &sources);
    // Its subscribers connect as it starts; give them a moment to be told of every block.
    std::thread::sleep(Duration::from_secs(1));
    let replayed = replay_through(&router, &ports, &trace, dir.path());
    drop(router);
    let predicted = predict_cluster("kv-aware", &trace, dir.path());
    let real = per_request_cached(&replayed);
    assert_eq!(real, [0, 0, 1008, 1008, 1008, 1008]);
    assert_eq!(real, per_request_cached(&predicted));
    let measured = pairs(&replayed["instance_counters"], "prefix_cache_hits_tokens");
    assert_eq!(measured, [(3, 2016), (3, 2016)]);
    assert_eq!(
        pairs(&predicted["engines"][0]["instances"], "cached_tokens"),
        measured
    );
}

/// Long Doc QA's flags for both the run and its prediction: three documents of 4,000
/// tokens, then each asked twice; requests 100 ms apart (evenly: burstiness 1000), long
/// answers, so each document is sent while the one before is still answering.
const LONG_DOC_QA: &[&str] = &[
    "--num-documents",
    "3",
    "--document-length",
    "4000",
    "--output-len",
    "64",
    "--repeat-count",
    "2",
    "--max-inflight-requests",
    "1",
    "--request-rate",
    "10",
    "--burstiness",
    "1000",
];

/// Every reported request's (round, prompt id, cached tokens, TTFT in s) from
/// `records.jsonl` (the pre-warmup's too are in a run's, not in a prediction's).
fn run_records(dir: &Path) -> Vec<(String, u64, u64, f64)> {
    let text = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    let mut out: Vec<(String, u64, u64, f64)> = text
        .lines()
        .filter(|l| !l.contains(r#""round":"pre_warmup""#))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let r = &v["record"];
            let ns = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {l}"));
            (
                v["round"].as_str().unwrap().to_owned(),
                ns("prompt_id"),
                r["usage"]["cached_tokens"].as_u64().unwrap(),
                (ns("first_token_ns") - ns("sent_ns")) as f64 / 1e9,
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

/// The mean TTFT of the query round.
fn query_mean_ttft(records: &[(String, u64, u64, f64)]) -> f64 {
    let query: Vec<f64> = records
        .iter()
        .filter(|r| r.0 == "query")
        .map(|r| r.3)
        .collect();
    query.iter().sum::<f64>() / query.len() as f64
}

/// Per round, each instance's (requests, prefix-cache hit tokens) from the instances'
/// counters `ldqa run --metrics-url` read around it (`--save-result`), as a sorted set.
fn served_split(result: &Value, round: &str) -> Vec<(u64, u64)> {
    let round = result["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == round)
        .unwrap_or_else(|| panic!("no {round} round"));
    let sum = |deltas: &Value, name: &str| -> u64 {
        deltas
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(name))
            .map(|(_, v)| v.as_f64().unwrap() as u64)
            .sum()
    };
    let mut split: Vec<(u64, u64)> = round["evidence"]["instances"]
        .as_array()
        .expect("each instance's counters")
        .iter()
        .map(|e| {
            (
                sum(&e["deltas"], "vllm:request_success"),
                sum(&e["deltas"], "vllm:prefix_cache_hits"),
            )
        })
        .collect();
    split.sort_unstable();
    split
}

/// Per round, each simulated instance's (requests, cached tokens), as a sorted set, from
/// `predict`'s "Per instance" table (`  #k  requests failed │ … │ … │ cached …`).
fn predicted_split(stdout: &str, round: &str) -> Vec<(u64, u64)> {
    let section = stdout
        .split("Per instance")
        .nth(1)
        .expect("a per-instance section");
    let table = section
        .split(&format!("{round} round\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {round} round in {section}"));
    let mut split: Vec<(u64, u64)> = table
        .lines()
        .skip(2) // the header and `all`
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('│').collect();
            let requests = cols[0].split_whitespace().nth(1).unwrap().parse().unwrap();
            let cached = cols[3].split_whitespace().next().unwrap().parse().unwrap();
            (requests, cached)
        })
        .collect();
    split.sort_unstable();
    split
}

/// Long Doc QA through the real router as text (`ldqa run`'s chat prompts), against
/// `predict`'s Long Doc QA on the simulated cluster. For a text prompt `vllm-router`'s
/// cache-aware policy first asks every instance for its tokens (`/tokenize`), which takes
/// each instance's front end as a request does; the simulated router does the same. The
/// instances run slower than the wall clock ([`SLOWER`]). Each request's cached tokens are
/// predicted exactly, the instances' split (from their counters, read by `run
/// --metrics-url`) as a set, and the query round's mean TTFT, and the gain between the
/// two policies, within 10 %.
#[test]
#[ignore = "needs vllm-router: scripts/test installs it (scripts/vllm-router) and sets LDQA_VLLM_ROUTER"]
fn text_prompts_through_the_real_router_as_the_simulated_cluster_predicts() {
    let _machine = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (_serve, ports) = common::start_serve_instances(2, &["--time-scale", SLOWER]);
    let mut mean_ttft = Vec::new();
    for (policy, simulated) in [
        ("round_robin", "round-robin"),
        ("cache_aware", "cache-aware"),
    ] {
        reset(&ports);
        let router = start_router(policy, &workers(&ports), &[]);
        let real_dir = dir.path().join(policy);
        let out = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
            .args(["run", "--base-url"])
            .arg(format!("http://127.0.0.1:{}/v1", router.port))
            .args(LONG_DOC_QA)
            .args(metrics_urls(&ports))
            .arg("--output-dir")
            .arg(&real_dir)
            .arg("--save-result")
            .arg(real_dir.join("result.json"))
            .output()
            .unwrap();
        drop(router);
        assert!(out.status.success(), "{}", common::output_log(&out));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.matches("they add up to what the client saw").count() == 2,
            "{policy}: both rounds' counters add up\n{table}"
        );
        let sim_dir = dir.path().join(simulated);
        let predicted = Command::new(assert_cmd::cargo::cargo_bin!("ldqa"))
            .args([
                "predict",
                "--engine",
                "vllm",
                "--instances",
                "2",
                "--router",
            ])
            .arg(simulated)
            .args(LONG_DOC_QA)
            .arg("--output-dir")
            .arg(&sim_dir)
            .output()
            .unwrap();
        assert!(
            predicted.status.success(),
            "{}",
            common::output_log(&predicted)
        );

        let (real, sim) = (run_records(&real_dir), run_records(&sim_dir));
        let cached = |r: &[(String, u64, u64, f64)]| -> Vec<(String, u64, u64)> {
            r.iter().map(|x| (x.0.clone(), x.1, x.2)).collect()
        };
        assert_eq!(cached(&real), cached(&sim), "{policy}: request by request");
        let result: Value =
            serde_json::from_slice(&std::fs::read(real_dir.join("result.json")).unwrap()).unwrap();
        let stdout = String::from_utf8_lossy(&predicted.stdout);
        for round in ["warmup", "query"] {
            assert_eq!(
                served_split(&result, round),
                predicted_split(&stdout, round),
                "{policy}: {round} round per instance"
            );
        }
        let ttft = (query_mean_ttft(&real), query_mean_ttft(&sim));
        within_ten_percent(
            &format!("{policy}: query round's mean TTFT (s)"),
            ttft.0,
            ttft.1,
        );
        mean_ttft.push(ttft);
    }
    let gain = |k: fn(&(f64, f64)) -> f64| k(&mean_ttft[0]) / k(&mean_ttft[1]);
    within_ten_percent(
        "cache-aware's TTFT gain over round robin (text prompts)",
        gain(|t| t.0),
        gain(|t| t.1),
    );
}
