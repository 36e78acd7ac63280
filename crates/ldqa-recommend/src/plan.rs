//! The recommendation: upstream's TP rule, GPU KV, LMCache CPU size, document counts.
//!
//! Upstream = LMCache `benchmarks/long_doc_qa/long_doc_qa_recommender.py` (reference B.9/E.8):
//! `TP = 2^ceil(log2(ceil(W / (0.9·G − 10))))`; `CPU = min(kv + 120k tokens' worth, RAM/tp,
//! memlock/tp)`; `docs = ⌊CPU_tokens / (doc + out)⌋ − 2`.
//!
//! Two departures, so that every plan printed can run: the TP size is the smallest at
//! which vLLM starts with the given knobs ([`Deployment::new`]; upstream's rule is shown
//! beside it), and host RAM is shared by the GPUs of one node (`RAM / min(TP, GPUs per
//! node)`, upstream divides by TP). A plan that cannot run or cannot show a gain is an
//! error that says what to change.

use serde::Serialize;

use crate::deployment::Deployment;
use crate::error::RecommendError;
use crate::vllm::KvSizing;

const GIB: f64 = ldqa_specs::GIB_BYTES as f64;

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
    /// Given with `--lmcache-cpu-gib`.
    Given,
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

/// Upstream's offload sizing. `ram_bytes` / `memlock_bytes` are per node, shared by
/// `gpus_sharing` GPUs; `None` = unlimited.
pub fn upstream_offload(
    kv: &KvSizing,
    gpus_sharing: u32,
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
    let tp = f64::from(gpus_sharing.max(1));
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
    offload_of(kv_gib, gib_per_1k, offload, limited_by)
}

fn offload_of(kv_gib: f64, gib_per_1k: f64, offload: f64, limited_by: OffloadLimit) -> Offload {
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

/// Upstream's document count: `int(tokens / (doc + out)) − 2`, `None` when that is
/// below 1 (the cache holds fewer than 3 documents).
pub fn upstream_documents(tokens_storable: u64, w: &Workload) -> Option<u64> {
    (tokens_storable / (w.document_length + w.output_len).max(1))
        .checked_sub(2)
        .filter(|&n| n >= 1)
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
    /// The deployment: model, GPU, TP, vLLM's knobs, GPU KV.
    pub deployment: Deployment,
    /// GPUs available (detected or `--num-gpus`); `None` when planning with as many as needed.
    pub num_gpus: Option<u32>,
    /// GPUs per node: they share the node's host RAM.
    pub gpus_per_node: u32,
    /// `LMCACHE_MAX_LOCAL_CPU_SIZE` given by the user (GiB per GPU), instead of upstream's rule.
    pub lmcache_cpu_gib: Option<f64>,
    /// Host RAM available for pinning, bytes per node.
    pub cpu_ram_bytes: Option<u64>,
    /// RLIMIT_MEMLOCK, bytes; `None` = unlimited.
    pub memlock_bytes: Option<u64>,
    /// The workload shape.
    pub workload: Workload,
    /// Instances of the deployment (replicas behind a router), 1 for one; those on one node
    /// share its host RAM.
    pub instances: u32,
    /// A remote KV tier all instances' LMCache share (none: each has its own tiers).
    pub remote: Option<RemoteSize>,
    /// The user's working set, documents (`--num-documents`), when given: a derived
    /// remote tier is sized for it.
    pub num_documents: Option<u64>,
}

/// How large the shared remote tier is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteSize {
    /// Derived by the plan ([`remote_tier`]).
    Derived,
    /// Given, GiB.
    Gib(u64),
}

/// The remote KV tier the instances share, as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemoteTier {
    /// Its size, GiB (`maxmemory` of the Redis that holds it).
    pub gib: u64,
    /// Documents of the workload's length it holds.
    pub documents: u64,
    /// Where its size came from.
    pub sized_for: RemoteBasis,
}

