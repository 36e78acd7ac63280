//! The recommendation: upstream's TP rule, GPU KV, LMCache CPU size, document counts.
//!
//! Upstream = LMCache `benchmarks/long_doc_qa/long_doc_qa_recommender.py` (reference B.9/E.8):
//! `TP = 2^ceil(log2(ceil(W / (0.9·G − 10))))`; `CPU = min(kv + 120k tokens' worth, RAM/tp,
//! memlock/tp)`; `docs = ⌊CPU_tokens / (doc + out)⌋ − 2`.

use ldqa_specs::{GpuSpec, ModelSpec};
use serde::Serialize;

use crate::error::RecommendError;
use crate::vllm::{gpu_kv_capacity, KvSizing, VllmKnobs};

const GIB: f64 = (1u64 << 30) as f64;

/// Upstream's TP: the weights over what one GPU can spare, rounded up to a power of two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TpRule {
    /// Weights in GiB.
    pub weights_gib: f64,
    /// `0.9 × GPU GiB − 5 (activations) − 5 (minimum KV)`.
    pub usable_gib_per_gpu: f64,
    /// `ceil(weights / usable)`.
    pub gpus_needed: u32,
    /// The next power of two.
    pub tp: u32,
}

/// Apply upstream's TP rule.
pub fn upstream_tp(weight_bytes: u64, gpu_memory_bytes: u64) -> Result<TpRule, RecommendError> {
    let gpu_gib = gpu_memory_bytes as f64 / GIB;
    let usable = gpu_gib * 0.9 - 10.0;
    if usable <= 0.0 {
        return Err(RecommendError::GpuTooSmall { gpu_gib });
    }
    let weights_gib = weight_bytes as f64 / GIB;
    let needed = (weights_gib / usable).ceil().max(1.0);
    if needed > f64::from(1u32 << 20) {
        return Err(RecommendError::Invalid {
            what: "model",
            problem: format!("{weights_gib:.0} GiB of weights would need {needed} GPUs"),
        });
    }
    let needed = needed as u32;
    Ok(TpRule {
        weights_gib,
        usable_gib_per_gpu: usable,
        gpus_needed: needed,
        tp: needed.next_power_of_two(),
    })
}

/// The workload shape the sizing uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Workload {
    /// Tokens per document (upstream: 10,000).
    pub document_length: u64,
    /// Output tokens per request (upstream: 100).
    pub output_len: u64,
    /// Concurrent requests (upstream: 4).
    pub max_inflight_requests: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            document_length: 10_000,
            output_len: 100,
            max_inflight_requests: 4,
        }
    }
}

/// What capped the CPU offload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OffloadLimit {
    /// GPU KV + 120k tokens (the formula itself).
    Formula,
    /// Host RAM / TP.
    HostRam,
    /// RLIMIT_MEMLOCK / TP.
    Memlock,
}

/// LMCache CPU offload per GPU (upstream's rule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Offload {
    /// "Available KV cache memory" as vLLM logs it (two decimals), GiB per GPU.
    pub kv_gib_per_gpu: f64,
    /// `kv_gib / tokens × 1000`.
    pub gib_per_1k_tokens: f64,
    /// `min(120·GiB_per_1K + kv, RAM/tp, memlock/tp)`.
    pub offload_gib: f64,
    /// `int(offload_gib)`: `LMCACHE_MAX_LOCAL_CPU_SIZE`.
    pub max_local_cpu_size_gib: u64,
    /// What capped it.
    pub limited_by: OffloadLimit,
    /// `offload / GiB_per_1K × 1000`.
    pub tokens_storable: u64,
    /// Upstream aborts here: the CPU cannot hold more than the GPU already does.
    pub no_gain: bool,
}

