//! One round's records → [`RoundSummary`].

use std::collections::BTreeMap;

use ldqa_model::{FailureKind, RequestRecord, RoundKind, RoundRecord};
use serde::{Deserialize, Serialize};

use crate::evidence::EvidenceSummary;
use crate::quantile::Stats;
use crate::units::{self, NS_PER_S};

/// How many failure messages a summary keeps, for people.
pub const MAX_ERROR_SAMPLES: usize = 5;

/// Everything derived from one round. Serialized with seconds in `_s` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// Which round.
    pub kind: RoundKind,
    /// The round was cut short (Ctrl-C).
    pub interrupted: bool,
    /// Requests in the round (upstream's "prompt count").
    pub prompt_count: usize,
    /// Requests that succeeded and produced a first token (upstream's "successful prompt count":
    /// `successful = ttft > 0`).
    pub successful_count: usize,
    /// `prompt_count − successful_count`.
    pub failed_count: usize,
    /// Failed requests by kind. A request without a recorded failure but with no first token
    /// counts as `no_content` here.
    pub failures_by_kind: BTreeMap<FailureKind, usize>,
    /// The first few failures, in `prompt_id` order.
    pub error_samples: Vec<ErrorSample>,
    /// Round time: start of the round until its last request ended.
    #[serde(rename = "round_time_s", with = "units::ns_as_s")]
    pub round_time_ns: u64,
    /// Round time / prompt count (upstream's `*_round_time_per_prompt`); `None` for an empty round.
    #[serde(rename = "round_time_per_prompt_s", with = "units::opt_f64_ns_as_s")]
    pub round_time_per_prompt_ns: Option<f64>,
    /// Mean TTFT over successful requests, as upstream computes it; `None` (upstream: `nan`)
    /// when none succeeded.
    #[serde(rename = "mean_ttft_s", with = "units::opt_f64_ns_as_s")]
    pub mean_ttft_ns: Option<f64>,
    /// TTFT from send to first token, successful requests.
    pub ttft: Option<Stats>,
    /// TTFT from enqueue to first token (client queueing included), successful requests.
    pub ttft_queued: Option<Stats>,
    /// TTFT of successful requests planned as cache hits (`is_miss == false`).
    pub ttft_hit: Option<Stats>,
    /// TTFT of successful requests planned as cache misses (`is_miss == true`).
    pub ttft_miss: Option<Stats>,
    /// Requests planned as hits (all requests, failed included).
    pub hit_count: usize,
    /// Requests planned as misses (all requests, failed included).
    pub miss_count: usize,
    /// Time per output token after the first, successful requests.
    pub tpot: Option<Stats>,
    /// Per-request mean inter-token (inter-event) latency, successful requests.
    pub itl_mean: Option<Stats>,
    /// Per-request longest inter-token gap; its `max` is the round's longest gap.
    pub itl_max: Option<Stats>,
    /// End-to-end latency, send to end, successful requests.
    pub latency: Option<Stats>,
    /// Sum of `usage.prompt_tokens` over requests that reported it.
    pub prompt_tokens: u64,
    /// Sum of `usage.completion_tokens` over requests that reported it.
    pub completion_tokens: u64,
    /// Requests that carried a `usage` object.
    pub usage_reported: usize,
    /// Sum of `usage.prompt_tokens_details.cached_tokens`, when any request reported it.
    pub cached_tokens: Option<u64>,
    /// Prompt tokens / round time; `None` without usage or with a zero round time.
    pub input_tokens_per_s: Option<f64>,
    /// Completion tokens / round time; `None` without usage or with a zero round time.
    pub output_tokens_per_s: Option<f64>,
    /// Where prompt tokens came from, when records carry it (simulator only).
    pub prefix: Option<PrefixTotals>,
    /// Interpretation of the server's counters, when they were read.
    pub server: Option<EvidenceSummary>,
}

/// One failed request, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSample {
    /// The failed request's prompt.
    pub prompt_id: usize,
    /// How it failed.
    pub kind: FailureKind,
    /// What the client saw.
    pub message: String,
}

/// Sums of [`ldqa_model::PrefixSource`] over the records that carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrefixTotals {
    /// Records that carried a prefix source.
    pub requests: usize,
    /// Tokens found in the GPU prefix cache.
    pub gpu_hit_tokens: u64,
    /// Tokens loaded from the LMCache CPU tier.
    pub cpu_hit_tokens: u64,
    /// Tokens computed by prefill.
    pub computed_tokens: u64,
}

/// Upstream's notion of success: no failure and a first token (`ttft > 0` in LMCache's
/// `long_doc_qa.py`, where a request without a first token gets `ttft = -1`).
pub fn is_upstream_success(r: &RequestRecord) -> bool {
    r.is_success() && r.first_token_ns.is_some()
}

