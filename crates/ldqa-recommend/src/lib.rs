//! Deployment recommender: TP, GPU KV cache sizing the way vLLM does it, LMCache CPU offload size, workload.
//!
//! Layout: [`vllm`] (KV sizing per vLLM era: [`gpu_kv_capacity`] → [`KvSizing`]), [`plan`]
//! (upstream's TP, offload and document rules, three regimes, warnings), [`hardware`] (NVML via
//! dlopen, `nvidia-smi`, `/proc/meminfo`, `RLIMIT_MEMLOCK`), [`render`] (the seed's three blocks).
//!
//! ```
//! use ldqa_recommend::{gpu_kv_capacity, VllmKnobs};
//! let m = ldqa_specs::catalog::model("meta-llama/Llama-3.1-8B-Instruct").unwrap();
//! let g = ldqa_specs::catalog::gpu("h100-80gb").unwrap();
//! let kv = gpu_kv_capacity(&m, &g, 1, &VllmKnobs::default()).unwrap();
//! assert_eq!(kv.bytes_per_token, 128 * 1024);
//! assert!(kv.tokens > 400_000);
//! ```
#![warn(missing_docs)]

pub mod deployment;
pub mod error;
pub mod hardware;
pub mod plan;
pub mod render;
pub mod vllm;

pub use deployment::Deployment;
pub use error::RecommendError;
pub use plan::{
    plan, remote_tier, Plan, PlanInput, PlanWarning, RemoteBasis, RemoteSize, RemoteTier, Workload,
};
pub use vllm::{gpu_kv_capacity, KvSizing, VllmKnobs, VllmVersion};
