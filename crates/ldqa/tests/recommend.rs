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
    // Finding 40: one field per quantity, in exact units (no float GiB twins of byte counts).
    assert!(v["gpu"].get("memory_gib").is_none(), "{}", v["gpu"]);
    assert!(v["gpu_kv"].get("available_kv_gib").is_none());
    assert!(
        v["cpu_offload"].get("kv_gib_per_gpu").is_none(),
        "{}",
        v["cpu_offload"]
    );
    assert!(v["cpu_offload"].get("gib_per_1k_tokens").is_none());
    // GiB figures and ratios have at most 3 decimals: no `61.19900000030175`.
    for x in [
        &v["upstream_tp_rule"]["usable_gib_per_gpu"],
        &v["upstream_tp_rule"]["weights_gib"],
        &v["cpu_offload"]["offload_gib_per_gpu"],
        &v["gpu_kv"]["max_concurrency"],
    ] {
        let text = x.to_string();
        let decimals = text.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 3, "{text}");
    }
}

/// Usability findings 1, 3, 12 and 13: a plan vLLM could not start, or that shows nothing,
/// is an error (exit 2) that says what to change; never a 0-token cache or a
/// `--num-documents -2` in a printed command.
#[test]
fn undeployable_plans_are_errors_that_say_what_to_change() {
    let plan = ["recommend", "--gpu", "h100-80gb", "--cpu-ram-gib", "1000"];
    for (extra, says) in [
        (
            &[
                "--tensor-parallel-size",
                "1",
                "--gpu-memory-utilization",
                "0.2",
            ][..],
            "--gpu-memory-utilization",
        ),
        (
            &[
                "--model",
                "meta-llama/Llama-3.1-70B-Instruct",
                "--num-gpus",
                "2",
                "--tensor-parallel-size",
                "2",
            ][..],
            "raise --tensor-parallel-size",
        ),
        (
            &["--document-length", "200000"][..],
            "exceeds max_model_len 131072",
        ),
        (&["--max-model-len", "100"][..], "exceeds max_model_len 100"),
        (&["--num-gpus", "0"][..], "--num-gpus"),
        (
            &["--tensor-parallel-size", "3"][..],
            "does not divide the model's 32 attention heads",
        ),
    ] {
        let mut args = plan.to_vec();
        args.extend_from_slice(extra);
        let out = ldqa().args(&args).assert().code(2).get_output().clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{extra:?}: printed a plan");
    }
}

