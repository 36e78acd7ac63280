//! `ldqa sweep`: the whole curve in the simulator, its files, its verdicts against the
//! recommender's regimes, and its errors.

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

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The recommender's three regimes for a deployment, as `(kind, documents)`.
fn regimes(deployment: &[&str]) -> Vec<(String, u64)> {
    let out = ldqa()
        .args(["recommend", "--cpu-ram-gib", "4000", "--json"])
        .args(deployment)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    json(&out.stdout)["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let kind = r["kind"].as_str().unwrap().to_string();
            (kind, r["num_documents"].as_u64().unwrap())
        })
        .collect()
}

/// The sweep's verdicts agree with the recommender's regimes for several models and GPUs:
/// no gain where the working set fits the GPU, a gain where it fits the CPU tier only,
/// none past both.
#[test]
fn verdicts_agree_with_the_recommenders_regimes() {
    let deployments: [&[&str]; 4] = [
        &["--gpu", "h100-80gb"],
        &[
            "--model",
            "meta-llama/Llama-3.1-70B-Instruct",
            "--gpu",
            "h100-80gb",
        ],
        &["--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "a100-80gb"],
        &["--gpu", "l40s"],
    ];
    for deployment in deployments {
        let regimes = regimes(deployment);
        let counts: Vec<String> = regimes.iter().map(|(_, n)| n.to_string()).collect();
        let dir = tempfile::tempdir().unwrap();
        let out = ldqa()
            .args([
                "sweep",
                "--sim",
                "--json",
                "--num-documents",
                &counts.join(","),
            ])
            .args(deployment)
            .arg("--output-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{deployment:?}: {out:?}");
        let report = json(&out.stdout);
        for (kind, n) in &regimes {
            let point = report["points"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["num_documents"] == *n)
                .unwrap();
            let gain = point["vllm"]["query"]["mean_ttft_s"].as_f64().unwrap()
                / point["lmcache"]["query"]["mean_ttft_s"].as_f64().unwrap();
            let wins = gain >= 1.1;
            assert_eq!(
                wins,
                kind == "fits_lmcache",
                "{deployment:?}: {kind} at {n} documents, LMCache's query TTFT gain {gain:.2}"
            );
        }
    }
}

/// With no flag but --sim: the seed's model and GPU, the default points around both
/// edges, the table, the verdict in words, and both files.
#[test]
fn the_seed_sweep_draws_the_cliff_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args(["sweep", "--sim", "--output-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("← GPU cache full"), "{table}");
    assert!(table.contains("← CPU tier full"), "{table}");
    assert!(
        table.contains("LMCache wins from 42 to 53 documents"),
        "{table}"
    );
    let report = json(&std::fs::read(dir.path().join("sweep.json")).unwrap());
    assert_eq!(report["schema"], "ldqa-sweep");
    let points = report["points"].as_array().unwrap();
    assert!(points.len() >= 12, "{}", points.len());
    assert_eq!(report["crossovers"][0]["wins"], serde_json::json!([42, 53]));
    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), points.len() + 1);
    assert!(csv.starts_with(
        "num_documents,working_set_tokens,gpu_kv_tokens,cpu_tier_tokens,vllm_warmup_mean_ttft_s"
    ));
    for name in ["sweep.png", "sweep-round-time.png"] {
        let png = std::fs::read(dir.path().join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
    let html = std::fs::read_to_string(dir.path().join("sweep.html")).unwrap();
    assert!(html.contains("LMCache wins from 42 to 53 documents"));
    assert!(
        html.contains("<svg class=\"plot\""),
        "the plot is on the page"
    );
}

/// A second axis makes a grid: one curve per CPU tier size, each with its own default
/// points around its own edges, and the CPU tier's cliff moves with its size.
#[test]
fn a_grid_of_cpu_tier_sizes_moves_the_cpu_cliff() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args(["sweep", "--sim", "--json", "--lmcache-cpu-gib", "66,120"])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = json(&out.stdout);
    assert_eq!(report["axis"]["flag"], "--num-documents");
    assert_eq!(report["series_axis"]["flag"], "--lmcache-cpu-gib");
    let curves = report["crossovers"].as_array().unwrap();
    assert_eq!(curves.len(), 2);
    assert_eq!(curves[0]["series"], 66.0);
    assert_eq!(curves[0]["wins"], serde_json::json!([42, 53]));
    assert_eq!(curves[1]["series"], 120.0);
    assert_eq!(curves[1]["wins"], serde_json::json!([42, 97]));
    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    assert!(csv.starts_with("lmcache_cpu_gib,num_documents,"), "{csv}");
    let table = ldqa()
        .args(["sweep", "--sim", "--lmcache-cpu-gib", "66,120"])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("── --lmcache-cpu-gib 120 ──"), "{table}");
}

