//! Interpreting the server's Prometheus counter deltas ([`ServerEvidence`]).
//!
//! Names, checked against the servers' sources:
//! - vLLM V1 (`vllm/v1/metrics/loggers.py`): counters `vllm:prefix_cache_queries` and
//!   `vllm:prefix_cache_hits` (tokens), exposed by prometheus_client as `…_total`; with a KV
//!   connector (LMCache) also `vllm:external_prefix_cache_queries` / `…_hits`. Older vLLM
//!   releases named the GPU ones `vllm:gpu_prefix_cache_queries` / `…_hits`.
//! - LMCache (`lmcache/observability.py`, `PrometheusLogger`): counters
//!   `lmcache:num_requested_tokens`, `lmcache:num_hit_tokens`, `lmcache:num_stored_tokens`
//!   (again `…_total` once exposed by prometheus_client).
//!
//! Every lookup accepts the bare name and the `_total` name.

use ldqa_model::ServerEvidence;
use serde::{Deserialize, Serialize};

/// vLLM GPU prefix-cache lookups, in tokens (newest name first).
pub const VLLM_PREFIX_QUERIES: &[&str] = &[
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_queries",
    "vllm:gpu_prefix_cache_queries_total",
    "vllm:gpu_prefix_cache_queries",
];
/// vLLM GPU prefix-cache hits, in tokens.
pub const VLLM_PREFIX_HITS: &[&str] = &[
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_hits_total",
    "vllm:gpu_prefix_cache_hits",
];
/// vLLM lookups in the external (KV connector, e.g. LMCache) cache, in tokens.
pub const VLLM_EXTERNAL_QUERIES: &[&str] = &[
    "vllm:external_prefix_cache_queries_total",
    "vllm:external_prefix_cache_queries",
];
/// vLLM hits in the external (KV connector) cache, in tokens.
pub const VLLM_EXTERNAL_HITS: &[&str] = &[
    "vllm:external_prefix_cache_hits_total",
    "vllm:external_prefix_cache_hits",
];
/// LMCache: tokens requested from LMCache.
pub const LMCACHE_REQUESTED: &[&str] = &[
    "lmcache:num_requested_tokens_total",
    "lmcache:num_requested_tokens",
];
/// LMCache: tokens found (hit) in LMCache.
pub const LMCACHE_HIT: &[&str] = &["lmcache:num_hit_tokens_total", "lmcache:num_hit_tokens"];
/// LMCache: tokens stored into LMCache.
pub const LMCACHE_STORED: &[&str] = &[
    "lmcache:num_stored_tokens_total",
    "lmcache:num_stored_tokens",
];

/// What the counters say about caching during one round. Counts are token counts
/// (deltas over the round); `None` when the server did not expose the counter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvidenceSummary {
    /// Tokens looked up in vLLM's GPU prefix cache.
    pub prefix_cache_queries_tokens: Option<f64>,
    /// Tokens found in vLLM's GPU prefix cache.
    pub prefix_cache_hits_tokens: Option<f64>,
    /// hits / queries; `None` without both counters or with zero queries.
    pub prefix_cache_hit_rate: Option<f64>,
    /// Tokens vLLM looked up in the external (KV connector) cache.
    pub external_cache_queries_tokens: Option<f64>,
    /// Tokens vLLM found in the external (KV connector) cache.
    pub external_cache_hits_tokens: Option<f64>,
    /// external hits / external queries.
    pub external_cache_hit_rate: Option<f64>,
    /// Tokens requested from LMCache.
    pub lmcache_requested_tokens: Option<f64>,
    /// Tokens found in LMCache (hits).
    pub lmcache_hit_tokens: Option<f64>,
    /// Tokens stored into LMCache.
    pub lmcache_stored_tokens: Option<f64>,
    /// LMCache hit tokens / requested tokens.
    pub lmcache_hit_rate: Option<f64>,
    /// Number of counters in the evidence (0 means the server exposed nothing we read).
    pub counters: usize,
}

