//! Warmup → query gains, and the gates on them (`--expected-ttft-gain`, `--expected-latency-gain`).
//!
//! Semantics follow LMCache `benchmarks/long_doc_qa/long_doc_qa.py` (commit 0482cd9f):
//! - TTFT gain = warmup mean TTFT / query mean TTFT, `inf` when the query mean is 0;
//! - latency gain = (warmup round time / warmup prompt count) / (query round time / query
//!   prompt count), `inf` when the query per-prompt time is 0.
//!
//! Where upstream would divide by zero (an empty round) or carry a NaN mean (no successful
//! request), the gain here is `None`: not measurable. A `None` gain fails its gate (upstream
//! would crash, or let NaN pass silently, because `nan < x` is false).

use serde::{Deserialize, Serialize};

use crate::round::RoundSummary;
use crate::units;

/// Speed-ups of the query round over the warmup round (dimensionless factors).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Gains {
    /// Warmup mean TTFT / query mean TTFT. JSON: number, `"inf"` or `null`.
    #[serde(with = "units::opt_ratio")]
    pub ttft_gain: Option<f64>,
    /// Warmup per-prompt round time / query per-prompt round time. JSON: number, `"inf"` or `null`.
    #[serde(with = "units::opt_ratio")]
    pub latency_gain: Option<f64>,
}

/// Which gain a gate is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GainKind {
    /// [`Gains::ttft_gain`], gated by `--expected-ttft-gain`.
    Ttft,
    /// [`Gains::latency_gain`], gated by `--expected-latency-gain`.
    Latency,
}

/// A gate that did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateFailure {
    /// The gain the gate is about.
    pub kind: GainKind,
    /// The measured gain; `None` when it could not be measured.
    pub actual: Option<f64>,
    /// The least gain the gate accepts.
    pub expected: f64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        f64::INFINITY
    }
}

impl Gains {
    /// Gains of `query` over `warmup`.
    pub fn between(warmup: &RoundSummary, query: &RoundSummary) -> Gains {
        let ttft_gain = match (warmup.mean_ttft_ns, query.mean_ttft_ns) {
            (Some(w), Some(q)) => Some(ratio(w, q)),
            _ => None,
        };
        // A round in which nothing succeeded was fast only because it failed: its time
        // says nothing (reliability review D2 saw "latency per prompt 4570.85×").
        let all_failed = warmup.successful_count == 0 || query.successful_count == 0;
        let latency_gain = match (
            warmup.round_time_per_prompt_ns,
            query.round_time_per_prompt_ns,
        ) {
            (Some(w), Some(q)) if !all_failed => Some(ratio(w, q)),
            _ => None,
        };
        Gains {
            ttft_gain,
            latency_gain,
        }
    }

    /// The gates that fail: TTFT first, then latency, as upstream checks them.
    /// A gain below its expectation, or not measurable, fails.
    pub fn check(
        &self,
        expected_ttft_gain: Option<f64>,
        expected_latency_gain: Option<f64>,
    ) -> Vec<GateFailure> {
        let gate = |kind, actual: Option<f64>, expected: Option<f64>| {
            let expected = expected?;
            let passes = actual.is_some_and(|a| a >= expected);
            (!passes).then_some(GateFailure {
                kind,
                actual,
                expected,
            })
        };
        [
            gate(GainKind::Ttft, self.ttft_gain, expected_ttft_gain),
            gate(GainKind::Latency, self.latency_gain, expected_latency_gain),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_model::{RequestRecord, RoundKind, RoundRecord};

    const MS: u64 = 1_000_000;

    fn summary(ttfts_ms: &[u64], round_ms: u64) -> RoundSummary {
        let requests = ttfts_ms
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let mut r = RequestRecord::new(i, i, false);
                r.first_token_ns = Some(t * MS);
                r.end_ns = t * MS + 1;
                r
            })
            .collect();
        RoundSummary::from_round(&RoundRecord {
            kind: RoundKind::Query,
            started_unix_ns: 0,
            duration_ns: round_ms * MS,
            interrupted: false,
            requests,
            evidence: None,
        })
    }

    #[test]
    fn upstream_formulas() {
        // warmup: 2 prompts in 1000 ms, mean TTFT 400 ms; query: 4 prompts in 500 ms, mean 100 ms.
        let g = Gains::between(
            &summary(&[300, 500], 1000),
            &summary(&[100, 100, 100, 100], 500),
        );
        assert_eq!(g.ttft_gain, Some(4.0));
        // (1000/2) / (500/4) = 4
        assert_eq!(g.latency_gain, Some(4.0));
        assert!(g.check(Some(4.0), Some(4.0)).is_empty());
        let f = g.check(Some(4.5), None);
        assert_eq!(
            f,
            vec![GateFailure {
                kind: GainKind::Ttft,
                actual: Some(4.0),
                expected: 4.5
            }]
        );
    }

    #[test]
    fn zero_and_missing_denominators() {
        let g = Gains::between(&summary(&[300], 1000), &summary(&[0], 0));
        assert_eq!(g.ttft_gain, Some(f64::INFINITY));
        assert_eq!(g.latency_gain, Some(f64::INFINITY));
        assert!(g.check(Some(1e9), Some(1e9)).is_empty());
        let g = Gains::between(&summary(&[], 1000), &summary(&[100], 100));
        assert_eq!(
            g,
            Gains {
                ttft_gain: None,
                latency_gain: None
            }
        );
        assert_eq!(g.check(Some(1.0), Some(1.0)).len(), 2);
    }

    /// Reliability review D2: a round where every request failed has no gain, however fast
    /// it failed.
    #[test]
    fn an_all_failed_round_has_no_gain() {
        let failed = |n: usize| {
            let requests = (0..n)
                .map(|i| {
                    let mut r = RequestRecord::new(i, i, false);
                    r.failure = Some(ldqa_model::Failure::new(
                        ldqa_model::FailureKind::Connect,
                        "refused",
                    ));
                    r.end_ns = 1_000;
                    r
                })
                .collect();
            RoundSummary::from_round(&RoundRecord {
                kind: RoundKind::Query,
                started_unix_ns: 0,
                duration_ns: MS,
                interrupted: false,
                requests,
                evidence: None,
            })
        };
        let g = Gains::between(&summary(&[300, 500], 1000), &failed(4));
        assert_eq!(g.latency_gain, None, "{g:?}");
        assert_eq!(g.ttft_gain, None, "{g:?}");
        assert_eq!(g.check(None, Some(1.0)).len(), 1, "a gate on it fails");
    }

    #[test]
    fn json_spells_infinity() {
        let g = Gains {
            ttft_gain: Some(f64::INFINITY),
            latency_gain: None,
        };
        let s = serde_json::to_string(&g).unwrap();
        assert_eq!(s, r#"{"ttft_gain":"inf","latency_gain":null}"#);
        assert_eq!(serde_json::from_str::<Gains>(&s).unwrap(), g);
        assert!(serde_json::from_str::<Gains>(r#"{"ttft_gain":"x","latency_gain":1.5}"#).is_err());
    }
}
