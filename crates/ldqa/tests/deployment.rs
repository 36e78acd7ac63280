//! One description of a deployment, across processes: the same deployment flags give
//! `ldqa recommend --json`, `ldqa predict --save-result` and a running `ldqa serve` the same
//! GPU KV capacity and context length. (Every catalog model × GPU × TP × knob set is
//! checked in-process by the binary's unit tests; this checks the processes themselves.)

mod common;

use assert_cmd::Command;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("LDQA_NO_GPU_PROBE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test");
    c
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = ldqa()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn recommend_predict_and_serve_agree_on_one_deployment() {
    let deployment = [
        "--model",
        "Qwen/Qwen3-8B",
        "--gpu",
        "l40s",
        "--kv-cache-dtype",
        "fp8",
        "--gpu-memory-utilization",
        "0.85",
        "--max-model-len",
        "20000",
        "--max-num-seqs",
        "64",
    ];
    let mut recommend = vec!["recommend", "--cpu-ram-gib", "500", "--json"];
    recommend.extend(deployment);
    let planned = json(&recommend);
    let pool = planned["gpu_kv"]["pool_tokens"].as_u64().unwrap();
    assert_eq!(planned["gpu_kv"]["max_model_len_tokens"], 20_000);

    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("r.json");
    ldqa()
        .args([
            "predict",
            "--num-documents",
            "2",
            "--document-length",
            "1000",
            "--save-result",
        ])
        .arg(&result)
        .arg("--output-dir")
        .arg(dir.path())
        .args(deployment)
        .assert()
        .success();
    let predicted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(predicted["config"]["gpu_kv_tokens"].as_u64(), Some(pool));
    assert_eq!(predicted["config"]["max_model_len_tokens"], 20_000);

    let served = common::start_serve(&deployment);
    assert!(
        served.line.contains(&format!("GPU KV {pool} tokens")),
        "{}",
        served.line
    );
    assert!(
        served.line.contains("max_model_len 20000"),
        "{}",
        served.line
    );
}