/// Upstream's offload sizing. `ram_bytes` / `memlock_bytes` are per node; `None` = unlimited.
pub fn upstream_offload(
    kv: &KvSizing,
    tp: u32,
    ram_bytes: Option<u64>,
    memlock_bytes: Option<u64>,
) -> Offload {
    // Upstream parses the logged "{:.2f} GiB" value.
    let kv_gib = (kv.available_kv_bytes as f64 / GIB * 100.0).round() / 100.0;
    let gib_per_1k = if kv.tokens == 0 {
        0.0
    } else {
        kv_gib / kv.tokens as f64 * 1000.0
    };
    let tp = f64::from(tp.max(1));
    let mut offload = 120.0 * gib_per_1k + kv_gib;
    let mut limited_by = OffloadLimit::Formula;
    if let Some(r) = ram_bytes {
        let cap = r as f64 / GIB / tp;
        if cap < offload {
            offload = cap;
            limited_by = OffloadLimit::HostRam;
        }
    }
    if let Some(m) = memlock_bytes {
        let cap = m as f64 / GIB / tp;
        if cap < offload {
            offload = cap;
            limited_by = OffloadLimit::Memlock;
        }
    }
    let tokens_storable = if gib_per_1k > 0.0 {
        (offload / gib_per_1k * 1000.0) as u64
    } else {
        0
    };
    Offload {
        kv_gib_per_gpu: kv_gib,
        gib_per_1k_tokens: gib_per_1k,
        offload_gib: offload,
        max_local_cpu_size_gib: offload.max(0.0) as u64,
        limited_by,
        tokens_storable,
        no_gain: offload <= kv_gib,
    }
}

/// Upstream's document count: `int(tokens / (doc + out)) − 2` (may be ≤ 0 for tiny caches).
pub fn upstream_documents(tokens_storable: u64, w: &Workload) -> i64 {
    (tokens_storable / (w.document_length + w.output_len).max(1)) as i64 - 2
}

/// Which cache a working set of documents fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegimeKind {
    /// The GPU prefix cache holds every document.
    FitsGpu,
    /// Only the GPU + LMCache CPU tier holds them.
    FitsLmcache,
    /// Neither holds them.
    ExceedsBoth,
}

/// A document count for one regime, and what it shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regime {
    /// The regime.
    pub kind: RegimeKind,
    /// Documents to use.
    pub num_documents: u64,
    /// What a tile replay of that many documents demonstrates.
    pub demonstrates: &'static str,
}

/// Document counts for the three regimes. In-flight requests hold their own blocks, so the GPU
/// keeps `tokens − inflight × (doc + out)` for cached documents.
pub fn regimes(gpu_tokens: u64, cpu_tokens: u64, w: &Workload) -> Vec<Regime> {
    let per_doc = (w.document_length + w.output_len).max(1);
    let inflight = w.max_inflight_requests * per_doc;
    let gpu_docs = gpu_tokens.saturating_sub(inflight) / per_doc;
    let cpu_docs = cpu_tokens.max(gpu_tokens) / per_doc;
    let mut out = vec![Regime {
        kind: RegimeKind::FitsGpu,
        num_documents: gpu_docs.max(1),
        demonstrates: "vLLM's own prefix cache serves the query round; LMCache adds store overhead and no gain",
    }];
    if cpu_docs.saturating_sub(2) > gpu_docs {
        out.push(Regime {
            kind: RegimeKind::FitsLmcache,
            num_documents: cpu_docs - 2,
            demonstrates: "the GPU cache thrashes under tile replay, LMCache serves every query from CPU: the tutorial's gain",
        });
    }
    out.push(Regime {
        kind: RegimeKind::ExceedsBoth,
        num_documents: (cpu_docs * 5).div_ceil(4).max(cpu_docs + 2).max(gpu_docs + 2),
        demonstrates: "both caches thrash (LRU evicts each document before reuse): no gain, the cost of offloading shows",
    });
    out
}

