//! Reference A.7: the KV sizes real vLLM servers logged, reproduced within 5 % from the same
//! GPU, utilisation, model, max length and vLLM version.

use ldqa_recommend::{gpu_kv_capacity, Deployment, VllmKnobs, VllmVersion};
use ldqa_specs::{catalog, GpuSpec};

const GIB: f64 = ldqa_specs::GIB_BYTES as f64;

struct Row {
    id: u32,
    model: &'static str,
    gpu: GpuSpec,
    util: f64,
    max_len: Option<u64>,
    version: &'static str,
    mnbt: Option<u64>,
    /// `--max-num-seqs` when the log's entry point was not `vllm serve`.
    seqs: Option<u64>,
    logged_kv_gib: f64,
    logged_tokens: u64,
}

fn gpu(name: &str) -> GpuSpec {
    catalog::gpu(name).unwrap()
}

fn rows() -> Vec<Row> {
    let t4 = GpuSpec::custom("t4", (14.74 * GIB) as u64);
    vec![
        // V0 0.6.x on an RTX 3090 (vllm issue #10517).
        Row {
            id: 1,
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: gpu("rtx-3090"),
            util: 0.9,
            max_len: Some(20_000),
            version: "0.6.3",
            mnbt: None,
            seqs: None,
            logged_kv_gib: 3.81,
            logged_tokens: 31_232,
        },
        Row {
            id: 2,
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: gpu("rtx-3090"),
            util: 0.9,
            max_len: Some(29_000),
            version: "0.6.3",
            mnbt: None,
            seqs: None,
            logged_kv_gib: 2.89,
            logged_tokens: 23_648,
        },
        // 0.15.1, eager, mnbt 8192 on an A100-40GB (ilseokoh/vllm-gce README).
        Row {
            id: 3,
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: gpu("a100-40gb"),
            util: 0.9,
            max_len: Some(131_072),
            version: "0.15.1",
            mnbt: Some(8192),
            seqs: None,
            logged_kv_gib: 19.28,
            logged_tokens: 157_936,
        },
        // V1 0.8 on an H100, default length.
        Row {
            id: 5,
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: gpu("h100-80gb"),
            util: 0.9,
            max_len: None,
            version: "0.8.0",
            mnbt: None,
            seqs: None,
            logged_kv_gib: 54.62,
            logged_tokens: 447_088,
        },
        // Llama-3.2-3B fp16 on a T4, V0 engine (logged under 0.8 with V1 off; modelled as 0.7).
        Row {
            id: 13,
            model: "meta-llama/Llama-3.2-3B-Instruct",
            gpu: t4,
            util: 0.89,
            max_len: Some(2048),
            version: "0.7.3",
            mnbt: None,
            seqs: None,
            logged_kv_gib: 6.22,
            logged_tokens: 58_192,
        },
        // The comment in upstream's long_doc_qa_recommender.py (LLM class, 0.10.x, H100:
        // the `LLM` class's batch defaults, 16,384 tokens and 1,024 sequences).
        Row {
            id: 23,
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: gpu("h100-80gb"),
            util: 0.9,
            max_len: Some(131_072),
            version: "0.10.1",
            mnbt: Some(16_384),
            seqs: Some(1024),
            logged_kv_gib: 51.4,
            logged_tokens: 420_928,
        },
    ]
}

#[test]
fn logged_kv_sizes_within_five_percent() {
    let mut report = String::new();
    let mut worst: f64 = 0.0;
    for r in rows() {
        let m = catalog::model(r.model).unwrap();
        let knobs = VllmKnobs {
            gpu_memory_utilization: r.util,
            max_model_len: r.max_len,
            max_num_batched_tokens: r.mnbt,
            version: VllmVersion::parse(r.version).unwrap(),
            max_num_seqs: r.seqs,
            enforce_eager: true,
            ..VllmKnobs::default()
        };
        let k = gpu_kv_capacity(&m, &r.gpu, 1, &knobs).unwrap();
        let gib = k.available_kv_bytes as f64 / GIB;
        let e_gib = gib / r.logged_kv_gib - 1.0;
        let e_tok = k.tokens as f64 / r.logged_tokens as f64 - 1.0;
        report += &format!(
            "row {}: {gib:.2} GiB ({e_gib:+.3}), {} tokens ({e_tok:+.3})\n",
            r.id, k.tokens
        );
        worst = worst.max(e_gib.abs()).max(e_tok.abs());
    }
    assert!(worst <= 0.05, "worst error {worst:.3}\n{report}");
    println!("{report}");
}

/// The seed's two examples (benchmarking.rst), with `--cpu-ram-gib 1000`.
#[test]
fn seed_examples() {
    use ldqa_recommend::{plan, PlanInput, Workload};
    let run = |model: &str, num_gpus: Option<u32>| {
        let m = catalog::model(model).unwrap();
        let deployment = Deployment::new(m, gpu("h100-80gb"), None, VllmKnobs::default())?;
        plan(&PlanInput {
            deployment,
            num_gpus,
            gpus_per_node: 8,
            lmcache_cpu_gib: None,
            cpu_ram_bytes: Some(1000 * (1 << 30)),
            memlock_bytes: None,
            workload: Workload::default(),
            instances: 1,
            remote: None,
            num_documents: None,
        })
    };
    let p = run("meta-llama/Meta-Llama-3.1-8B-Instruct", None).unwrap();
    assert_eq!(
        (p.tp, p.offload.max_local_cpu_size_gib, p.num_documents),
        (1, 66, 51),
        "{p:#?}"
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let p = run("meta-llama/Llama-3.1-70B-Instruct", Some(4)).unwrap();
    assert_eq!(
        (p.tp, p.offload.max_local_cpu_size_gib, p.num_documents),
        (4, 40, 50),
        "{p:#?}"
    );
    let e = run("meta-llama/Llama-3.1-70B-Instruct", Some(2)).unwrap_err();
    assert!(
        e.to_string()
            .contains("TP 4 needs 4 GPUs but 2 are available"),
        "{e}"
    );
}
