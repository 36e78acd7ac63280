//! Deployment recommender: TP, GPU KV cache sizing the way vLLM does it, LMCache CPU offload size, workload.
pub mod error;
pub mod hardware;
pub mod plan;
pub mod render;
pub mod vllm;

pub use error::RecommendError;
pub use plan::{plan, Plan, PlanInput, PlanWarning, Workload};
pub use vllm::{gpu_kv_capacity, KvSizing, UsageContext, VllmKnobs, VllmVersion};
