//! Discrete-event simulated engine: vLLM and vLLM+LMCache in virtual time.
//!
//! Layout:
//! - [`clock`]: [`SimTime`], integer nanoseconds.
//! - [`config`]: [`EngineConfig`] (model, GPU, TP, mode, vLLM knobs).
//! - [`efficiency`]: [`Efficiencies`], fitted per GPU, from `data/efficiencies.json`.
//! - [`cost`]: the cost of one step: a roofline, or [`kernels`]' measured curves
//!   (`kernel_cost`), or a measured [`profile`].
//! - [`kernels`]: a GPU's measured kernel speeds, derived from public kernel tables.
//! - [`profile`]: a cost measured on a running server (`ldqa calibrate`), and its fit.
//! - `block_pool`, `cpu_tier`, `lru`: vLLM's GPU prefix cache and LMCache's CPU tier.
//! - `scheduler` and [`engine`]: continuous batching with chunked prefill; [`Engine`].
//! - [`round`]: one round of a closed-loop client (bounded in-flight requests) → [`RequestRecord`]s.
//! - [`protocol`]: a whole [`ldqa_model::Plan`] (the one `ldqa run` sends) on one engine.
//! - [`scenario`]: catalog model + GPU + TP + mode + vLLM knobs → [`EngineConfig`] and efficiencies.
//! - [`seed`]: the seed's two published runs, as data.
//!
//! ```
//! use ldqa_model::{Arrival, Plan, PlannedRound, PromptTemplate, RequestSpec, RoundKind};
//! use ldqa_sim::protocol::{run_protocol, SimClient};
//!
//! let scenario = ldqa_sim::seed::llama8b_h100().vllm;
//! let document = |id| RequestSpec { prompt_id: id, document_id: id, is_miss: false, miss_prefix: None, prompt_tokens: 10_001 };
//! let round = |kind| PlannedRound {
//!     kind,
//!     requests: (0..4).map(document).collect(),
//!     arrival: Arrival::ClosedLoop { max_inflight: 2 },
//!     pause_before_ns: 0,
//!     send_at_ns: Vec::new(),
//! };
//! let plan = Plan { rounds: vec![round(RoundKind::Warmup), round(RoundKind::Query)] };
//! let client = SimClient { output_len: 100, template: PromptTemplate::LLAMA3_CHAT };
//! let rounds = run_protocol(&scenario, &plan, &client).unwrap();
//! let cached = rounds[1].requests[0].usage.unwrap().cached_tokens.unwrap();
//! assert!(cached >= 10_000, "the query round hits the GPU prefix cache: {cached}");
//! ```
//!
//! [`RequestRecord`]: ldqa_model::RequestRecord

#![warn(missing_docs)]

mod block_pool;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod cost;
mod cpu_tier;
pub mod efficiency;
pub mod engine;
mod error;
mod kernel_cost;
pub mod kernels;
pub mod kv_events;
mod lru;
pub mod profile;
pub mod prompt;
pub mod protocol;
pub mod remote_tier;
mod request;
pub mod round;
pub mod scenario;
mod scheduler;
pub mod seed;
pub mod trace;

pub use clock::SimTime;
pub use config::{EngineConfig, EngineKind, GpuShape, Mode, ModelShape};
pub use efficiency::Efficiencies;
pub use engine::{Engine, EngineStats};
pub use error::SimError;
pub use prompt::{BlockChain, PromptKey, TokenChain};
pub use request::{Event, EventKind, ReqId, SimRequest};
pub use round::{run_round, run_scheduled, Frontend, FrontendQueue, RoundOutcome, RoundRequest};
pub use scenario::{EngineMode, Scenario};
