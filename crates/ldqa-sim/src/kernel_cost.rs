//! The forward pass from a GPU's measured kernel curves ([`crate::kernels`]), per TP rank:
//!
//! - linear layers: per layer the four GEMMs of a dense transformer (QKV, output, gate-up,
//!   down; the shapes split by TP), each at its speed of light
//!   `max(2mnk / peak FLOP/s, 2(mk + kn + mn) bytes / HBM)` over the measured utilisation
//!   at `m` = tokens in the step; scaled by the model's linear parameters over the four
//!   GEMMs' (1 for a dense model; a mixture of experts' active experts otherwise);
//! - the LM head, the same way, at `m` = sequences sampled;
//! - prefill attention: its FLOPs (`4·heads·head_dim·Σcontext` per layer) at the
//!   utilisation measured for a prompt of the chunk's effective length
//!   (`√(2·Σcontext / chunks)`: the length whose full prefill does the same work);
//! - decode attention: the KV bytes it reads at the utilisation measured for that many
//!   bytes per layer;
//! - elementwise work the tables leave out (norms, RoPE, the activation): its bytes at 80 %
//!   of HBM bandwidth, the factor AIConfigurator applies to its own analytic elementwise ops
//!   (`mem_bw_empirical_scaling_factor` in its system files).
//!
//! Fixed costs (scheduling, launch, sampling) are not in kernel tables: the step overhead
//! stays fitted ([`crate::Efficiencies::step_overhead_ns`]).

use std::sync::Arc;

use crate::cost::StepWork;
use crate::kernels::{Curve, KernelCurves};
use crate::EngineConfig;

/// Fraction of HBM bandwidth that elementwise kernels reach (see the module docs).
const ELEMENTWISE_HBM_FRACTION: f64 = 0.8;

/// One GEMM's `(n, k)` per rank.
type Shape = (f64, f64);

/// A GEMM of one shape, and its measured utilisation against `m`.
#[derive(Debug, Clone)]
struct Gemm {
    shape: Shape,
    util: Curve,
}

/// Constants of one configuration's forward pass.
#[derive(Debug, Clone)]
pub struct KernelCost {
    curves: Arc<KernelCurves>,
    flops_per_ns: f64,
    hbm_bytes_per_ns: f64,
    layers: f64,
    linear: [Gemm; 4],
    linear_scale: f64,
    lm_head: Gemm,
    attention_flops_per_context: f64,
    context_attention: Curve,
    kv_bytes_token_layer: f64,
    elementwise_ns_per_token: f64,
}

impl KernelCost {
    /// The pass of `config` on the GPU that `curves` were measured on.
    pub fn new(config: &EngineConfig, curves: Arc<KernelCurves>) -> Self {
        let m = &config.model;
        let tp = f64::from(config.tp);
        let hidden = f64::from(m.hidden);
        let q = f64::from(m.heads) * f64::from(m.head_dim);
        let kv = f64::from(m.kv_heads) * f64::from(m.head_dim);
        let inter = f64::from(m.intermediate);
        let layers = f64::from(m.layers);
        let shapes = [
            ((q + 2.0 * kv) / tp, hidden),
            (hidden, q / tp),
            (2.0 * inter / tp, hidden),
            (hidden, inter / tp),
        ];
        let dense_params: f64 = shapes.iter().map(|(n, k)| n * k).sum::<f64>() * tp * layers;
        let gemm = |shape: Shape| Gemm {
            shape,
            util: curves.gemm.curve(shape.0 * shape.1),
        };
        let linear_scale = if dense_params > 0.0 {
            m.linear_params() as f64 / dense_params
        } else {
            1.0
        };
        let hbm_bytes_per_ns = curves.hbm_gb_per_s;
        let bytes = f64::from(m.activation_bytes);
        // Per layer and token: two norms (read and write the hidden state, plus the
        // residual add), RoPE on the rank's queries and keys, the activation (read gate
        // and up, write one).
        let elementwise_bytes =
            layers * bytes * (4.0 * hidden + 2.0 * (q + kv) / tp + 3.0 * inter / tp);
        KernelCost {
            flops_per_ns: curves.peak_tflops * 1e3,
            hbm_bytes_per_ns,
            layers,
            linear: shapes.map(gemm),
            linear_scale,
            lm_head: gemm((f64::from(m.vocab) / tp, hidden)),
            attention_flops_per_context: 4.0 * layers * q / tp,
            context_attention: curves.context_attention.curve(f64::from(m.heads) / tp),
            kv_bytes_token_layer: config.kv_bytes_per_token_per_rank() as f64 / layers,
            elementwise_ns_per_token: elementwise_bytes
                / (hbm_bytes_per_ns * ELEMENTWISE_HBM_FRACTION),
            curves,
        }
    }