/// What a remote tier's size was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteBasis {
    /// The user gave it.
    Given,
    /// The user's working set (`--num-documents`).
    YourDocuments,
    /// What every instance's CPU tier holds, together: what any instance may have stored.
    CpuTiersTogether,
}

/// Headroom over the documents' KV in a derived remote tier: Redis's own per-key overhead
/// and the chunks' metadata, so that least-recently-used eviction does not start at the
/// working set's edge.
const REMOTE_HEADROOM: f64 = 1.1;

/// The remote tier `input` asks for (`None`: none, or one instance), sized from the
/// offload's KV bytes per token: a whole document (+ output, as upstream counts one) on
/// every rank of an instance, for each document it must hold.
pub fn remote_tier(input: &PlanInput, offload: &Offload) -> Option<RemoteTier> {
    let w = &input.workload;
    let per_document_gib = (w.document_length + w.output_len) as f64 / 1000.0
        * offload.gib_per_1k_tokens
        * f64::from(input.deployment.tp.max(1));
    let documents_in = |gib: f64| (gib / per_document_gib.max(f64::MIN_POSITIVE)) as u64;
    match input.remote? {
        _ if input.instances < 2 => None,
        RemoteSize::Gib(gib) => Some(RemoteTier {
            gib,
            documents: documents_in(gib as f64),
            sized_for: RemoteBasis::Given,
        }),
        RemoteSize::Derived => {
            let (documents, sized_for) = match input.num_documents {
                Some(n) => (n, RemoteBasis::YourDocuments),
                None => {
                    let one = offload.tokens_storable / (w.document_length + w.output_len).max(1);
                    (
                        one * u64::from(input.instances),
                        RemoteBasis::CpuTiersTogether,
                    )
                }
            };
            let gib = (documents as f64 * per_document_gib * REMOTE_HEADROOM).ceil() as u64;
            Some(RemoteTier {
                gib: gib.max(1),
                documents,
                sized_for,
            })
        }
    }
}

impl PlanInput {
    /// Instances on one node: as many as its GPUs hold at this TP (at least 1).
    pub fn instances_per_node(&self) -> u32 {
        let per_node = (self.gpus_per_node / self.deployment.tp.max(1)).max(1);
        self.instances.clamp(1, per_node)
    }

    /// GPUs of one node that pin LMCache's host memory: every rank of its instances.
    pub fn gpus_pinning_per_node(&self) -> u32 {
        self.deployment.tp.min(self.gpus_per_node.max(1)) * self.instances_per_node()
    }
}

/// A typed warning, printed after the results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanWarning {
    /// TP exceeds one node.
    MultiNode {
        /// TP.
        tp: u32,
        /// GPUs per node.
        gpus_per_node: u32,
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
    /// Upstream's TP rule, for comparison (`None` when the GPU is below its 10 GiB floor).
    pub tp_rule: Option<TpRule>,
    /// The TP used: given, or the smallest at which vLLM starts.
    pub tp: u32,
    /// GPU KV per rank.
    pub kv: KvSizing,
    /// LMCache CPU size per rank.
    pub offload: Offload,
    /// `--num-documents` (upstream's rule), at least 1.
    pub num_documents: u64,
    /// The three regimes.
    pub regimes: Vec<Regime>,
    /// The remote tier the instances share, if one was asked for.
    pub remote: Option<RemoteTier>,
    /// Warnings, in order.
    pub warnings: Vec<PlanWarning>,
}

