//! Text output: a short explanation of each number, then the three command blocks exactly as
//! upstream's recommender prints them (header lines keep upstream's trailing space), with the
//! workload as an `ldqa run` command.

use std::fmt::Write as _;

use ldqa_specs::{GpuSpec, ModelSpec};

use crate::plan::{OffloadLimit, Plan, PlanWarning, RegimeKind, RemoteBasis, RemoteTier, Workload};

const GIB: f64 = ldqa_specs::GIB_BYTES as f64;

/// The three blocks. `model_name` is printed as the user gave it; `serve_flags` are the
/// deployment's `vllm serve` flags ([`crate::Deployment::vllm_serve_flags`]), one a line.
pub fn render_blocks(
    model_name: &str,
    serve_flags: &[String],
    max_local_cpu_size_gib: u64,
    num_documents: u64,
    w: &Workload,
) -> String {
    let flags = serve_flags.join(" \\\n");
    let mut s = String::new();
    let _ = write!(
        s,
        "1. vLLM Deployment: \n-----------------\n\n\
         PYTHONHASHSEED=0 \\\nvllm serve {model_name} \\\n{flags} \\\n--load-format dummy\n\n\n\
         2. LMCache Deployment: \n--------------------\n\n\
         PYTHONHASHSEED=0 \\\nLMCACHE_MAX_LOCAL_CPU_SIZE={max_local_cpu_size_gib} \\\nvllm serve {model_name} \\\n\
         {flags} \\\n--load-format dummy \\\n--kv-transfer-config \\\n\
         '{{\"kv_connector\": \"LMCacheConnectorV1\", \"kv_role\": \"kv_both\"}}'\n\n\n\
         3. Multi-Round QA Workload Generation: \n----------------------------------------\n\n\
         ldqa run \\\n--model {model_name} \\\n--num-documents {num_documents} \\\n--document-length {} \\\n\
         --output-len {} \\\n--repeat-count 1 \\\n--repeat-mode tile \\\n--max-inflight-requests {}\n",
        w.document_length, w.output_len, w.max_inflight_requests
    );
    s
}

/// What the fourth block plans: `instances` replicas of `model_name` at TP `tp`.
#[derive(Debug, Clone, Copy)]
pub struct InstancesBlock<'a> {
    /// The model as `vllm serve` names it.
    pub model_name: &'a str,
    /// The GPU, as `ldqa predict --gpu` takes it.
    pub gpu_name: &'a str,
    /// `vllm serve`'s flags for one instance.
    pub serve_flags: &'a [String],
    /// LMCache's CPU tier per instance, GiB.
    pub max_local_cpu_size_gib: u64,
    /// Tensor parallelism of each instance.
    pub tp: u32,
    /// How many instances.
    pub instances: u32,
    /// GPUs a node has.
    pub gpus_per_node: u32,
    /// A shared remote KV tier (LMCache's Redis backend), if any.
    pub remote: Option<RemoteTier>,
    /// The workload's shape.
    pub workload: &'a Workload,
    /// Documents the printed sweep runs: the user's working set, else the planned
    /// workload once per instance.
    pub num_documents: u64,
}

