//! Discrete-event simulated engine: vLLM and vLLM+LMCache in virtual time.
//!
//! Layout:
//! - [`clock`]: [`SimTime`], integer nanoseconds.
//! - [`config`]: [`EngineConfig`] (model, GPU, TP, mode, vLLM knobs).
//! - [`efficiency`]: [`Efficiencies`], fitted per GPU, from `data/efficiencies.json`.
//! - [`cost`]: the roofline cost of one step.
//! - `block_pool`, `cpu_tier`, `lru`: vLLM's GPU prefix cache and LMCache's CPU tier.
//! - `scheduler` and [`engine`]: continuous batching with chunked prefill; [`Engine`].
//! - [`round`]: the Long Doc QA client (bounded in-flight requests) → [`RequestRecord`]s.
//! - [`scenario`]: catalog model + GPU + TP + mode + vLLM knobs → [`EngineConfig`] and efficiencies.
//! - [`seed`]: the seed's protocol (pre-warmup, warmup, query) and its two scenarios.
//!
//! ```
//! use ldqa_sim::{seed, Efficiencies};
//! let scenario = seed::llama8b_h100();
//! let eff = Efficiencies::for_gpu(&scenario.vllm.gpu.name).unwrap();
//! let result = seed::run_protocol(&scenario.vllm, &eff, &scenario.workload).unwrap();
//! assert_eq!(result.warmup.records.len(), 51);
//! ```
//!
//! [`RequestRecord`]: ldqa_model::RequestRecord

mod block_pool;
pub mod clock;
pub mod config;
pub mod cost;
mod cpu_tier;
pub mod efficiency;
pub mod engine;
mod error;
mod lru;
pub mod prompt;
mod request;
pub mod round;
pub mod scenario;
mod scheduler;
pub mod seed;

pub use clock::SimTime;
pub use config::{EngineConfig, GpuShape, Mode, ModelShape};
pub use efficiency::Efficiencies;
pub use engine::{Engine, EngineStats};
pub use error::SimError;
pub use prompt::PromptKey;
pub use request::{Event, EventKind, ReqId, SimRequest};
pub use round::{run_round, Frontend, FrontendQueue, RoundOutcome, RoundRequest};
pub use scenario::{EngineMode, Scenario};
