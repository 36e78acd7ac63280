//! The OpenAI-compatible streaming client and the bounded-concurrency round runner.
//!
//! This crate owns the timing path of `ldqa run`: it sends each request of a round
//! with at most `max_inflight` in flight, reads the SSE stream as it arrives, and
//! stamps every moment that matters (queued, sent, headers, first content, last
//! content, end) on a monotonic clock (`tokio::time::Instant`, which is also what makes
//! paused-clock tests exact). A failed request is a measurement
//! ([`ldqa_model::Failure`]), never an `Err`: the round goes on.
//!
//! Layout:
//! - [`endpoint`]: base URL, API key, derived URLs (`/chat/completions`, `/metrics`).
//! - [`client`]: one request, start to end, classified; a [`Slot`] per in-flight worker.
//! - `direct`: plain-`http://` requests over a connection the worker drives itself.
//! - [`runner`]: a round of requests under the in-flight cap, observers, cancellation.
//! - [`prometheus`]: reading `/metrics` before and after a round.
//!
//! ```no_run
//! # async fn demo(specs: Vec<ldqa_model::RequestSpec>, prompts: &dyn ldqa_model::PromptSource) -> Result<(), ldqa_loadgen::LoadgenError> {
//! use ldqa_loadgen::{Cancel, Client, ClientConfig, Endpoint, NoObserver, run_round};
//! use ldqa_model::{Api, RoundKind};
//! let endpoint = Endpoint::new("http://localhost:8000/v1", None)?;
//! let client = Client::new(ClientConfig::new(endpoint, "my-model".into(), Api::Chat, 100))?;
//! let round = run_round(&client, RoundKind::Warmup, &specs, prompts, 4, &NoObserver, &Cancel::new()).await;
//! println!("{} requests in {} ns", round.requests.len(), round.duration_ns);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cancel;
pub mod client;
mod clock;
mod direct;
pub mod endpoint;
mod error;
pub mod prometheus;
pub mod protocol;
pub mod runner;
pub mod schedule;
mod stream;

pub use cancel::Cancel;
pub use client::{Client, ClientConfig, ServerModels, Slot};
pub use endpoint::Endpoint;
pub use error::LoadgenError;
pub use protocol::{run_protocol, ProtocolOptions, ProtocolOutcome};
pub use runner::{run_round, run_round_on, NoObserver, RoundObserver};
