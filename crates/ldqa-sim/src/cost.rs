//! The cost of one engine step.
//!
//! `step = overhead + load + forward pass + all-reduce + store`, per TP rank, where the
//! forward pass is one of three models ([`Pass`]):
//! - kernel curves measured on the GPU ([`crate::kernel_cost`], the default where
//!   `data/kernels/` covers the GPU): each part of the pass at its measured utilisation
//!   for its size;
//! - a roofline at fitted fractions of peak: `max(compute, memory)`, with
//!   compute = FLOPs / (peak × compute_efficiency),
//!   FLOPs = 2·linear_params·tokens + 2·lm_head_params·sampled + 4·L·heads·head_dim·Σcontext,
//!   divided by TP (reference D, "Roofline hints"), and
//!   memory = (weights/TP + KV read + KV written) / (HBM × memory_efficiency);
//! - step costs measured end to end on a server (`ldqa calibrate`).
//!
//! All-reduce: 2·L all-reduces of tokens × hidden activations, from the GPU's measured
//! table, or a ring (2·(TP−1)/TP of the payload over NVLink) plus a latency each. LMCache
//! load and store are blocking within the step (reference B.4, B.5) and move bytes over
//! the host link plus a fixed cost per chunk.

use crate::kernel_cost::KernelCost;
use crate::kernels::AllReduce;
use crate::{Efficiencies, EngineConfig};

/// What one step does, summed over the scheduled requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepWork {
    /// Requests scheduled in the step.
    pub sequences: u64,
    /// Tokens run through the model (prefill chunks plus one per decode).
    pub tokens: u64,
    /// Positions whose logits are computed (one per request that samples this step).
    pub sampled: u64,
    /// Σ over scheduled tokens of the context each attends to (its position + 1).
    pub attention_context_sum: u64,
    /// Requests computing more than one token (prefill chunks).
    pub prefill_sequences: u64,
    /// The part of `attention_context_sum` from prefill chunks.
    pub prefill_context_sum: u64,
    /// Tokens of context the decoding requests (one token each) attend to.
    pub decode_context_tokens: u64,
    /// Tokens of KV read from HBM (the existing context of each scheduled request).
    pub kv_read_tokens: u64,
    /// Tokens loaded from the LMCache CPU tier before the forward pass.
    pub load_tokens: u64,
    /// Chunks those tokens span.
    pub load_chunks: u64,
    /// Tokens stored to the LMCache CPU tier after the forward pass.
    pub store_tokens: u64,
    /// Chunks stored.
    pub store_chunks: u64,
    /// Time waiting for chunks from a shared remote tier before the forward pass (the
    /// link's queue decides it, not the cost model: added to the step as it is).
    pub remote_wait_ns: u64,
}

/// The parts of a step's cost, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepCost {
    /// The forward pass (roofline: its matrix work at the fitted fraction of peak FLOP/s).
    pub compute_ns: f64,
    /// Roofline only: weights and KV read at the fitted fraction of HBM bandwidth.
    pub memory_ns: f64,
    /// Tensor-parallel all-reduces (latency plus payload over the interconnect).
    pub allreduce_ns: f64,
    /// LMCache chunks loaded from CPU over the host link.
    pub load_ns: f64,
    /// LMCache chunks stored to CPU over the host link.
    pub store_ns: f64,
    /// Fixed per-step CPU cost (scheduling, launch).
    pub overhead_ns: f64,
}

impl StepCost {
    /// The whole step, rounded to the nanosecond.
    pub fn total_ns(&self) -> u64 {
        let t = self.overhead_ns
            + self.load_ns
            + self.compute_ns.max(self.memory_ns)
            + self.allreduce_ns
            + self.store_ns;
        t.round().max(1.0) as u64
    }
}

/// The forward pass's model.
#[derive(Debug, Clone)]
enum Pass {
    /// Fractions of peak.
    Roofline(Roofline),
    /// The GPU's measured kernel curves.
    Kernels(Box<KernelCost>),
    /// Step costs measured end to end on a server; `step_ns` is the step's fixed cost.
    Measured(crate::profile::LinearCost),
}

/// The roofline at fitted fractions of peak.
#[derive(Debug, Clone)]
struct Roofline {
    linear_flops_per_token: f64,
    lm_head_flops_per_sample: f64,
    attention_flops_per_context: f64,
    flops_per_ns: f64,
    weight_bytes_rank: f64,
    kv_bytes_token_rank: f64,
    hbm_bytes_per_ns: f64,
}

impl Roofline {
    fn new(config: &EngineConfig, eff: &Efficiencies) -> Self {
        let m = &config.model;
        let tp = f64::from(config.tp);
        let g = &config.gpu;
        Roofline {
            linear_flops_per_token: 2.0 * m.linear_params() as f64 / tp,
            lm_head_flops_per_sample: 2.0 * m.lm_head_params() as f64 / tp,
            attention_flops_per_context: 4.0
                * f64::from(m.layers)
                * f64::from(m.heads)
                * f64::from(m.head_dim)
                / tp,
            flops_per_ns: g.flops * eff.compute_efficiency / 1e9,
            weight_bytes_rank: m.weight_bytes as f64 / tp,
            kv_bytes_token_rank: config.kv_bytes_per_token_per_rank() as f64,
            hbm_bytes_per_ns: g.hbm_bytes_per_s * eff.memory_efficiency / 1e9,
        }
    }

    /// (compute, memory) of the pass.
    fn pass_ns(&self, w: &StepWork) -> (f64, f64) {
        let flops = self.linear_flops_per_token * w.tokens as f64
            + self.lm_head_flops_per_sample * w.sampled as f64
            + self.attention_flops_per_context * w.attention_context_sum as f64;
        let bytes = self.weight_bytes_rank
            + self.kv_bytes_token_rank * (w.kv_read_tokens + w.tokens) as f64;
        (flops / self.flops_per_ns, bytes / self.hbm_bytes_per_ns)
    }
}

