//! `ldqa sweep`: the whole curve in the simulator, its files, its verdicts against the
//! recommender's regimes, and its errors.

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
    assert_eq!(report["crossovers"]["wins"], serde_json::json!([42, 53]));
    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), points.len() + 1);
    assert!(csv.starts_with("num_documents,working_set_tokens,vllm_warmup_mean_ttft_s"));
    let png = std::fs::read(dir.path().join("sweep.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "sweep.png is a PNG");
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