/// The fourth block, for `instances` > 1: each instance's LMCache `vllm serve` line on its
/// own GPUs and port (`CUDA_VISIBLE_DEVICES` counted per node), with the shared tier's
/// settings when there is one (and its `redis-server` line), `vllm-router` in front of
/// them, and the simulated cluster's prediction and a replay through the router.
pub fn render_instances(plan: &InstancesBlock<'_>) -> String {
    let InstancesBlock {
        model_name,
        gpu_name,
        serve_flags,
        max_local_cpu_size_gib,
        tp,
        instances,
        gpus_per_node,
        remote,
        ..
    } = *plan;
    let flags = serve_flags.join(" \\\n");
    let per_node = (gpus_per_node / tp.max(1)).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        "\n\n4. Many instances ({instances} × TP {tp} = {} GPUs, {per_node} a node): \n\
         -----------------------------------------\n",
        instances * tp
    );
    if tp > gpus_per_node {
        let _ = write!(
            s,
            "\n# TP {tp} spans more than a node of {gpus_per_node} GPUs: each instance needs \
             multi-node tensor parallelism or pipeline parallelism, which this plan does not set up.\n"
        );
    }
    let remote_env = match remote {
        Some(r) => {
            let g = r.gib;
            let sized = match r.sized_for {
                RemoteBasis::Given => format!("about {} documents", r.documents),
                RemoteBasis::YourDocuments => {
                    format!("your {} documents, +10 %", r.documents)
                }
                RemoteBasis::CpuTiersTogether => format!(
                    "{} documents, what the {instances} CPU tiers hold together, +10 %",
                    r.documents
                ),
            };
            let _ = write!(
                s,
                "\n# the shared KV tier every instance's LMCache uses (LMCache's Redis backend; \
                 REDIS: its host), {g} GiB ({sized}), least recently used out\n\
                 redis-server --port 6379 --maxmemory {g}gb --maxmemory-policy allkeys-lru\n"
            );
            "LMCACHE_REMOTE_URL=redis://REDIS:6379 \\\nLMCACHE_REMOTE_SERDE=naive \\\n"
        }
        None => "",
    };
    for k in 0..instances {
        let node = k / per_node + 1;
        let first = (k % per_node) * tp;
        let gpus: Vec<String> = (first..first + tp).map(|g| g.to_string()).collect();
        let _ = write!(
            s,
            "\n# instance {} on node {node}\nCUDA_VISIBLE_DEVICES={} \\\nPYTHONHASHSEED=0 \\\n\
             LMCACHE_MAX_LOCAL_CPU_SIZE={max_local_cpu_size_gib} \\\n{remote_env}vllm serve {model_name} \\\n\
             {flags} \\\n--port {} \\\n--load-format dummy \\\n--kv-transfer-config \\\n\
             '{{\"kv_connector\": \"LMCacheConnectorV1\", \"kv_role\": \"kv_both\"}}'\n",
            k + 1,
            gpus.join(","),
            8000 + k % per_node
        );
    }
    let remote_flag = remote.map_or(String::new(), |r| format!(" --remote-gib {}", r.gib));
    let urls: Vec<String> = (0..instances)
        .map(|k| format!("http://NODE{}:{}", k / per_node + 1, 8000 + k % per_node))
        .collect();
    let _ = write!(
        s,
        "\n# the router (pip install vllm-router; NODEn: each node's address)\n\
         vllm-router --port 30000 --policy cache_aware \\\n--worker-urls {}\n\n\
         # what it should give, simulated, and measured through the router\n\
         ldqa predict --model {model_name} --gpu {gpu_name} --tensor-parallel-size {tp} \\\n\
         --lmcache-cpu-gib {max_local_cpu_size_gib} --trace TRACE --engine lmcache \\\n\
         --instances {instances} --router cache-aware{remote_flag}\n\
         ldqa replay --base-url http://ROUTER:30000/v1 TRACE\n",
        urls.join(" ")
    );
    s.push_str(&sweep_line(plan));
    s
}

/// The `ldqa sweep` that shows where this cluster pays off for Long Doc QA, simulated:
/// along the shared tier's link when there is one (where loading beats computing), else
/// along the instances and the router.
fn sweep_line(plan: &InstancesBlock<'_>) -> String {
    let InstancesBlock {
        model_name,
        gpu_name,
        max_local_cpu_size_gib,
        tp,
        instances,
        remote,
        workload: w,
        num_documents,
        ..
    } = *plan;
    let (why, axis) = match remote {
        Some(r) => (
            format!(
                "where the shared tier pays off, simulated for {num_documents} documents: along \
                 its link (where\n# loading a document beats computing it), behind cache-aware \
                 (each document stays\n# where it was cached) and round robin (the questions in \
                 random order)"
            ),
            format!(
                "--instances {instances} --remote-gib {} --remote-gbps 25,100,400 \\\n\
                 --router round-robin,cache-aware --repeat-mode random",
                r.gib
            ),
        ),
        None => (
            format!(
                "how the instances and the router change LMCache's gain, simulated for \
                 {num_documents} documents"
            ),
            format!("--instances 1,{instances} --router round-robin,cache-aware"),
        ),
    };
    format!(
        "\n# {}\n\
         ldqa sweep --model {model_name} --gpu {gpu_name} --tensor-parallel-size {tp} \\\n\
         --lmcache-cpu-gib {max_local_cpu_size_gib} --num-documents {num_documents} \\\n\
         --document-length {} --output-len {} --max-inflight-requests {} \\\n\
         {axis}\n",
        why, w.document_length, w.output_len, w.max_inflight_requests
    )
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}

/// What each number is and where it comes from; `gpus_pinning_per_node` GPUs of a node
/// pin LMCache's CPU memory (all the ranks of the instances it holds).
pub fn render_explanation(
    p: &Plan,
    model: &ModelSpec,
    gpu: &GpuSpec,
    gpus_pinning_per_node: u32,
    w: &Workload,
) -> String {
    let mut s = explain_engine(p, model, gpu);
    s.push_str(&explain_caches(p, gpus_pinning_per_node, w));
    s
}

