//! `ldqa predict` end to end: the seed's example #1 against the published numbers, byte-for-byte
//! determinism, flag errors.

use assert_cmd::Command;
use predicates::str::contains;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test")
        .env("NO_COLOR", "1");
    c
}

const SEED_8B: &[&str] = &[
    "predict",
    "--model",
    "meta-llama/Llama-3.1-8B-Instruct",
    "--gpu",
    "h100-80gb",
    "--num-documents",
    "51",
    "--document-length",
    "10000",
    "--output-len",
    "100",
    "--repeat-count",
    "1",
    "--repeat-mode",
    "tile",
    "--max-inflight-requests",
    "4",
];

/// The published numbers of seed run 1 (`shared/calibration/seed-results.json`), in seconds:
/// engine → [warmup TTFT, warmup round time, query TTFT, query round time].
const PUBLISHED_8B: [(&str, [f64; 4]); 2] = [
    ("vllm", [0.751, 24.915, 0.753, 24.628]),
    ("lmcache", [0.832, 26.027, 0.214, 14.564]),
];

/// The four upstream result lines of each engine block, in print order.
fn parse_blocks(stdout: &str) -> Vec<[f64; 4]> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in stdout.lines() {
        for key in [
            "Warmup round mean TTFT: ",
            "Warmup round time: ",
            "Query round mean TTFT: ",
            "Query round time: ",
        ] {
            if let Some(v) = line.strip_prefix(key) {
                cur.push(v.trim_end_matches('s').parse::<f64>().unwrap());
            }
        }
        if cur.len() == 4 {
            out.push([cur[0], cur[1], cur[2], cur[3]]);
            cur.clear();
        }
    }
    out
}

#[test]
fn seed_example_one_within_ten_percent_for_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args(SEED_8B)
        .args(["--engine", "both", "--output-dir"])
        .arg(dir.path())
        .assert()
        .success()
        .stderr(contains(
            "step costs: aiconfigurator kernel tables for h100-80gb (commit 095f58a",
        ))
        .stderr(contains("GPU KV"))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let blocks = parse_blocks(&text);
    assert_eq!(blocks.len(), 2, "{text}");
    let mut failures = Vec::new();
    for ((engine, want), got) in PUBLISHED_8B.iter().zip(&blocks) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (g - w) / w;
            if err.abs() > 0.10 {
                failures.push(format!("{engine} #{i}: predicted {g}, published {w}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}\n{text}", failures.join("\n"));
    assert!(text.contains("LMCache speed-up over vLLM"), "{text}");
    // Why: LMCache's query round is served from the CPU tier, vLLM's is recomputed.
    assert!(text.contains("CPU cache (LMCache)"), "{text}");
    for engine in ["vllm", "lmcache"] {
        for f in ["warmup_round.csv", "query_round.csv", "records.jsonl"] {
            assert!(dir.path().join(engine).join(f).is_file(), "{engine}/{f}");
        }
    }
}

#[test]
fn same_flags_same_csv_bytes() {
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        ldqa()
            .args([
                "predict",
                "--num-documents",
                "12",
                "--document-length",
                "3000",
                "--hit-miss-ratio",
                "2:1",
                "--engine",
                "lmcache",
                "--output-dir",
            ])
            .arg(dir.path())
            .assert()
            .success();
        let q = std::fs::read(dir.path().join("query_round.csv")).unwrap();
        let w = std::fs::read(dir.path().join("warmup_round.csv")).unwrap();
        (w, q)
    };
    let a = run();
    assert!(!a.1.is_empty());
    assert_eq!(a, run());
}

#[test]
fn save_result_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("r.json");
    // vLLM alone gains nothing in the seed scenario (51 documents overflow its GPU cache).
    ldqa()
        .args(SEED_8B)
        .args([
            "--engine",
            "vllm",
            "--expected-ttft-gain",
            "2",
            "--output-dir",
        ])
        .arg(dir.path())
        .arg("--save-result")
        .arg(&save)
        .assert()
        .code(1);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&save).unwrap()).unwrap();
    assert_eq!(v["config"]["command"], "predict");
    assert_eq!(v["config"]["engine"], "vllm");
}

#[test]
fn bad_engine_flags_exit_two_naming_the_flag() {
    for (args, flag) in [
        (&["--engine", "sglang"][..], "--engine"),
        (
            &["--gpu-memory-utilization", "0"][..],
            "--gpu-memory-utilization",
        ),
        (
            &["--tensor-parallel-size", "0"][..],
            "--tensor-parallel-size",
        ),
        (&["--lmcache-cpu-gib", "8"][..], "--lmcache-cpu-gib"),
        (
            &["--engine", "lmcache", "--lmcache-cpu-gib", "-3"][..],
            "--lmcache-cpu-gib",
        ),
        (&["--max-num-seqs", "0"][..], "--max-num-seqs"),
        (&["--vllm-version", "banana"][..], "--vllm-version"),
    ] {
        ldqa()
            .arg("predict")
            .args(args)
            .assert()
            .code(2)
            .stderr(contains(flag));
    }
}

#[test]
fn unknown_gpu_suggests_names() {
    ldqa()
        .args(["predict", "--gpu", "h100-80"])
        .assert()
        .code(2)
        .stderr(contains("--gpu"))
        .stderr(contains("h100-80gb"));
}