impl RoundSummary {
    /// Summarizes one round.
    pub fn from_round(round: &RoundRecord) -> RoundSummary {
        let reqs = &round.requests;
        let ok: Vec<&RequestRecord> = reqs.iter().filter(|r| is_upstream_success(r)).collect();

        let mut failures_by_kind = BTreeMap::new();
        let mut error_samples = Vec::new();
        for r in reqs.iter().filter(|r| !is_upstream_success(r)) {
            let (kind, message) = match &r.failure {
                Some(f) => (f.kind, f.message.clone()),
                None => (
                    FailureKind::NoContent,
                    "no content token before the end of the stream".to_string(),
                ),
            };
            *failures_by_kind.entry(kind).or_insert(0) += 1;
            if error_samples.len() < MAX_ERROR_SAMPLES {
                error_samples.push(ErrorSample {
                    prompt_id: r.prompt_id,
                    kind,
                    message,
                });
            }
        }

        let stats = |f: &dyn Fn(&RequestRecord) -> Option<u64>, miss: Option<bool>| {
            let v: Vec<u64> = ok
                .iter()
                .filter(|r| miss.is_none_or(|m| r.is_miss == m))
                .filter_map(|r| f(r))
                .collect();
            Stats::from_ns(&v)
        };
        let ttft = stats(&|r| r.ttft_ns(), None);

        let mut prompt_tokens = 0u64;
        let mut completion_tokens = 0u64;
        let mut usage_reported = 0usize;
        let mut cached: Option<u64> = None;
        for u in reqs.iter().filter_map(|r| r.usage.as_ref()) {
            usage_reported += 1;
            prompt_tokens += u.prompt_tokens.unwrap_or(0);
            completion_tokens += u.completion_tokens.unwrap_or(0);
            if let Some(c) = u.cached_tokens {
                cached = Some(cached.unwrap_or(0) + c);
            }
        }
        let any_prompt = reqs
            .iter()
            .any(|r| r.usage.is_some_and(|u| u.prompt_tokens.is_some()));
        let any_completion = reqs
            .iter()
            .any(|r| r.usage.is_some_and(|u| u.completion_tokens.is_some()));
        let per_s = |tokens: u64, reported: bool| {
            (reported && round.duration_ns > 0)
                .then(|| tokens as f64 * NS_PER_S / round.duration_ns as f64)
        };

        let mut prefix: Option<PrefixTotals> = None;
        for p in reqs.iter().filter_map(|r| r.prefix.as_ref()) {
            let t = prefix.get_or_insert_with(PrefixTotals::default);
            t.requests += 1;
            t.gpu_hit_tokens += p.gpu_hit_tokens;
            t.cpu_hit_tokens += p.cpu_hit_tokens;
            t.computed_tokens += p.computed_tokens;
        }

        RoundSummary {
            kind: round.kind,
            interrupted: round.interrupted,
            prompt_count: reqs.len(),
            successful_count: ok.len(),
            failed_count: reqs.len() - ok.len(),
            failures_by_kind,
            error_samples,
            round_time_ns: round.duration_ns,
            round_time_per_prompt_ns: (!reqs.is_empty())
                .then(|| round.duration_ns as f64 / reqs.len() as f64),
            mean_ttft_ns: ttft.map(|s| s.mean_ns),
            ttft,
            ttft_queued: stats(&|r| r.ttft_queued_ns(), None),
            ttft_hit: stats(&|r| r.ttft_ns(), Some(false)),
            ttft_miss: stats(&|r| r.ttft_ns(), Some(true)),
            hit_count: reqs.iter().filter(|r| !r.is_miss).count(),
            miss_count: reqs.iter().filter(|r| r.is_miss).count(),
            tpot: stats(&|r| r.tpot_ns(), None),
            itl_mean: stats(&|r| r.mean_itl_ns(), None),
            itl_max: stats(&|r| r.max_itl_ns, None),
            latency: stats(&|r| Some(r.latency_ns()), None),
            prompt_tokens,
            completion_tokens,
            usage_reported,
            cached_tokens: cached,
            input_tokens_per_s: per_s(prompt_tokens, any_prompt),
            output_tokens_per_s: per_s(completion_tokens, any_completion),
            prefix,
            server: round.evidence.as_ref().map(EvidenceSummary::from_evidence),
        }
    }

    /// Mean TTFT in seconds as upstream prints it: NaN when no request succeeded.
    pub fn mean_ttft_s_or_nan(&self) -> f64 {
        self.mean_ttft_ns.map_or(f64::NAN, |ns| ns / NS_PER_S)
    }