/// Tensor-parallel all-reduces: two per layer of `tokens × hidden` activations.
#[derive(Debug, Clone)]
struct AllReduces {
    count: f64,
    bytes_per_token: f64,
    /// The GPU's measured table for this TP size, if it has one.
    measured: Option<AllReduce>,
    ring_factor: f64,
    nvlink_bytes_per_ns: f64,
    latency_ns: f64,
}

impl AllReduces {
    fn new(config: &EngineConfig, eff: &Efficiencies) -> Self {
        let m = &config.model;
        let tp = f64::from(config.tp);
        AllReduces {
            count: if config.tp > 1 {
                2.0 * f64::from(m.layers)
            } else {
                0.0
            },
            bytes_per_token: f64::from(m.hidden) * f64::from(m.activation_bytes),
            measured: eff
                .kernels
                .as_ref()
                .and_then(|k| k.allreduce.get(&config.tp.to_string()).cloned()),
            ring_factor: 2.0 * (tp - 1.0) / tp,
            nvlink_bytes_per_ns: config.gpu.interconnect_bytes_per_s * eff.interconnect_efficiency
                / 1e9,
            latency_ns: eff.allreduce_latency_ns as f64,
        }
    }

    fn ns(&self, tokens: u64) -> f64 {
        if self.count == 0.0 || tokens == 0 {
            return 0.0;
        }
        let payload = self.bytes_per_token * tokens as f64;
        let one = match &self.measured {
            Some(table) => table.ns(payload),
            None => self.latency_ns + self.ring_factor * payload / self.nvlink_bytes_per_ns,
        };
        self.count * one
    }
}

/// Precomputed constants of the cost model for one configuration.
#[derive(Debug, Clone)]
pub struct CostModel {
    pass: Pass,
    allreduce: AllReduces,
    kv_bytes_token_rank: f64,
    load_bytes_per_ns: f64,
    store_bytes_per_ns: f64,
    chunk_overhead_ns: f64,
    step_overhead_ns: f64,
}

impl CostModel {
    /// Builds the model for `config` with `eff`: a measured step cost when `eff` has one,
    /// else the kernel curves when it has them, else the roofline.
    pub fn new(config: &EngineConfig, eff: &Efficiencies) -> Self {
        let g = &config.gpu;
        let pass = match (&eff.linear_cost, &eff.kernels) {
            (Some(m), _) => Pass::Measured(*m),
            (None, Some(k)) => Pass::Kernels(Box::new(KernelCost::new(config, k.clone()))),
            (None, None) => Pass::Roofline(Roofline::new(config, eff)),
        };
        let step_overhead_ns = match &pass {
            Pass::Measured(m) => m.step_ns,
            _ => eff.step_overhead_ns as f64,
        };
        CostModel {
            pass,
            allreduce: AllReduces::new(config, eff),
            kv_bytes_token_rank: config.kv_bytes_per_token_per_rank() as f64,
            load_bytes_per_ns: g.host_link_bytes_per_s * eff.host_load_efficiency / 1e9,
            store_bytes_per_ns: g.host_link_bytes_per_s * eff.host_store_efficiency / 1e9,
            chunk_overhead_ns: eff.lmcache_chunk_overhead_ns as f64,
            step_overhead_ns,
        }
    }

    /// The cost of a step doing `w`.
    pub fn step_cost(&self, w: &StepWork) -> StepCost {
        let (compute_ns, memory_ns) = match &self.pass {
            Pass::Roofline(r) => r.pass_ns(w),
            Pass::Kernels(k) => (k.pass_ns(w), 0.0),
            Pass::Measured(m) => (
                m.step(
                    w.sequences,
                    w.tokens,
                    w.prefill_context_sum,
                    w.decode_context_tokens,
                ) - m.step_ns,
                0.0,
            ),
        };
        let transfer = |tokens: u64, chunks: u64, bytes_per_ns: f64| {
            if tokens == 0 {
                return 0.0;
            }
            tokens as f64 * self.kv_bytes_token_rank / bytes_per_ns
                + chunks as f64 * self.chunk_overhead_ns
        };
        StepCost {
            compute_ns,
            memory_ns,
            allreduce_ns: self.allreduce.ns(w.tokens),
            load_ns: transfer(w.load_tokens, w.load_chunks, self.load_bytes_per_ns),
            store_ns: transfer(w.store_tokens, w.store_chunks, self.store_bytes_per_ns),
            overhead_ns: self.step_overhead_ns,
        }
    }
}

/// Σ_{p=start}^{end−1} (p + 1): the attention context summed over positions `start..end`.
pub fn context_sum(start: u64, end: u64) -> u64 {
    if end <= start {
        return 0;
    }
    // Σ_{k=start+1}^{end} k = (end(end+1) − start(start+1)) / 2
    (end * (end + 1) - start * (start + 1)) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_sum_matches_a_loop() {
        for (a, b) in [(0u64, 0u64), (0, 1), (0, 10), (5, 17), (100, 8292)] {
            let looped: u64 = (a..b).map(|p| p + 1).sum();
            assert_eq!(context_sum(a, b), looped);
        }
        assert_eq!(context_sum(10, 5), 0);
    }

    #[test]
    fn total_takes_the_roofline_max() {
        let c = StepCost {
            compute_ns: 10.0,
            memory_ns: 30.0,
            allreduce_ns: 1.0,
            load_ns: 2.0,
            store_ns: 3.0,
            overhead_ns: 4.0,
        };
        assert_eq!(c.total_ns(), 40);
    }
}
