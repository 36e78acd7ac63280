//! [`GpuSpec`]: memory, bandwidth, compute and host link of one accelerator.

use serde::{Deserialize, Serialize};

/// Which vLLM batch defaults apply (vllm `EngineArgs.get_batch_defaults`, reference A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuClass {
    /// At least 70 GiB and not an A100 (H100, H200, B200, MI300X): `max_num_seqs` 1024 and
    /// `max_num_batched_tokens` 16384 (`LLM` class) / 8192 (`vllm serve`).
    Large,
    /// Everything else, A100 included: 256 sequences, 8192 / 2048 tokens.
    Standard,
}

/// One accelerator model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSpec {
    /// Catalog name (`h100-80gb`).
    pub name: String,
    /// Marketing name.
    pub description: String,
    /// Total memory as `torch.cuda.mem_get_info()` reports it, in bytes.
    pub memory_bytes: u64,
    /// Peak HBM/GDDR bandwidth, bytes per second.
    pub hbm_bytes_per_s: u64,
    /// Dense BF16 tensor throughput, FLOP per second.
    pub bf16_flops: u64,
    /// Host link (PCIe) bandwidth per direction, bytes per second.
    pub host_link_bytes_per_s: u64,
    /// Whether the GPUs of one node talk over NVSwitch (NCCL then sets up NVLS buffers).
    pub nvswitch: bool,
    /// NVLink bandwidth per direction per GPU, bytes per second (half the datasheet's
    /// bidirectional figure); `None` without NVSwitch, where all-reduce goes over PCIe.
    #[serde(default)]
    pub nvlink_bytes_per_s: Option<u64>,
}

impl GpuSpec {
    /// The class that selects vLLM's batch defaults.
    pub fn class(&self) -> GpuClass {
        let gib = self.memory_bytes as f64 / GIB;
        if gib >= 70.0 && !self.name.starts_with("a100") && !self.description.contains("A100") {
            GpuClass::Large
        } else {
            GpuClass::Standard
        }
    }

    /// Memory in GiB (2³⁰ bytes).
    pub fn memory_gib(&self) -> f64 {
        self.memory_bytes as f64 / GIB
    }

    /// A GPU that is not in the catalog, known only by its memory (from NVML or `--gpu-memory-gib`).
    /// Bandwidth and compute are unknown (zero).
    pub fn custom(name: &str, memory_bytes: u64) -> GpuSpec {
        GpuSpec {
            name: name.to_string(),
            description: name.to_string(),
            memory_bytes,
            hbm_bytes_per_s: 0,
            bf16_flops: 0,
            host_link_bytes_per_s: 0,
            nvswitch: false,
            nvlink_bytes_per_s: None,
        }
    }
}

/// Bytes in a GiB (2³⁰), the unit of memory sizes in flags, logs and the catalog. The
/// one definition: other crates take it from here.
pub const GIB_BYTES: u64 = 1 << 30;
const GIB: f64 = GIB_BYTES as f64;

/// One GPU entry as stored in `data/gpus.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GpuEntry {
    pub name: String,
    pub aliases: Vec<String>,
    pub description: String,
    pub torch_memory_gib: f64,
    pub hbm_gb_per_s: f64,
    pub bf16_dense_tflops: f64,
    pub host_link_gb_per_s_per_direction: f64,
    pub nvswitch: bool,
    pub nvlink_gb_per_s_per_direction: Option<f64>,
    pub nvml_names: Vec<String>,
}

impl GpuEntry {
    pub fn spec(&self) -> GpuSpec {
        GpuSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            memory_bytes: (self.torch_memory_gib * GIB).round() as u64,
            hbm_bytes_per_s: (self.hbm_gb_per_s * 1e9).round() as u64,
            bf16_flops: (self.bf16_dense_tflops * 1e12).round() as u64,
            host_link_bytes_per_s: (self.host_link_gb_per_s_per_direction * 1e9).round() as u64,
            nvswitch: self.nvswitch,
            nvlink_bytes_per_s: self
                .nvlink_gb_per_s_per_direction
                .map(|gb| (gb * 1e9).round() as u64),
        }
    }
}