fn rate(hits: Option<f64>, queries: Option<f64>) -> Option<f64> {
    match (hits, queries) {
        (Some(h), Some(q)) if q > 0.0 => Some(h / q),
        _ => None,
    }
}

impl EvidenceSummary {
    /// Reads the known counters out of `ev`.
    pub fn from_evidence(ev: &ServerEvidence) -> EvidenceSummary {
        let pq = ev.first_of(VLLM_PREFIX_QUERIES);
        let ph = ev.first_of(VLLM_PREFIX_HITS);
        let eq = ev.first_of(VLLM_EXTERNAL_QUERIES);
        let eh = ev.first_of(VLLM_EXTERNAL_HITS);
        let lr = ev.first_of(LMCACHE_REQUESTED);
        let lh = ev.first_of(LMCACHE_HIT);
        EvidenceSummary {
            prefix_cache_queries_tokens: pq,
            prefix_cache_hits_tokens: ph,
            prefix_cache_hit_rate: rate(ph, pq),
            external_cache_queries_tokens: eq,
            external_cache_hits_tokens: eh,
            external_cache_hit_rate: rate(eh, eq),
            lmcache_requested_tokens: lr,
            lmcache_hit_tokens: lh,
            lmcache_stored_tokens: ev.first_of(LMCACHE_STORED),
            lmcache_hit_rate: rate(lh, lr),
            counters: ev.deltas.len(),
        }
    }

    /// True when at least one known counter was present.
    pub fn has_any(&self) -> bool {
        self.prefix_cache_queries_tokens.is_some()
            || self.prefix_cache_hits_tokens.is_some()
            || self.external_cache_queries_tokens.is_some()
            || self.external_cache_hits_tokens.is_some()
            || self.lmcache_requested_tokens.is_some()
            || self.lmcache_hit_tokens.is_some()
            || self.lmcache_stored_tokens.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pairs: &[(&str, f64)]) -> ServerEvidence {
        let mut e = ServerEvidence::default();
        for (k, v) in pairs {
            e.deltas.insert((*k).to_string(), *v);
        }
        e
    }

    #[test]
    fn vllm_bare_and_total_and_old_names() {
        for (q, h) in [
            ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits"),
            (
                "vllm:prefix_cache_queries_total",
                "vllm:prefix_cache_hits_total",
            ),
            (
                "vllm:gpu_prefix_cache_queries",
                "vllm:gpu_prefix_cache_hits",
            ),
            (
                "vllm:gpu_prefix_cache_queries_total",
                "vllm:gpu_prefix_cache_hits_total",
            ),
        ] {
            let s = EvidenceSummary::from_evidence(&ev(&[(q, 200.0), (h, 50.0)]));
            assert_eq!(s.prefix_cache_hit_rate, Some(0.25), "{q}");
            assert!(s.has_any());
        }
    }

    #[test]
    fn lmcache_tokens() {
        let s = EvidenceSummary::from_evidence(&ev(&[
            ("lmcache:num_requested_tokens_total", 1000.0),
            ("lmcache:num_hit_tokens_total", 768.0),
            ("lmcache:num_stored_tokens", 256.0),
            ("vllm:external_prefix_cache_queries", 10.0),
            ("vllm:external_prefix_cache_hits", 5.0),
        ]));
        assert_eq!(s.lmcache_hit_rate, Some(0.768));
        assert_eq!(s.lmcache_stored_tokens, Some(256.0));
        assert_eq!(s.external_cache_hit_rate, Some(0.5));
        assert_eq!(s.prefix_cache_hit_rate, None);
    }

    #[test]
    fn zero_queries_or_nothing_known() {
        let s = EvidenceSummary::from_evidence(&ev(&[
            ("vllm:prefix_cache_queries", 0.0),
            ("vllm:prefix_cache_hits", 0.0),
        ]));
        assert_eq!(s.prefix_cache_hit_rate, None);
        let s = EvidenceSummary::from_evidence(&ev(&[("vllm:num_requests_running", 1.0)]));
        assert!(!s.has_any());
        assert_eq!(s.counters, 1);
    }
}