/// Compute a plan; an error when it could not run or could not show LMCache's gain.
pub fn plan(input: &PlanInput) -> Result<Plan, RecommendError> {
    let d = &input.deployment;
    let (tp, kv, w) = (d.tp, &d.kv, &input.workload);
    check_fits(input)?;
    if let Some(n) = input.num_gpus {
        let needed = u64::from(input.instances.max(1)) * u64::from(tp);
        if needed > u64::from(n) {
            return Err(RecommendError::Undeployable {
                reason: format!(
                    "{} instances at TP {tp} need {needed} GPUs; {n} available",
                    input.instances
                ),
                fix: "pass fewer --instances, or --num-gpus for the cluster you plan for",
            });
        }
    }
    let offload = match input.lmcache_cpu_gib {
        Some(gib) => given_offload(kv, gib),
        None => upstream_offload(
            kv,
            input.gpus_pinning_per_node(),
            input.cpu_ram_bytes,
            input.memlock_bytes,
        ),
    };
    if offload.no_gain {
        return Err(no_gain(&offload));
    }
    let num_documents = upstream_documents(offload.tokens_storable, w).ok_or_else(|| {
        RecommendError::Undeployable {
            reason: format!(
                "the caches hold {} tokens, fewer than 3 documents of {} + {} tokens",
                offload.tokens_storable, w.document_length, w.output_len
            ),
            fix: "shorten --document-length, or give LMCache more memory",
        }
    })?;
    Ok(Plan {
        tp_rule: upstream_tp(d.model.weight_bytes, d.gpu.memory_bytes).ok(),
        tp,
        kv: kv.clone(),
        regimes: regimes(kv.tokens, offload.tokens_storable, w),
        remote: remote_tier(input, &offload),
        offload,
        num_documents,
        warnings: warnings(input),
    })
}

/// The deployment fits the machine and one request fits the context.
fn check_fits(input: &PlanInput) -> Result<(), RecommendError> {
    let d = &input.deployment;
    if let Some(n) = input.num_gpus {
        if n < d.tp {
            return Err(RecommendError::Undeployable {
                reason: format!("TP {} needs {} GPUs but {n} are available", d.tp, d.tp),
                fix: "pass --num-gpus for the machine you plan for, or choose a smaller model or a larger GPU",
            });
        }
    }
    let w = &input.workload;
    let request = w.document_length + w.output_len;
    if request > d.kv.max_model_len {
        return Err(RecommendError::Undeployable {
            reason: format!(
                "a request of {} + {} tokens exceeds max_model_len {} tokens (vLLM answers it with HTTP 400)",
                w.document_length, w.output_len, d.kv.max_model_len
            ),
            fix: "shorten --document-length or --output-len, or raise --max-model-len up to the model's maximum",
        });
    }
    Ok(())
}

fn given_offload(kv: &KvSizing, gib: f64) -> Offload {
    let reference = upstream_offload(kv, 1, None, None);
    offload_of(
        reference.kv_gib_per_gpu,
        reference.gib_per_1k_tokens,
        gib,
        OffloadLimit::Given,
    )
}

fn no_gain(o: &Offload) -> RecommendError {
    let what = match o.limited_by {
        OffloadLimit::HostRam => "host RAM caps",
        OffloadLimit::Memlock => "RLIMIT_MEMLOCK caps",
        OffloadLimit::Given | OffloadLimit::Formula => "--lmcache-cpu-gib sets",
    };
    RecommendError::Undeployable {
        reason: format!(
            "{what} LMCache's CPU cache at {:.2} GiB per GPU, no more than the GPU KV cache already holds ({:.2} GiB): LMCache cannot help (upstream aborts here too)",
            o.offload_gib, o.kv_gib_per_gpu
        ),
        fix: "pass --cpu-ram-gib with the target machine's host RAM per node (or raise ulimit -l)",
    }
}

fn warnings(input: &PlanInput) -> Vec<PlanWarning> {
    let d = &input.deployment;
    let mut out = Vec::new();
    if d.tp > input.gpus_per_node {
        out.push(PlanWarning::MultiNode {
            tp: d.tp,
            gpus_per_node: input.gpus_per_node,
        });
    }
    let copies = d.model.kv_replication(d.tp);
    if copies > 1 && !matches!(d.model.attention, ldqa_specs::AttentionKind::Mla { .. }) {
        out.push(PlanWarning::KvReplicated { copies });
    }
    out
}