/// Another axis alone is the x axis, and the verdict names it by its flag.
#[test]
fn concurrency_alone_is_swept_at_a_fixed_working_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args(["sweep", "--json", "--num-documents", "46"])
        .args(["--max-inflight-requests", "1,4"])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = json(&out.stdout);
    assert_eq!(report["axis"]["flag"], "--max-inflight-requests");
    let xs: Vec<&serde_json::Value> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["x"])
        .collect();
    assert_eq!(xs, [1, 4]);
    let verdict = report["crossovers"][0]["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("LMCache wins from --max-inflight-requests 1 to 4"),
        "{verdict}"
    );
    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    assert!(
        csv.starts_with("max_inflight_requests,num_documents,"),
        "{csv}"
    );
}

/// `--resume` keeps the points of an earlier run of the same sweep (here marked, to tell
/// them from recomputed ones) and runs only the others; another sweep's file is refused.
#[test]
fn resume_keeps_what_an_earlier_run_of_the_same_sweep_did() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = |counts: &str, extra: &[&str]| {
        ldqa()
            .args(["sweep", "--num-documents", counts, "--resume"])
            .args(extra)
            .arg("--output-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let first = sweep("20,44", &[]);
    assert!(first.status.success(), "{first:?}");
    let path = dir.path().join("sweep.json");
    let mut report = json(&std::fs::read(&path).unwrap());
    report["points"][0]["vllm"]["query"]["mean_ttft_s"] = serde_json::json!(123.0);
    std::fs::write(&path, serde_json::to_vec(&report).unwrap()).unwrap();
    let second = sweep("20,44,60", &[]);
    assert!(second.status.success(), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("(2 kept from sweep.json)"),
        "{second:?}"
    );
    let report = json(&std::fs::read(&path).unwrap());
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[0]["vllm"]["query"]["mean_ttft_s"], 123.0);
    assert_eq!(points[2]["num_documents"], 60);
    sweep("20", &["--output-len", "50"])
        .status
        .code()
        .filter(|&c| c == 2)
        .expect("another workload's sweep.json is refused");
    let refused = sweep("20", &["--output-len", "50"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is another sweep (its workload differ"),
        "{refused:?}"
    );
}

/// `--start sim` starts an `ldqa serve` pair per deployment (a grid over the CPU tier's size
/// needs a pair per size), one server at a time, and measures them over HTTP: every point's
/// cached and computed prompt tokens, per arm, are what the simulator predicts (LMCache's
/// server does not say from which tier: its total is compared).
#[test]
fn started_servers_cache_what_the_simulator_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--num-documents",
        "2,6",
        "--lmcache-cpu-gib",
        "0.25,1",
        "--num-gpu-blocks",
        "100",
        "--document-length",
        "500",
        "--output-len",
        "2",
        "--max-inflight-requests",
        "1",
        "--json",
    ];
    let sweep = |target: &[&str], out: &str| {
        let result = ldqa()
            .arg("sweep")
            .args(target)
            .args(flags)
            .arg("--output-dir")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(result.status.success(), "{result:?}");
        json(&result.stdout)
    };
    let simulated = sweep(&["--sim"], "sim");
    let started = sweep(&["--start", "sim", "--time-scale", "10"], "started");
    let tokens = |report: &serde_json::Value| -> Vec<[u64; 3]> {
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        report["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let v = &p["vllm"]["query"]["prefix"];
                let l = &p["lmcache"]["query"];
                let lmcache_cached = n(&l["prefix"]["gpu_hit_tokens"])
                    + n(&l["prefix"]["cpu_hit_tokens"])
                    + n(&l["cached_tier_unknown_tokens"]);
                [
                    n(&v["gpu_hit_tokens"]),
                    lmcache_cached,
                    n(&l["prefix"]["computed_tokens"]),
                ]
            })
            .collect()
    };
    assert_eq!(tokens(&started), tokens(&simulated));
    // The grid is exercised: at 6 documents only the 1 GiB tier holds the documents.
    let cached = tokens(&simulated);
    assert!(cached[3][1] > 10 * cached[1][1], "{cached:?}");
    for log in ["1-vllm.log", "1-lmcache.log", "2-vllm.log", "2-lmcache.log"] {
        let path = dir.path().join("started/servers").join(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("listening on"), "{log}: {text}");
    }
}

