//! Shared vocabulary of ldqa.
//!
//! Every other crate speaks in these types: the workload planner produces
//! [`RequestSpec`]s, the real client (`ldqa-loadgen`) and the simulator (`ldqa-sim`)
//! both turn them into [`RequestRecord`]s, and statistics and reports are computed
//! from records alone. One record type for both paths means the summary, the CSV
//! files and the gates are tested the same way whether the numbers came from a
//! socket or from a virtual clock.
//!
//! Layout:
//! - [`record`]: one measured request ([`RequestRecord`]) and why it failed ([`Failure`]).
//! - [`round`]: a round of requests ([`RoundRecord`]) and the server-side evidence
//!   collected around it ([`ServerEvidence`]).
//! - [`spec`]: what to send ([`RequestSpec`]), independent of how it is sent.
//! - [`plan`]: the rounds of a run and how their requests arrive ([`Plan`]), the one
//!   plan type of the HTTP client and the simulator.
//!
//! Times inside records are nanosecond offsets from the start of their round
//! (`*_ns: u64`); derived seconds are computed on demand by the accessors.
//!
//! ```
//! use ldqa_model::{RequestRecord, Usage};
//! let mut r = RequestRecord::new(0, 0, false);
//! r.sent_ns = 1_000_000;
//! r.first_token_ns = Some(251_000_000);
//! r.end_ns = 900_000_000;
//! r.usage = Some(Usage { prompt_tokens: Some(10_001), completion_tokens: Some(100), cached_tokens: None });
//! assert_eq!(r.ttft_ns(), Some(250_000_000));
//! assert!(r.is_success());
//! ```

#![warn(missing_docs)]

pub mod plan;
pub mod record;
pub mod round;
pub mod spec;

pub use plan::{Arrival, Plan, PlannedRound, PromptTemplate};
pub use record::{Failure, FailureKind, PrefixSource, RequestRecord, Usage};
pub use round::{RoundKind, RoundRecord, ServerEvidence};
pub use spec::{Api, PromptSource, RequestSpec};

/// Nanoseconds per second, for the conversions at the edges.
pub const NS_PER_S: f64 = 1e9;

/// Converts a nanosecond count to seconds (for printing and exporting only).
pub fn ns_to_s(ns: u64) -> f64 {
    ns as f64 / NS_PER_S
}