#[test]
fn uncalibrated_gpu_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    ldqa()
        .args([
            "predict",
            "--gpu",
            "rtx-4090",
            "--num-documents",
            "4",
            "--document-length",
            "1000",
            "--output-dir",
        ])
        .arg(dir.path())
        .assert()
        .success()
        .stderr(contains("UNCALIBRATED"))
        .stdout(contains("uncalibrated"));
}

/// Issue 17: a GPU with kernel tables says whose they are; a kernel profile given with
/// `--profile` overrides the catalog's, and a profile of another GPU is called out.
#[test]
fn kernel_tables_are_named_and_a_users_profile_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    let predict = |gpu: &str, profile: Option<&std::path::Path>| {
        let mut cmd = ldqa();
        cmd.args(["predict", "--gpu", gpu, "--num-documents", "4"])
            .args(["--document-length", "2000", "--save-result"])
            .arg(dir.path().join("result.json"))
            .arg("--output-dir")
            .arg(dir.path());
        if let Some(p) = profile {
            cmd.arg("--profile").arg(p);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let result = std::fs::read_to_string(dir.path().join("result.json")).unwrap();
        let result: serde_json::Value = serde_json::from_str(&result).unwrap();
        let round_s = result["rounds"][0]["summary"]["round_time_s"]
            .as_f64()
            .unwrap();
        (stderr, round_s)
    };
    let (stderr, l40s_s) = predict("l40s", None);
    assert!(
        stderr.contains("aiconfigurator kernel tables for l40s"),
        "{stderr}"
    );
    assert!(!stderr.contains("uncalibrated"), "{stderr}");

    // B200's curves on an L40S: its speeds, with the L40S's memory, and a warning.
    let b200 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ldqa-sim/data/kernels/b200.json"
    );
    let (stderr, faster_s) = predict("l40s", Some(std::path::Path::new(b200)));
    assert!(stderr.contains("kernel tables for b200"), "{stderr}");
    assert!(stderr.contains("holds b200's kernel curves"), "{stderr}");
    assert!(faster_s < l40s_s / 2.0, "{faster_s} s vs {l40s_s} s");
}

/// Finding 3: a prompt longer than the model's context fails in `predict` exactly as
/// `ldqa serve` (and vLLM) answer it: HTTP 400 with vLLM's words; every request of the
/// round failing is an error (exit 2).
#[test]
fn prompts_longer_than_the_context_fail_as_the_server_answers_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args([
            "predict",
            "--max-model-len",
            "5000",
            "--num-documents",
            "2",
            "--document-length",
            "6000",
            "--repeat-mode",
            "tile",
            "--output-dir",
        ])
        .arg(dir.path())
        .assert()
        .code(2)
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("maximum context length is 5000 tokens"),
        "{text}"
    );
    let log = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    assert!(log.contains("\"http_status\":400"), "{log}");
}

/// Finding 10: `--engine both --save-result X.json` says which files it wrote, and
/// `--json-output` is one line, last on stdout, labelled by engine.
#[test]
fn both_engines_name_their_files_and_print_one_json_line_last() {
    let dir = tempfile::tempdir().unwrap();
    let out = ldqa()
        .args([
            "predict",
            "--engine",
            "both",
            "--num-documents",
            "2",
            "--document-length",
            "500",
            "--json-output",
            "--save-result",
        ])
        .arg(dir.path().join("both.json"))
        .arg("--output-dir")
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for engine in ["vllm", "lmcache"] {
        let path = dir.path().join(format!("both-{engine}.json"));
        assert!(path.is_file());
        assert!(
            stderr.contains(&format!("wrote {}", path.display())),
            "{stderr}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(json_lines.len(), 1, "{stdout}");
    assert_eq!(stdout.lines().last(), Some(json_lines[0]));
    let v: serde_json::Value = serde_json::from_str(json_lines[0]).unwrap();
    assert!(v["vllm"].is_object() && v["lmcache"].is_object(), "{v}");
}

/// `--instances 2` on the Long Doc QA workload: a section per instance under the results.
/// In random order round robin sends a document's query to the other instance about half
/// the time (a miss), while the kv-aware router sends each where it is cached.
#[test]
fn long_doc_qa_on_several_instances_behind_a_router() {
    let query_hit_rate = |router: &str| -> f64 {
        let dir = tempfile::tempdir().unwrap();
        let out = ldqa()
            .args([
                "predict",
                "--num-documents",
                "8",
                "--document-length",
                "2000",
            ])
            .args([
                "--output-len",
                "4",
                "--repeat-count",
                "1",
                "--repeat-mode",
                "random",
            ])
            .args(["--instances", "2", "--router", router, "--output-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let heading = format!("Per instance (2 behind a {router} router)");
        let section = text
            .split_once(&heading)
            .unwrap_or_else(|| panic!("{text}"))
            .1;
        let query = section.split_once("query round").unwrap().1;
        assert!(query.contains("  #1") && query.contains("  #2"), "{query}");
        let all = query.lines().find(|l| l.starts_with("all ")).unwrap();
        all.split_whitespace()
            .rev()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{all}"))
    };
    let (rr, kv) = (query_hit_rate("round-robin"), query_hit_rate("kv-aware"));
    assert!(kv > 99.0, "kv-aware {kv}");
    assert!(rr < 90.0, "round robin {rr}");
}