/// Finding 13: without --tensor-parallel-size the TP is the smallest at which vLLM starts
/// with the given utilization (upstream's rule gave Qwen3-32B TP 1 on an H100, which vLLM
/// refuses: 61 GiB of weights leave no room for one 40,960-token request).
#[test]
fn the_tp_is_the_smallest_that_starts() {
    let json = |extra: &[&str]| {
        let mut args = vec![
            "recommend",
            "--gpu",
            "h100-80gb",
            "--cpu-ram-gib",
            "1000",
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str::<serde_json::Value>(&stdout(&args)).unwrap()
    };
    let v = json(&["--model", "Qwen/Qwen3-32B"]);
    assert_eq!(v["tensor_parallel_size"], 2);
    assert_eq!(v["upstream_tp_rule"]["tp"], 1);
    assert!(v["gpu_kv"]["max_concurrency"].as_f64().unwrap() >= 1.0);
    // 0.2 x 79 GiB: at TP 2 the 8B model's 7.5 GiB of weights per GPU, its activations and
    // the all-reduce buffers leave too little for one 131,072-token request; at TP 4 enough.
    let low = json(&["--gpu-memory-utilization", "0.2"]);
    assert_eq!(low["tensor_parallel_size"], 4);
}

/// Finding 2: the printed `vllm serve` commands carry every knob the numbers depend on.
#[test]
fn printed_commands_deploy_what_was_computed() {
    let out = stdout(&[
        "recommend",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
        "--kv-cache-dtype",
        "fp8",
        "--gpu-memory-utilization",
        "0.8",
        "--max-model-len",
        "32768",
        "--enforce-eager",
        "--max-num-seqs",
        "64",
        "--max-num-batched-tokens",
        "4096",
    ]);
    let b = blocks(&out);
    for flag in [
        "--kv-cache-dtype fp8",
        "--gpu-memory-utilization 0.8",
        "--max-model-len 32768",
        "--enforce-eager",
        "--max-num-seqs 64",
        "--max-num-batched-tokens 4096",
    ] {
        assert_eq!(
            b.matches(flag).count(),
            2,
            "{flag} in both vllm serve blocks:\n{b}"
        );
    }
}

/// Findings 8 and 9: host RAM is per node, shared by the GPUs of one node, and a plan made
/// with this machine's RAM says so first.
#[test]
fn host_ram_is_per_node_and_its_source_is_stated() {
    let v: serde_json::Value = serde_json::from_str(&stdout(&[
        "recommend",
        "--model",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--gpu",
        "l4",
        "--tensor-parallel-size",
        "16",
        "--max-model-len",
        "16384",
        "--cpu-ram-gib",
        "100",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["cpu_offload"]["limited_by"], "host_ram");
    let per_gpu = v["cpu_offload"]["offload_gib_per_gpu"].as_f64().unwrap();
    assert!((per_gpu - 100.0 / 8.0).abs() < 1e-9, "{per_gpu}");
    let out = ldqa()
        .args(["recommend", "--gpu", "h100-80gb"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("this machine's MemAvailable") || text.contains("--cpu-ram-gib"),
        "{text}"
    );
}

/// Finding 21: `ldqa catalog` lists the GPUs (with which are calibrated) and the models
/// (with KV bytes per token), and `--gpu` takes the name `nvidia-smi` prints.
#[test]
fn the_catalog_is_listed_and_nvidia_smi_names_are_accepted() {
    let gpus = stdout(&["catalog", "gpus"]);
    let h100 = gpus.lines().find(|l| l.starts_with("h100-80gb ")).unwrap();
    assert!(
        h100.contains("79.11") && h100.ends_with("kernel tables (aiconfigurator 095f58a)"),
        "{h100}"
    );
    let a40 = gpus.lines().find(|l| l.starts_with("a40 ")).unwrap();
    assert!(a40.ends_with("kernel tables (vidur 7d47513)"), "{a40}");
    assert!(gpus
        .lines()
        .any(|l| l.starts_with("rtx-4090 ") && l.contains("h100-80gb's, on its peaks")));
    let json = stdout(&["catalog", "gpus", "--json"]);
    let l40s: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["gpu"] == "l40s")
        .unwrap();
    assert_eq!(l40s["efficiencies_calibrated"], true);
    let source = l40s["step_costs"].as_str().unwrap();
    assert!(
        source.contains("aiconfigurator kernel tables for l40s"),
        "{source}"
    );
    assert!(source.contains("Apache-2.0"), "{source}");
    let models = stdout(&["catalog", "models", "--json"]);
    let llama: serde_json::Value = models
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["model"] == "meta-llama/Llama-3.1-8B-Instruct")
        .unwrap();
    assert_eq!(llama["kv_bytes_per_token"], 131_072);
    let by_smi_name = stdout(&[
        "recommend",
        "--gpu",
        "NVIDIA H100 80GB HBM3",
        "--cpu-ram-gib",
        "1000",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&by_smi_name).unwrap();
    assert_eq!(v["gpu"]["name"], "h100-80gb");
}

/// Issue 13: next to its regimes, recommend prints the predicted gain at the planned point
/// and, for the user's own workload, a clear "no benefit expected" when it fits the GPU.
#[test]
fn the_plan_comes_with_its_predicted_gain_and_a_verdict_on_your_workload() {
    let args = [
        "recommend",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
        "--num-documents",
        "20",
    ];
    let text = stdout(&args);
    assert!(
        text.contains("Predicted for the planned workload (51 documents): query-round mean TTFT"),
        "{text}"
    );
    assert!(
        text.contains(
            "Predicted for your workload (20 documents, 200700 tokens): no benefit expected"
        ),
        "{text}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v: serde_json::Value = serde_json::from_str(&stdout(&json_args)).unwrap();
    let planned = &v["prediction"]["planned"];
    assert_eq!(planned["verdict"], "gain");
    assert!(
        planned["query_ttft_gain"].as_f64().unwrap() > 3.0,
        "{planned}"
    );
    assert_eq!(v["prediction"]["yours"]["verdict"], "no_benefit_fits_gpu");
    // Past the CPU tier too: no benefit either, for the other reason.
    let mut past = args.to_vec();
    past[6] = "80";
    let text = stdout(&past);
    assert!(text.contains("overflows LMCache's CPU tier too"), "{text}");
}

/// `--instances N`: three 70B instances at TP 4 take 12 GPUs, two a node of 8; the two on
/// one node share its host RAM, so the node pins twice what one instance does; each gets
/// its GPUs and port, and the router line lists them all. `--gpus-total` plans as many
/// instances as the GPUs hold. Too few GPUs, or 0 instances, is an error naming the flag.
#[test]
fn instances_are_planned_with_their_gpus_ports_and_router() {
    let args = [
        "recommend",
        "--model",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1800",
    ];
    let one = stdout(&args);
    assert!(one.contains("160 GiB pinned per node"), "{one}");
    assert!(!one.contains("4. Many instances"), "{one}");
    let three = stdout(&[&args[..], &["--instances", "3"]].concat());
    assert!(three.contains("320 GiB pinned per node"), "{three}");
    assert!(
        three.contains("4. Many instances (3 × TP 4 = 12 GPUs, 2 a node)"),
        "{three}"
    );
    for (instance, gpus, port) in [
        (
            "# instance 1 on node 1",
            "CUDA_VISIBLE_DEVICES=0,1,2,3",
            "--port 8000",
        ),
        (
            "# instance 2 on node 1",
            "CUDA_VISIBLE_DEVICES=4,5,6,7",
            "--port 8001",
        ),
        (
            "# instance 3 on node 2",
            "CUDA_VISIBLE_DEVICES=0,1,2,3",
            "--port 8000",
        ),
    ] {
        let at = three
            .find(instance)
            .unwrap_or_else(|| panic!("{instance}: {three}"));
        let block = &three[at..];
        let block = &block[..block.find("'\n").unwrap()];
        assert!(block.contains(gpus) && block.contains(port), "{block}");
        assert!(block.contains("LMCACHE_MAX_LOCAL_CPU_SIZE=40"), "{block}");
    }
    assert!(
        three.contains("--worker-urls http://NODE1:8000 http://NODE1:8001 http://NODE2:8000"),
        "{three}"
    );
    assert!(
        three.contains("--instances 3 --router cache-aware"),
        "{three}"
    );
    ldqa()
        .args(args)
        .args(["--num-gpus", "8", "--instances", "3"])
        .assert()
        .code(2)
        .stderr(contains("3 instances at TP 4 need 12 GPUs; 8 available"));
    ldqa()
        .args(args)
        .args(["--instances", "0"])
        .assert()
        .code(2)
        .stderr(contains("--instances must be 1 to 1024"));
    ldqa()
        .args(args)
        .args(["--remote-gib", "100"])
        .assert()
        .code(2)
        .stderr(contains("pass --instances N (or --gpus-total N) too"));
    // --gpus-total: as many instances as the GPUs hold at the plan's TP (4 here).
    let out = ldqa()
        .args(args)
        .args(["--gpus-total", "10", "--json"])
        .assert()
        .success()
        .stderr(contains(
            "2 instances of 4 GPUs use 8 of the 10 GPUs given; 2 left over",
        ));
    let plan: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["instances"]["count"], 2, "{plan}");
    ldqa()
        .args(args)
        .args(["--gpus-total", "3"])
        .assert()
        .code(2)
        .stderr(contains(
            "--gpus-total 3 is fewer than one instance's 4 GPUs",
        ));
    for (value, says) in [
        ("0", "--remote-gib must be at least 1 (or auto)"),
        ("lots", "expected a whole number of GiB or auto"),
    ] {
        ldqa()
            .args(args)
            .args(["--instances", "2", "--remote-gib", value])
            .assert()
            .code(2)
            .stderr(contains(says));
    }
}

/// `--remote-gib auto`: without --num-documents the shared tier holds what the instances'
/// CPU tiers hold together (a tenth more); with it, your documents. Your workload is then
/// predicted on the planned cluster (cache-aware, as the router line says): 200 documents
/// overflow one H100's caches but not four spread by document.
#[test]
fn a_derived_shared_tier_holds_the_working_set_and_yours_runs_on_the_cluster() {
    let base = [
        "recommend",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
        "--json",
    ];
    let plan = |extra: &[&str]| -> serde_json::Value {
        serde_json::from_str(&stdout(&[&base[..], extra].concat())).unwrap()
    };
    let auto = plan(&["--instances", "4", "--remote-gib", "auto"]);
    let remote = &auto["instances"]["remote"];
    assert_eq!(remote["sized_for"], "cpu_tiers_together", "{auto}");
    let cpu_gib = auto["cpu_offload"]["lmcache_max_local_cpu_size_gib"]
        .as_u64()
        .unwrap();
    let gib = remote["gib"].as_u64().unwrap();
    assert!(
        gib >= 4 * cpu_gib && gib * 10 <= 4 * cpu_gib * 12,
        "{gib} GiB for 4 CPU tiers of {cpu_gib} GiB"
    );
    let per_instance = auto["cpu_offload"]["tokens_storable"].as_u64().unwrap() / 10_100;
    assert_eq!(remote["documents"], 4 * per_instance);
    assert!(
        auto["commands_text"]
            .as_str()
            .unwrap()
            .contains(&format!("--maxmemory {gib}gb")),
        "{auto}"
    );

    let yours = plan(&[
        "--instances",
        "4",
        "--remote-gib",
        "auto",
        "--num-documents",
        "424",
    ]);
    let remote = &yours["instances"]["remote"];
    assert_eq!(remote["sized_for"], "your_documents");
    assert_eq!(remote["documents"], 424);
    let ratio = remote["gib"].as_f64().unwrap() / gib as f64;
    assert!(
        (ratio - 424.0 / (4 * per_instance) as f64).abs() < 0.02,
        "{ratio}"
    );

    let one = plan(&["--num-documents", "200"]);
    assert_eq!(one["prediction"]["yours"]["verdict"], "no_benefit", "{one}");
    let four = plan(&["--instances", "4", "--num-documents", "200"]);
    let predicted = &four["prediction"]["yours"];
    assert_eq!(predicted["verdict"], "gain", "{four}");
    assert_eq!(predicted["on"], "4 instances behind a cache-aware router");
    assert!(four["prediction"]["planned"]["on"].is_null());
}

/// `--remote-gib G` with several instances: a Redis of G GiB (least recently used out), and
/// every instance's LMCache pointed at it; the prediction command and the JSON carry it.
#[test]
fn a_shared_tier_is_planned_with_lmcache_remote_settings() {
    let args = [
        "recommend",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
        "--instances",
        "2",
        "--remote-gib",
        "200",
    ];
    let text = stdout(&args);
    assert!(
        text.contains("redis-server --port 6379 --maxmemory 200gb --maxmemory-policy allkeys-lru"),
        "{text}"
    );
    assert_eq!(
        text.matches("LMCACHE_REMOTE_URL=redis://REDIS:6379 \\\nLMCACHE_REMOTE_SERDE=naive")
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("--router cache-aware --remote-gib 200"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&[&args[..], &["--json"]].concat())).unwrap();
    assert_eq!(json["instances"]["remote_gib"], 200);
}

/// The `ldqa` commands block 4 prints that start with `command` (`ldqa sweep`), each with
/// its continuation lines joined, as arguments.
fn printed(text: &str, command: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with(command) {
            continue;
        }
        let mut joined = line.to_string();
        while joined.ends_with('\\') {
            joined.pop();
            joined.push(' ');
            joined.push_str(lines.next().unwrap_or_default());
        }
        out.push(
            joined
                .split_whitespace()
                .skip(1)
                .map(String::from)
                .collect(),
        );
    }
    out
}

/// Every plan of many instances prints an `ldqa sweep` that runs as printed: with a shared
/// tier, along its link behind round robin and cache-aware, where round robin needs the
/// link fast and cache-aware does not; without, along the instances and the router.
#[test]
fn the_printed_cluster_sweeps_run() {
    let base = [
        "recommend",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-80gb",
        "--cpu-ram-gib",
        "1000",
        "--instances",
        "4",
        "--document-length",
        "2000",
    ];
    for extra in [&["--remote-gib", "auto"][..], &[]] {
        let text = stdout(&[&base[..], extra].concat());
        let sweeps = printed(&text, "ldqa sweep");
        assert_eq!(sweeps.len(), 1, "{text}");
        let dir = tempfile::tempdir().unwrap();
        let out = ldqa()
            .args(&sweeps[0])
            .args(["--json", "--output-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}: {out:?}", sweeps[0]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["series_axis"]["flag"], "--router", "{report}");
        if extra.is_empty() {
            assert_eq!(report["axis"]["flag"], "--instances");
            continue;
        }
        assert_eq!(report["axis"]["flag"], "--remote-gbps");
        let ttft = |k: usize| {
            report["points"][k]["lmcache"]["query"]["mean_ttft_s"]
                .as_f64()
                .unwrap()
        };
        // Points: round robin at 25, 100, 400 Gbit/s, then cache-aware.
        assert!(
            ttft(0) > ttft(2),
            "round robin loads sooner over a faster link: {report}"
        );
        assert!(
            (ttft(3) - ttft(5)).abs() < 0.01 * ttft(3),
            "cache-aware keeps documents local: {report}"
        );
    }
}