/// Inputs of one recommendation, resolved.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The model.
    pub model: ModelSpec,
    /// The GPU.
    pub gpu: GpuSpec,
    /// GPUs available (detected or `--num-gpus`); `None` when planning with as many as needed.
    pub num_gpus: Option<u32>,
    /// GPUs per node, for the multi-node note.
    pub gpus_per_node: u32,
    /// `--tensor-parallel-size`, overriding the rule.
    pub tp_override: Option<u32>,
    /// vLLM settings.
    pub knobs: VllmKnobs,
    /// Host RAM available for pinning, bytes per node.
    pub cpu_ram_bytes: Option<u64>,
    /// RLIMIT_MEMLOCK, bytes; `None` = unlimited.
    pub memlock_bytes: Option<u64>,
    /// The workload shape.
    pub workload: Workload,
}

/// A typed warning, printed after the results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanWarning {
    /// Fewer GPUs than TP needs.
    FewerGpusThanNeeded {
        /// GPUs there.
        available: u32,
        /// TP.
        needed: u32,
    },
    /// TP exceeds one node.
    MultiNode {
        /// TP.
        tp: u32,
        /// GPUs per node.
        gpus_per_node: u32,
    },
    /// Offloading cannot hold more than the GPU already does.
    NoOffloadGain,
    /// Not even one `max_model_len` request fits the GPU cache.
    MaxModelLenDoesNotFit {
        /// Blocks one request needs.
        blocks_per_request: u64,
        /// Blocks there are.
        num_blocks: u64,
    },
    /// TP does not divide the attention heads (vLLM refuses this).
    TpDoesNotDivideHeads {
        /// TP.
        tp: u32,
        /// Query heads.
        heads: u32,
    },
    /// KV heads are replicated across ranks.
    KvReplicated {
        /// Copies of each KV head.
        copies: u32,
    },
}

/// Every number of a recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Upstream's TP rule.
    pub tp_rule: TpRule,
    /// The TP used (rule or override).
    pub tp: u32,
    /// GPU KV per rank.
    pub kv: KvSizing,
    /// LMCache CPU size per rank.
    pub offload: Offload,
    /// `--num-documents` (upstream's rule).
    pub num_documents: i64,
    /// The three regimes.
    pub regimes: Vec<Regime>,
    /// Warnings, in order.
    pub warnings: Vec<PlanWarning>,
}

/// Compute a plan.
pub fn plan(input: &PlanInput) -> Result<Plan, RecommendError> {
    let tp_rule = upstream_tp(input.model.weight_bytes, input.gpu.memory_bytes)?;
    let tp = input.tp_override.unwrap_or(tp_rule.tp);
    let kv = gpu_kv_capacity(&input.model, &input.gpu, tp, &input.knobs)?;
    let offload = upstream_offload(&kv, tp, input.cpu_ram_bytes, input.memlock_bytes);
    let num_documents = upstream_documents(offload.tokens_storable, &input.workload);
    let regimes = regimes(kv.tokens, offload.tokens_storable, &input.workload);
    let mut warnings = Vec::new();
    if let Some(n) = input.num_gpus {
        if n < tp {
            warnings.push(PlanWarning::FewerGpusThanNeeded {
                available: n,
                needed: tp,
            });
        }
    }
    if tp > input.gpus_per_node {
        warnings.push(PlanWarning::MultiNode {
            tp,
            gpus_per_node: input.gpus_per_node,
        });
    }
    if !input.model.num_attention_heads.is_multiple_of(tp) {
        warnings.push(PlanWarning::TpDoesNotDivideHeads {
            tp,
            heads: input.model.num_attention_heads,
        });
    }
    let copies = input.model.kv_replication(tp);
    if copies > 1 && !matches!(input.model.attention, ldqa_specs::AttentionKind::Mla { .. }) {
        warnings.push(PlanWarning::KvReplicated { copies });
    }
    if !kv.fits_one_request() {
        warnings.push(PlanWarning::MaxModelLenDoesNotFit {
            blocks_per_request: kv.blocks_per_request,
            num_blocks: kv.num_blocks,
        });
    }
    if offload.no_gain {
        warnings.push(PlanWarning::NoOffloadGain);
    }
    Ok(Plan {
        tp_rule,
        tp,
        kv,
        offload,
        num_documents,
        regimes,
        warnings,
    })
}