    /// Round time in seconds (for printing).
    pub fn round_time_s(&self) -> f64 {
        units::ns_to_s(self.round_time_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_model::{Failure, PrefixSource, ServerEvidence, Usage};

    const MS: u64 = 1_000_000;

    fn ok(id: usize, miss: bool, sent_ms: u64, ttft_ms: u64, end_ms: u64) -> RequestRecord {
        let mut r = RequestRecord::new(id, id, miss);
        r.queued_ns = 0;
        r.sent_ns = sent_ms * MS;
        r.first_token_ns = Some((sent_ms + ttft_ms) * MS);
        r.last_token_ns = Some((end_ms - 1) * MS);
        r.end_ns = end_ms * MS;
        r.content_events = 11;
        r.max_itl_ns = Some(5 * MS);
        r
    }

    fn round(requests: Vec<RequestRecord>, duration_ms: u64) -> RoundRecord {
        RoundRecord {
            kind: RoundKind::Query,
            started_unix_ns: 0,
            duration_ns: duration_ms * MS,
            interrupted: false,
            requests,
            evidence: None,
        }
    }

    #[test]
    fn counts_and_ttft() {
        let mut failed = RequestRecord::new(2, 2, true);
        failed.failure = Some(Failure::new(FailureKind::Timeout, "timed out after 1s"));
        failed.end_ns = 900 * MS;
        let no_content = RequestRecord::new(3, 3, false);
        let mut a = ok(0, false, 0, 100, 500);
        a.usage = Some(Usage {
            prompt_tokens: Some(1000),
            completion_tokens: Some(10),
            cached_tokens: Some(992),
        });
        let mut b = ok(1, true, 10, 300, 700);
        b.usage = Some(Usage {
            prompt_tokens: Some(1000),
            completion_tokens: Some(10),
            cached_tokens: None,
        });
        let s = RoundSummary::from_round(&round(vec![a, b, failed, no_content], 1000));

        assert_eq!(
            (s.prompt_count, s.successful_count, s.failed_count),
            (4, 2, 2)
        );
        assert_eq!(s.failures_by_kind.get(&FailureKind::Timeout), Some(&1));
        assert_eq!(s.failures_by_kind.get(&FailureKind::NoContent), Some(&1));
        assert_eq!(s.error_samples[0].message, "timed out after 1s");
        assert_eq!(s.mean_ttft_ns, Some(200.0 * MS as f64));
        assert_eq!(s.ttft_hit.unwrap().n, 1);
        assert_eq!(s.ttft_miss.unwrap().mean_ns, 300.0 * MS as f64);
        assert_eq!(s.ttft_queued.unwrap().max_ns, 310 * MS);
        assert_eq!((s.hit_count, s.miss_count), (2, 2));
        assert_eq!(s.round_time_per_prompt_ns, Some(250.0 * MS as f64));
        assert_eq!(
            (s.prompt_tokens, s.completion_tokens, s.usage_reported),
            (2000, 20, 2)
        );
        assert_eq!(s.cached_tokens, Some(992));
        assert_eq!(s.input_tokens_per_s, Some(2000.0));
        assert_eq!(s.output_tokens_per_s, Some(20.0));
        assert_eq!(s.latency.unwrap().max_ns, 690 * MS);
        assert_eq!(s.itl_max.unwrap().max_ns, 5 * MS);
        assert!(s.prefix.is_none());
    }

    #[test]
    fn no_success_means_nan_mean_and_no_throughput() {
        let mut f = RequestRecord::new(0, 0, false);
        f.failure = Some(Failure::new(FailureKind::Connect, "refused"));
        let s = RoundSummary::from_round(&round(vec![f], 0));
        assert_eq!(s.mean_ttft_ns, None);
        assert!(s.mean_ttft_s_or_nan().is_nan());
        assert_eq!(s.input_tokens_per_s, None);
        let empty = RoundSummary::from_round(&round(vec![], 0));
        assert_eq!(empty.round_time_per_prompt_ns, None);
    }

    #[test]
    fn prefix_totals_and_evidence() {
        let mut a = ok(0, false, 0, 100, 500);
        a.prefix = Some(PrefixSource {
            gpu_hit_tokens: 16,
            cpu_hit_tokens: 256,
            computed_tokens: 9,
        });
        let mut b = ok(1, false, 0, 100, 500);
        b.prefix = Some(PrefixSource {
            gpu_hit_tokens: 4,
            cpu_hit_tokens: 0,
            computed_tokens: 1,
        });
        let mut r = round(vec![a, b], 500);
        let mut ev = ServerEvidence::default();
        ev.deltas
            .insert("vllm:prefix_cache_queries_total".into(), 100.0);
        ev.deltas
            .insert("vllm:prefix_cache_hits_total".into(), 25.0);
        r.evidence = Some(ev);
        let s = RoundSummary::from_round(&r);
        let p = s.prefix.unwrap();
        assert_eq!(
            (
                p.requests,
                p.gpu_hit_tokens,
                p.cpu_hit_tokens,
                p.computed_tokens
            ),
            (2, 20, 256, 10)
        );
        assert_eq!(s.server.unwrap().prefix_cache_hit_rate, Some(0.25));
    }

    #[test]
    fn json_keys_carry_units_and_round_trip() {
        let s = RoundSummary::from_round(&round(vec![ok(0, false, 0, 100, 500)], 750));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["round_time_s"], 0.75);
        assert_eq!(v["mean_ttft_s"], 0.1);
        assert_eq!(v["ttft"]["p50_s"], 0.1);
        assert_eq!(v["kind"], "query");
        let back: RoundSummary = serde_json::from_value(v).unwrap();
        assert_eq!(back.round_time_ns, s.round_time_ns);
        assert_eq!(back.ttft, s.ttft);
    }
}
