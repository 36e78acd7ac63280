//! Records to summaries: one quantile function, rounds, gains, confidence intervals.
//!
//! Layout:
//! - [`quantile`]: the quantile function (numpy's "linear") and [`Stats`].
//! - [`round`]: a [`RoundRecord`](ldqa_model::RoundRecord) → [`RoundSummary`].
//! - [`gains`]: warmup → query [`Gains`] and their gates, with upstream's semantics.
//! - [`ci`]: Student-t intervals for means over repeated runs.
//! - [`evidence`]: reading the server's Prometheus counter deltas (hit rates).
//! - [`sweep`]: a sweep's points over working sets, and where LMCache pays off ([`Crossovers`]).
//! - [`units`]: ns ⇄ s at the edges, and serde adapters (JSON carries seconds, `_s` keys).
//!
//! Inside the code times are nanoseconds; accessors named `*_s` give seconds for printing.
//!
//! ```
//! use ldqa_metrics::{Gains, RoundSummary};
//! use ldqa_model::{RequestRecord, RoundKind, RoundRecord};
//! let round = |kind, ttft_ns: u64, duration_ns| {
//!     let mut r = RequestRecord::new(0, 0, true);
//!     r.first_token_ns = Some(ttft_ns);
//!     r.end_ns = duration_ns;
//!     RoundRecord { kind, started_unix_ns: 0, duration_ns, interrupted: false, requests: vec![r], evidence: None }
//! };
//! let warmup = RoundSummary::from_round(&round(RoundKind::Warmup, 800_000_000, 2_000_000_000));
//! let query = RoundSummary::from_round(&round(RoundKind::Query, 200_000_000, 1_000_000_000));
//! let gains = Gains::between(&warmup, &query);
//! assert_eq!(gains.ttft_gain, Some(4.0));
//! assert_eq!(gains.latency_gain, Some(2.0));
//! ```

#![warn(missing_docs)]

pub mod ci;
pub mod evidence;
pub mod gains;
pub mod quantile;
pub mod round;
pub mod sweep;
pub mod units;

pub use ci::{mean_ci95, t_quantile_975, MeanInterval};
pub use evidence::EvidenceSummary;
pub use gains::{GainKind, Gains, GateFailure};
pub use quantile::{quantile_sorted, Stats, QUANTILE_METHOD};
pub use round::{is_upstream_success, ErrorSample, PrefixTotals, RoundSummary};
pub use sweep::{
    load_imbalance, ArmPoint, AxisValue, Capacities, Crossovers, InstanceRound, InstanceShare,
    RoundPoint, SweepPoint, SweptAxis, WIN_FACTOR,
};
