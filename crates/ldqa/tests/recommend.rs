//! `ldqa recommend` end to end: the seed's examples, exit codes and error messages.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn ldqa() -> Command {
    let mut c = Command::cargo_bin("ldqa").unwrap();
    c.env("HF_HUB_OFFLINE", "1")
        .env("LDQA_NO_GPU_PROBE", "1")
        .env("HF_HOME", "/nonexistent-ldqa-test");
    c
}

fn stdout(args: &[&str]) -> String {
    let out = ldqa()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn blocks(text: &str) -> &str {
    &text[text.find("1. vLLM Deployment").unwrap()..]
}

#[test]
fn seed_example_1_llama_8b() {
    let out = stdout(&[
        "recommend",
        "--model",
        "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
    ]);
    let seed = include_str!("../../ldqa-recommend/tests/data/seed_example1.txt")
        .replace("python benchmarks/long_doc_qa/long_doc_qa.py", "ldqa run");
    assert_eq!(blocks(&out), seed);
    insta::assert_snapshot!("llama_8b_h100", out);
}

#[test]
fn seed_example_2_llama_70b() {
    let out = stdout(&[
        "recommend",
        "--model",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--gpu",
        "h100-80gb",
        "--num-gpus",
        "4",
        "--cpu-ram-gib",
        "1000",
    ]);
    assert!(out.contains("--tensor-parallel-size 4 \\"), "{out}");
    assert!(out.contains("LMCACHE_MAX_LOCAL_CPU_SIZE=40 \\"), "{out}");
    assert!(out.contains("--num-documents 50 \\"), "{out}");
    insta::assert_snapshot!("llama_70b_h100_tp4", blocks(&out));
}

#[test]
fn fewer_gpus_than_needed_exits_2() {
    ldqa()
        .args([
            "recommend",
            "--model",
            "meta-llama/Llama-3.1-70B-Instruct",
            "--gpu",
            "h100-80gb",
            "--num-gpus",
            "2",
            "--cpu-ram-gib",
            "1000",
        ])
        .assert()
        .code(2)
        .stderr(contains("TP 4 needs 4 GPUs but 2 are available"));
}

#[test]
fn no_gpu_explains_planning() {
    ldqa()
        .args(["recommend", "--cpu-ram-gib", "100"])
        .assert()
        .code(2)
        .stderr(contains("--gpu h100-80gb"));
}

#[test]
fn unknown_names_suggest_close_ones() {
    ldqa()
        .args([
            "recommend",
            "--model",
            "meta-llama/Llama-3.1-8B-Instuct",
            "--gpu",
            "h100-80gb",
        ])
        .assert()
        .code(2)
        .stderr(contains("did you mean meta-llama/Llama-3.1-8B-Instruct"));
    ldqa()
        .args(["recommend", "--gpu", "h100-80g"])
        .assert()
        .code(2)
        .stderr(contains("did you mean h100-80gb"));
}

#[test]
fn malformed_local_files_are_named() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap();
    std::fs::write(d.path().join("config.json"), "{\"num_hidden_layers\": 2,").unwrap();
    ldqa()
        .args(["recommend", "--model", dir, "--gpu", "l4"])
        .assert()
        .code(2)
        .stderr(contains("config.json").and(contains("not valid JSON")));
    std::fs::write(
        d.path().join("config.json"),
        r#"{"num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"vocab_size":100}"#,
    )
    .unwrap();
    std::fs::write(d.path().join("model.safetensors"), [9u8, 0, 0]).unwrap();
    ldqa()
        .args(["recommend", "--model", dir, "--gpu", "l4"])
        .assert()
        .code(2)
        .stderr(contains("model.safetensors").and(contains("header")));
}

#[test]
fn json_has_units_in_keys() {
    let out = stdout(&[
        "recommend",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tensor_parallel_size"], 1);
    assert_eq!(v["cpu_offload"]["lmcache_max_local_cpu_size_gib"], 66);
    assert_eq!(v["workload"]["num_documents"], 51);
    assert_eq!(v["gpu_kv"]["kv_bytes_per_token"], 131_072);
    assert!(v["gpu_kv"]["available_kv_bytes"].as_u64().unwrap() > 50 << 30);
}