/// `--vllm-cmd` starts the user's own server, and `--restart-each-point` a fresh one for
/// every point (for servers that cannot empty their cache): its cached tokens are still
/// the simulator's.
#[test]
fn own_commands_restarted_at_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let exe = assert_cmd::cargo::cargo_bin!("ldqa").display().to_string();
    let own = format!("{exe} serve --port 0 --engine vllm --num-gpu-blocks 100 --time-scale 10");
    let flags = [
        "--num-documents",
        "2,6",
        "--num-gpu-blocks",
        "100",
        "--document-length",
        "500",
        "--output-len",
        "2",
        "--max-inflight-requests",
        "1",
        "--json",
    ];
    let sweep = |target: &[&str], out: &str| {
        let result = ldqa()
            .arg("sweep")
            .args(target)
            .args(flags)
            .arg("--output-dir")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(result.status.success(), "{result:?}");
        json(&result.stdout)
    };
    let simulated = sweep(&["--sim"], "sim");
    let started = sweep(
        &["--start", "sim", "--restart-each-point", "--vllm-cmd", &own],
        "own",
    );
    let vllm_hits = |report: &serde_json::Value| -> Vec<serde_json::Value> {
        report["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["vllm"]["query"]["prefix"]["gpu_hit_tokens"].clone())
            .collect()
    };
    assert_eq!(vllm_hits(&started), vllm_hits(&simulated));
    let logs = dir.path().join("own/servers");
    for log in ["1-vllm.log", "2-vllm.log", "1-lmcache.log", "2-lmcache.log"] {
        assert!(logs.join(log).exists(), "{log}");
    }
    let own_log = std::fs::read_to_string(logs.join("2-vllm.log")).unwrap();
    assert!(own_log.contains("GPU KV 1600 tokens"), "{own_log}");
}