    /// Time of an `m × k` by `k × n` GEMM in bf16: its speed of light over the utilisation
    /// measured for its shape at `m`.
    fn gemm_ns(&self, m: f64, g: &Gemm) -> f64 {
        let (n, k) = g.shape;
        let compute = 2.0 * m * n * k / self.flops_per_ns;
        let memory = 2.0 * (m * k + k * n + m * n) / self.hbm_bytes_per_ns;
        compute.max(memory) / g.util.at(m)
    }

    /// The forward pass of a step doing `w`, nanoseconds.
    pub fn pass_ns(&self, w: &StepWork) -> f64 {
        let mut ns = 0.0;
        if w.tokens > 0 {
            let m = w.tokens as f64;
            let linear: f64 = self.linear.iter().map(|g| self.gemm_ns(m, g)).sum();
            ns += self.layers * self.linear_scale * linear;
            ns += self.elementwise_ns_per_token * m;
        }
        if w.sampled > 0 {
            let m = w.sampled as f64;
            ns += self.gemm_ns(m, &self.lm_head);
        }
        if w.prefill_sequences > 0 && w.prefill_context_sum > 0 {
            let sum = w.prefill_context_sum as f64;
            let length = (2.0 * sum / w.prefill_sequences as f64).sqrt();
            let sol = self.attention_flops_per_context * sum / self.flops_per_ns;
            ns += sol / self.context_attention.at(length);
        }
        if w.decode_context_tokens > 0 {
            let per_layer = self.kv_bytes_token_layer * w.decode_context_tokens as f64;
            let sol = self.layers * per_layer / self.hbm_bytes_per_ns;
            ns += sol / self.curves.generation_attention.at(per_layer);
        }
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Curve, Surface};

    fn flat(util: f64) -> Curve {
        Curve::try_from(vec![[1.0, util]]).unwrap()
    }

    /// Curves at one utilisation everywhere, on the H100's peaks.
    fn curves(util: f64) -> Arc<KernelCurves> {
        Arc::new(KernelCurves {
            peak_tflops: 989.0,
            hbm_gb_per_s: 3350.0,
            gemm: Surface::try_from(vec![(1.0, flat(util))]).unwrap(),
            context_attention: Surface::try_from(vec![(1.0, flat(util))]).unwrap(),
            generation_attention: flat(util),
            allreduce: Default::default(),
        })
    }

    fn llama8b() -> EngineConfig {
        crate::seed::llama8b_h100().vllm.config
    }

    #[test]
    fn a_decode_step_reads_the_weights_at_the_measured_utilisation() {
        let config = llama8b();
        let w = StepWork {
            sequences: 1,
            tokens: 1,
            sampled: 1,
            decode_context_tokens: 1000,
            ..StepWork::default()
        };
        let at = |util: f64| KernelCost::new(&config, curves(util)).pass_ns(&w);
        // Half the utilisation: twice the kernel time; the elementwise part does not move.
        let elementwise = at(1.0) * 2.0 - at(0.5);
        assert!(
            elementwise > 0.0 && elementwise < 0.05 * at(1.0),
            "{elementwise}"
        );
        // One token's GEMMs read every weight once but the input embedding table (only
        // its row is looked up): 15 GB of Llama-3.1-8B's 16 at 3.35 TB/s.
        let m = &config.model;
        let embedding = 2 * u64::from(m.vocab) * u64::from(m.hidden);
        let weights_ns = (m.weight_bytes - embedding) as f64 / 3350.0;
        let ratio = (at(1.0) - elementwise) / weights_ns;
        assert!((0.95..1.05).contains(&ratio), "{ratio}");
    }

    #[test]
    fn prefill_attention_grows_with_the_square_of_the_chunk() {
        let cost = KernelCost::new(&llama8b(), curves(0.5));
        let prefill = |n: u64| {
            cost.pass_ns(&StepWork {
                sequences: 1,
                tokens: n,
                prefill_sequences: 1,
                prefill_context_sum: crate::cost::context_sum(0, n),
                ..StepWork::default()
            })
        };
        let attention = |n: u64| {
            let linear_only = cost.pass_ns(&StepWork {
                sequences: 1,
                tokens: n,
                ..StepWork::default()
            });
            prefill(n) - linear_only
        };
        let ratio = attention(8000) / attention(4000);
        assert!((3.9..4.1).contains(&ratio), "{ratio}");
    }
}