/// The engine: weights, TP, memory, GPU KV cache, concurrency.
fn explain_engine(p: &Plan, model: &ModelSpec, gpu: &GpuSpec) -> String {
    let k = &p.kv;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {} on {} ({:.2} GiB as torch reports it)",
        model.name,
        gpu.name,
        gpu.memory_gib()
    );
    let _ = writeln!(
        s,
        "weights:        {:.2} GiB ({:.2}B parameters, {:.2}B active); {:.2} GiB per GPU at TP {}",
        model.weight_bytes as f64 / GIB,
        model.total_params as f64 / 1e9,
        model.active_params as f64 / 1e9,
        gib(k.weights_bytes),
        p.tp
    );
    let _ = writeln!(
        s,
        "TP:             {} (the smallest at which vLLM starts with these settings, or as given)",
        p.tp
    );
    if let Some(r) = &p.tp_rule {
        let _ = writeln!(
            s,
            "upstream's TP:  ceil({:.2} / (0.9 x {:.2} - 10 = {:.2})) = {} GPU(s), rounded up to a power of two = {}",
            r.weights_gib,
            gpu.memory_gib(),
            r.usable_gib_per_gpu,
            r.gpus_needed,
            r.tp
        );
    }
    let _ = writeln!(
        s,
        "usable memory:  {:.2} GiB = memory x utilization; minus activations {:.2}, non-torch {:.2}, CUDA graphs {:.2} GiB",
        gib(k.requested_bytes),
        gib(k.activation_bytes),
        gib(k.non_torch_bytes),
        gib(k.cuda_graph_bytes)
    );
    let _ = writeln!(
        s,
        "GPU KV cache:   {:.2} GiB per GPU = {} tokens ({} blocks of {}); {} KiB per token per GPU",
        gib(k.available_kv_bytes),
        k.tokens,
        k.num_blocks,
        k.block_size,
        k.bytes_per_token as f64 / 1024.0
    );
    if k.num_groups > 1 {
        let _ = writeln!(
            s,
            "hybrid KV:      {} groups of layers (sliding-window and full attention) share the {} blocks: {} tokens of full-attention context",
            k.num_groups,
            k.num_blocks,
            k.num_blocks / k.num_groups * k.block_size
        );
    }
    let _ = writeln!(
        s,
        "concurrency:    {:.2}× requests of {} tokens (max_num_batched_tokens {}, max_num_seqs {})",
        k.max_concurrency, k.max_model_len, k.max_num_batched_tokens, k.max_num_seqs
    );
    s
}

/// The caches: LMCache's CPU size, the documents they hold, the regimes.
fn explain_caches(p: &Plan, gpus_pinning_per_node: u32, w: &Workload) -> String {
    let o = &p.offload;
    let mut s = String::new();
    let _ = writeln!(s, "GiB per 1K tok: {:.4}", o.gib_per_1k_tokens);
    let why = match o.limited_by {
        OffloadLimit::Formula => "GPU KV + 120K tokens",
        OffloadLimit::HostRam => "capped by host RAM / GPUs per node",
        OffloadLimit::Memlock => "capped by RLIMIT_MEMLOCK / GPUs per node",
        OffloadLimit::Given => "--lmcache-cpu-gib",
    };
    let _ = writeln!(
        s,
        "CPU offload:    {:.2} GiB per GPU ({why}) -> LMCACHE_MAX_LOCAL_CPU_SIZE={}; {} GiB pinned per node",
        o.offload_gib,
        o.max_local_cpu_size_gib,
        o.max_local_cpu_size_gib * u64::from(gpus_pinning_per_node)
    );
    let per_doc = w.document_length + w.output_len;
    let _ = writeln!(
        s,
        "tokens stored:  {} tokens hold {} documents of {per_doc} tokens; recommend {} - 2 = {}",
        o.tokens_storable,
        o.tokens_storable / per_doc.max(1),
        o.tokens_storable / per_doc.max(1),
        p.num_documents,
    );
    for r in &p.regimes {
        let label = match r.kind {
            RegimeKind::FitsGpu => "fits the GPU cache",
            RegimeKind::FitsLmcache => "fits only with LMCache",
            RegimeKind::ExceedsBoth => "exceeds both",
        };
        let _ = writeln!(
            s,
            "  {:>4} document{}: {label}: {}",
            r.num_documents,
            if r.num_documents == 1 { " " } else { "s" },
            r.demonstrates
        );
    }
    s.push('\n');
    s
}

/// One warning as a sentence.
pub fn warning_text(w: &PlanWarning) -> String {
    match w {
        PlanWarning::MultiNode { tp, gpus_per_node } => format!(
            "TP {tp} exceeds one {gpus_per_node}-GPU node: use TP {gpus_per_node} within a node and pipeline parallelism across nodes (--pipeline-parallel-size {})",
            tp.div_ceil(*gpus_per_node)
        ),
        PlanWarning::KvReplicated { copies } => {
            format!("TP exceeds the KV heads: each KV head is stored {copies} times across ranks")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_match_the_seed_text() {
        let got = render_blocks(
            "meta-llama/Meta-Llama-3.1-8B-Instruct",
            &["--tensor-parallel-size 1".to_string()],
            66,
            51,
            &Workload::default(),
        );
        let seed = include_str!("../tests/data/seed_example1.txt");
        assert_eq!(
            got,
            seed.replace("python benchmarks/long_doc_qa/long_doc_qa.py", "ldqa run")
        );
    }
}