/// On a running server, Ctrl-C stops the sweep after the point running; every finished
/// point is in sweep.json, the exit is 130, and `--resume` measures only the rest.
#[cfg(unix)]
#[test]
#[allow(unsafe_code, reason = "kill(2) sends SIGINT to our child")]
fn ctrl_c_on_a_server_sweep_keeps_the_finished_points() {
    use std::io::{BufRead, BufReader};
    let server = common::start_serve(&[]);
    let url = format!("http://127.0.0.1:{}/v1", server.port);
    let dir = tempfile::tempdir().unwrap();
    let command = || {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ldqa"));
        c.args([
            "sweep",
            "--vllm-url",
            &url,
            "--num-documents",
            "3,4,5,6,7,8",
        ])
        .args(["--document-length", "300", "--output-len", "2"])
        .args(["--max-inflight-requests", "1", "--output-dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1");
        c
    };
    let mut child = command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("sweep: 3 documents measured") {
            // SAFETY: sending SIGINT to our own child process.
            let pid = i32::try_from(child.id()).unwrap();
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    let report = json(&std::fs::read(dir.path().join("sweep.json")).unwrap());
    let done = report["points"].as_array().unwrap().len();
    assert!((1..6).contains(&done), "{done} points kept\n{said}");
    assert!(said.contains("run again with --resume"), "{said}");
    let resumed = command().arg("--resume").output().unwrap();
    assert!(resumed.status.success(), "{resumed:?}");
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        said.contains(&format!("({done} kept from sweep.json)")),
        "{said}"
    );
    let report = json(&std::fs::read(dir.path().join("sweep.json")).unwrap());
    assert_eq!(report["points"].as_array().unwrap().len(), 6);
}

#[test]
fn bad_ranges_and_flags_exit_2_naming_them() {
    for (args, says) in [
        (vec!["--num-documents", "0,4"], "--num-documents"),
        (
            vec!["--num-documents", "10:5:1"],
            "START must not exceed STOP",
        ),
        (
            vec!["--max-inflight-requests", "0"],
            "--max-inflight-requests",
        ),
        (vec!["--gpu", "nope"], "--gpu"),
        (vec!["--lmcache-cpu-gib", "20,0"], "--lmcache-cpu-gib"),
        (
            vec!["--gpu", "h200,l40s", "--document-length", "1000,2000"],
            "a sweep runs along one axis, or two as a grid",
        ),
        (
            vec!["--vllm-url", "http://127.0.0.1:9/v1", "--gpu", "h200,l40s"],
            "--gpu changes the deployment",
        ),
        (
            vec!["--time-scale", "4"],
            "--time-scale is for servers the sweep starts",
        ),
        (
            vec!["--start", "vllm", "--time-scale", "4"],
            "--time-scale is for servers the sweep starts (--start sim)",
        ),
        (
            vec![
                "--vllm-url",
                "http://127.0.0.1:9/v1",
                "--vllm-url",
                "http://127.0.0.1:10/v1",
                "--vllm-metrics-url",
                "http://127.0.0.1:9/metrics",
            ],
            "--vllm-metrics-url is given for 1 of 2 servers",
        ),
        (
            vec!["--vllm-metrics-url", "http://127.0.0.1:9/metrics"],
            "--vllm-url",
        ),
        (
            vec!["--vllm-url", "http://127.0.0.1:9/v1", "--instances", "2"],
            "--instances and --remote-gib shape the simulated cluster",
        ),
        (
            vec![
                "--start",
                "sim",
                "--router",
                "round-robin,cache-aware",
                "--instances",
                "1",
            ],
            "--router shapes the simulated cluster",
        ),
        (vec!["--instances", "0,2"], "--instances must be 1 to 1024"),
        (vec!["--remote-gib", "64,-1"], "--remote-gib must be"),
        (
            vec!["--instances", "1,2", "--router", "round-robin,cache-aware"],
            "a sweep runs along one axis, or two as a grid",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        ldqa()
            .arg("sweep")
            .args(&args)
            .arg("--output-dir")
            .arg(dir.path())
            .assert()
            .code(2)
            .stderr(contains(says));
        assert!(!dir.path().join("sweep.json").exists(), "{args:?}");
    }
}

/// `--vllm-url` twice: each round is spread over both servers (request i to server i mod
/// 2), so in tile order each holds half the documents and the cliff moves out: 8 documents
/// of 300 tokens overflow one 1,600-token cache (only the chat template's first block hits)
/// but fit two. With `--vllm-metrics-url` once per server, each point keeps each server's
/// counters per round: 4 requests each, their hits adding up to what the client saw.
#[test]
fn a_sweep_on_two_servers_has_twice_the_cache() {
    let serve = || {
        common::start_serve(&[
            "--engine",
            "vllm",
            "--num-gpu-blocks",
            "100",
            "--time-scale",
            "10",
        ])
    };
    let servers = [serve(), serve()];
    let url = |s: &common::Server| format!("http://127.0.0.1:{}/v1", s.port);
    let dir = tempfile::tempdir().unwrap();
    let sweep = |urls: &[&common::Server], name: &str| -> serde_json::Value {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ldqa"));
        c.arg("sweep");
        for s in urls {
            c.args(["--vllm-url", &url(s)]);
        }
        if urls.len() > 1 {
            for s in urls {
                c.args([
                    "--vllm-metrics-url",
                    &format!("http://127.0.0.1:{}/metrics", s.port),
                ]);
            }
        }
        let out = c
            .args(["--num-documents", "8", "--document-length", "300"])
            .args(["--output-len", "2", "--repeat-mode", "tile", "--json"])
            .args(["--max-inflight-requests", "1", "--output-dir"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::output_log(&out));
        json(&out.stdout)
    };
    let hit = |report: &serde_json::Value| {
        report["points"][0]["vllm"]["query"]["prefix"]["gpu_hit_tokens"]
            .as_u64()
            .unwrap_or_else(|| panic!("no cached tokens in {report}"))
    };
    assert_eq!(hit(&sweep(&[&servers[0]], "one")), 8 * 16);
    let two = sweep(&[&servers[0], &servers[1]], "two");
    assert!(hit(&two) >= 8 * 256);
    let query: Vec<&serde_json::Value> = two["points"][0]["instance_counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no instance counters in {two}"))
        .iter()
        .filter(|c| c["arm"] == "vllm" && c["round"] == "query")
        .collect();
    let each = |k: &str| -> Vec<u64> { query.iter().map(|c| c[k].as_u64().unwrap()).collect() };
    assert_eq!(each("requests"), [4, 4]);
    assert_eq!(
        each("prefix_cache_hits_tokens").iter().sum::<u64>(),
        hit(&two)
    );
    // The client's own view: each server's share of the query round, by its URL.
    let shares: Vec<&serde_json::Value> = two["points"][0]["instance_shares"]
        .as_array()
        .unwrap_or_else(|| panic!("no instance shares in {two}"))
        .iter()
        .filter(|c| c["arm"] == "vllm" && c["round"] == "query")
        .collect();
    let names: Vec<&str> = shares
        .iter()
        .map(|c| c["instance"].as_str().unwrap())
        .collect();
    assert_eq!(names, [url(&servers[0]), url(&servers[1])]);
    assert!(shares.iter().all(|c| c["requests"] == 4), "{shares:?}");
    let cached: u64 = shares
        .iter()
        .map(|c| c["cached_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(cached, hit(&two));
}

/// `sweep --json` of 8 documents of about 335 tokens on 1,600-token GPU caches, the
/// questions in random order, with `flags`.
fn small_cluster_sweep(flags: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args(["sweep", "--num-documents", "8", "--document-length", "300"])
        .args(["--num-gpu-blocks", "100", "--output-len", "2"])
        .args(["--max-inflight-requests", "4", "--repeat-mode", "random"])
        .args(flags)
        .arg("--json")
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    json(&out.stdout)
}

/// The query round's prompt tokens of `arm` at `point` from source `k`.
fn query_tokens(point: &serde_json::Value, arm: &str, k: &str) -> u64 {
    point[arm]["query"]["prefix"][k].as_u64().unwrap()
}

/// Long Doc QA on a simulated cluster, along `--instances` × `--router`: 8 documents of
/// about 335 tokens overflow one instance's 1,600-token GPU cache but fit two. In random
/// order, round robin sends a question to the instance that cached its document about half
/// the time; cache-aware nearly always. Each instance's share of a round adds up to the
/// round.
#[test]
fn a_cluster_sweep_spreads_the_documents_over_the_instances() {
    let grid = small_cluster_sweep(&["--instances", "1,2", "--router", "round-robin,cache-aware"]);
    assert_eq!(grid["axis"]["flag"], "--instances");
    assert_eq!(grid["series_axis"]["flag"], "--router");
    let point = |instances: u64, router: &str| -> &serde_json::Value {
        grid["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["x"] == instances && p["series"] == router)
            .unwrap_or_else(|| panic!("no point {instances} × {router} in {grid}"))
    };
    let vllm_hits = |p| query_tokens(p, "vllm", "gpu_hit_tokens");
    let prompt = |p| vllm_hits(p) + query_tokens(p, "vllm", "computed_tokens");
    let one = point(1, "round-robin");
    assert_eq!(vllm_hits(one), vllm_hits(point(1, "cache-aware")));
    assert!(
        vllm_hits(one) * 2 < prompt(one),
        "one instance overflows: {one}"
    );
    let (rr, ca) = (point(2, "round-robin"), point(2, "cache-aware"));
    assert!(vllm_hits(rr) > vllm_hits(one), "{rr}");
    assert!(vllm_hits(ca) > vllm_hits(rr), "{ca} against {rr}");
    assert!(vllm_hits(ca) * 10 >= prompt(ca) * 9, "{ca}");
    assert_eq!(one.get("instance_shares"), None);
    for p in [rr, ca] {
        let shares = p["instance_shares"].as_array().unwrap();
        assert_eq!(
            shares.len(),
            2 * 2 * 2,
            "two arms, two rounds, two instances"
        );
        for arm in ["vllm", "lmcache"] {
            for round in ["warmup", "query"] {
                let of: Vec<&serde_json::Value> = shares
                    .iter()
                    .filter(|s| s["arm"] == arm && s["round"] == round)
                    .collect();
                let sum = |k: &str| of.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
                assert_eq!(sum("requests"), 8, "{arm} {round}: {of:?}");
                let r = &p[arm][round]["prefix"];
                let cached =
                    r["gpu_hit_tokens"].as_u64().unwrap() + r["cpu_hit_tokens"].as_u64().unwrap();
                assert_eq!(sum("cached_tokens"), cached, "{arm} {round}");
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let table = ldqa()
        .args([
            "sweep",
            "--num-documents",
            "4,8",
            "--document-length",
            "300",
        ])
        .args(["--num-gpu-blocks", "100", "--output-len", "2"])
        .args(["--instances", "2", "--router", "round-robin"])
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("Each of 2 instances: GPU prefix cache: 1600 tokens"),
        "{table}"
    );
    assert!(table.contains("busiest 1.00×"), "{table}");
}

/// Along `--remote-gib`, a shared remote tier gives LMCache the hits its small CPU tiers
/// lack; along `--remote-gbps`, the same hits arrive sooner.
#[test]
fn a_cluster_sweep_along_the_shared_tier() {
    let remote = small_cluster_sweep(&[
        "--instances",
        "2",
        "--lmcache-cpu-gib",
        "0.1",
        "--remote-gib",
        "0,1",
    ]);
    assert_eq!(remote["axis"]["flag"], "--remote-gib");
    let lmcache_cached = |k: usize| {
        let p = &remote["points"][k];
        query_tokens(p, "lmcache", "gpu_hit_tokens") + query_tokens(p, "lmcache", "cpu_hit_tokens")
    };
    assert!(
        lmcache_cached(1) > lmcache_cached(0),
        "the shared tier adds hits: {remote}"
    );
    // Along its link: the same hits, loaded sooner over a faster one.
    let link = small_cluster_sweep(&[
        "--instances",
        "2",
        "--lmcache-cpu-gib",
        "0.1",
        "--remote-gib",
        "1",
        "--remote-gbps",
        "1,1000",
    ]);
    assert_eq!(link["axis"]["flag"], "--remote-gbps");
    let [slow, fast] = [0, 1].map(|k| &link["points"][k]["lmcache"]["query"]);
    assert_eq!(slow["prefix"], fast["prefix"], "{link}");
    assert!(
        fast["mean_ttft_s"].as_f64() < slow["mean_ttft_s"].as_f64(),
        "{link}"
    );
}
