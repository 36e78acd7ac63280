//! Fitted efficiencies, loaded from `data/efficiencies.json` (embedded at build time).
//!
//! One set per GPU, the same for every model, TP size and mode on that GPU: no
//! per-scenario factors. The file gives each value's meaning and evidence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The embedded data file.
pub const EFFICIENCIES_JSON: &str = include_str!("../data/efficiencies.json");

/// The efficiencies of one GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Efficiencies {
    /// Fraction of the dense peak FLOP/s reached (matmuls and attention).
    pub compute_efficiency: f64,
    /// Fraction of HBM bandwidth reached.
    pub memory_efficiency: f64,
    /// Fraction of per-direction NVLink bandwidth reached by all-reduce.
    pub interconnect_efficiency: f64,
    /// Fraction of per-direction PCIe bandwidth reached by LMCache retrieve.
    pub host_load_efficiency: f64,
    /// Fraction of per-direction PCIe bandwidth reached by LMCache store.
    pub host_store_efficiency: f64,
    /// Fixed cost of one engine step.
    pub step_overhead_ns: u64,
    /// Latency of one all-reduce.
    pub allreduce_latency_ns: u64,
    /// Fixed cost per LMCache chunk moved (retrieve or store).
    pub lmcache_chunk_overhead_ns: u64,
    /// Front-end cost per request before it reaches the engine.
    pub frontend_request_ns: u64,
    /// Front-end tokenisation cost per prompt token.
    pub frontend_ns_per_prompt_token: u64,
    /// A step cost measured on a server (`ldqa calibrate`'s profile): when set, it replaces
    /// the roofline of peaks × efficiencies above for the forward pass.
    #[serde(default)]
    pub linear_cost: Option<crate::profile::LinearCost>,
    /// The GPU's measured kernel curves: when set (and no `linear_cost`), the forward pass
    /// follows them instead of the fractions of peak above ([`crate::kernel_cost`]).
    #[serde(skip)]
    pub kernels: Option<std::sync::Arc<crate::kernels::KernelCurves>>,
}

#[derive(Deserialize)]
struct Documented<T> {
    value: T,
    #[allow(dead_code)]
    meaning: String,
    #[allow(dead_code)]
    source: String,
}

#[derive(Deserialize)]
struct GpuEntry {
    compute_efficiency: Documented<f64>,
    memory_efficiency: Documented<f64>,
    interconnect_efficiency: Documented<f64>,
    host_load_efficiency: Documented<f64>,
    host_store_efficiency: Documented<f64>,
    step_overhead_ns: Documented<u64>,
    allreduce_latency_ns: Documented<u64>,
    lmcache_chunk_overhead_ns: Documented<u64>,
    frontend_request_ns: Documented<u64>,
    frontend_ns_per_prompt_token: Documented<u64>,
}

/// The fixed costs that kernel tables leave out, fitted with the kernel curves.
#[derive(Deserialize)]
struct KernelFixedCosts {
    #[allow(dead_code)]
    about: String,
    fitted_on: String,
    host_load_efficiency: Documented<f64>,
    host_store_efficiency: Documented<f64>,
    step_overhead_ns: Documented<u64>,
    lmcache_chunk_overhead_ns: Documented<u64>,
    frontend_request_ns: Documented<u64>,
    frontend_ns_per_prompt_token: Documented<u64>,
}

#[derive(Deserialize)]
struct DataFile {
    #[allow(dead_code)]
    schema_version: u32,
    gpus: BTreeMap<String, GpuEntry>,
    with_kernel_tables: KernelFixedCosts,
}

impl Efficiencies {
    /// The efficiencies of `gpu` from the embedded data file.
    pub fn for_gpu(gpu: &str) -> Result<Self, SimError> {
        Self::from_json(EFFICIENCIES_JSON, gpu)
    }

    /// The GPUs the embedded data file has efficiencies for.
    pub fn known_gpus() -> Vec<String> {
        serde_json::from_str::<DataFile>(EFFICIENCIES_JSON)
            .map(|d| d.gpus.into_keys().collect())
            .unwrap_or_default()
    }

    /// The efficiencies of `gpu` from a data file's text.
    pub fn from_json(json: &str, gpu: &str) -> Result<Self, SimError> {
        let data: DataFile = serde_json::from_str(json)?;
        let e = data
            .gpus
            .get(gpu)
            .ok_or_else(|| SimError::UnknownGpu(gpu.to_string()))?;
        let out = Efficiencies {
            compute_efficiency: e.compute_efficiency.value,
            memory_efficiency: e.memory_efficiency.value,
            interconnect_efficiency: e.interconnect_efficiency.value,
            host_load_efficiency: e.host_load_efficiency.value,
            host_store_efficiency: e.host_store_efficiency.value,
            step_overhead_ns: e.step_overhead_ns.value,
            allreduce_latency_ns: e.allreduce_latency_ns.value,
            lmcache_chunk_overhead_ns: e.lmcache_chunk_overhead_ns.value,
            frontend_request_ns: e.frontend_request_ns.value,
            frontend_ns_per_prompt_token: e.frontend_ns_per_prompt_token.value,
            linear_cost: None,
            kernels: None,
        };
        out.validate()?;
        Ok(out)
    }

    /// The set a GPU with measured kernel `curves` runs with: the curves for the forward
    /// pass, the fixed costs fitted with them (`with_kernel_tables` in the data file), and
    /// the fitted GPU's all-reduce fallback for TP sizes the tables lack.
    pub fn with_kernels(
        curves: std::sync::Arc<crate::kernels::KernelCurves>,
    ) -> Result<Self, SimError> {
        let data: DataFile = serde_json::from_str(EFFICIENCIES_JSON)?;
        let k = &data.with_kernel_tables;
        let base = Self::from_json(EFFICIENCIES_JSON, &k.fitted_on)?;
        let out = Efficiencies {
            host_load_efficiency: k.host_load_efficiency.value,
            host_store_efficiency: k.host_store_efficiency.value,
            step_overhead_ns: k.step_overhead_ns.value,
            lmcache_chunk_overhead_ns: k.lmcache_chunk_overhead_ns.value,
            frontend_request_ns: k.frontend_request_ns.value,
            frontend_ns_per_prompt_token: k.frontend_ns_per_prompt_token.value,
            kernels: Some(curves),
            ..base
        };
        out.validate()?;
        Ok(out)
    }

    /// Every fraction must lie in (0, 1].
    pub fn validate(&self) -> Result<(), SimError> {
        for (v, field) in [
            (self.compute_efficiency, "compute_efficiency"),
            (self.memory_efficiency, "memory_efficiency"),
            (self.interconnect_efficiency, "interconnect_efficiency"),
            (self.host_load_efficiency, "host_load_efficiency"),
            (self.host_store_efficiency, "host_store_efficiency"),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(SimError::InvalidConfig {
                    field,
                    reason: format!("{v} is not in (0, 1]"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_has_h100() {
        let e = Efficiencies::for_gpu("h100-80gb").unwrap();
        assert!(e.compute_efficiency > 0.0);
        assert!(Efficiencies::known_gpus().contains(&"h100-80gb".to_string()));
    }

    #[test]
    fn unknown_gpu_is_an_error() {
        assert!(matches!(
            Efficiencies::for_gpu("nope"),
            Err(SimError::UnknownGpu(_))
        ));
    }
}
