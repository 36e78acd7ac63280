//! Each instance's own counters over a replay (`ldqa replay --metrics-url`, once per
//! instance): what the engines say they served, read from their Prometheus endpoints
//! before and after, beside what the client saw. Behind a router the client cannot tell
//! which instance answered; the instances' counters can, and they must add up.

use anyhow::Context;
use ldqa_loadgen::prometheus::{self, Snapshot};
use ldqa_loadgen::Client;
use ldqa_metrics::evidence::EvidenceSummary;
use serde::Serialize;

/// `vllm:request_success` (vLLM and `ldqa serve`), summed over its finish reasons.
const REQUESTS: &[&str] = &["vllm:request_success_total", "vllm:request_success"];

/// One instance's counters over the replay.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceCounters {
    pub metrics_url: String,
    /// Requests it finished.
    pub requests: Option<u64>,
    /// Prompt tokens looked up in its GPU prefix cache, and found.
    pub prefix_cache_queries_tokens: Option<u64>,
    pub prefix_cache_hits_tokens: Option<u64>,
    /// Tokens its KV connector (LMCache) served, as vLLM counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_cache_hits_tokens: Option<u64>,
    /// Tokens its LMCache served (when it has LMCache's counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lmcache_hit_tokens: Option<u64>,
}

/// The endpoints' counters before the replay.
pub(crate) struct Before {
    urls: Vec<String>,
    snapshots: Vec<Snapshot>,
}

/// Reads every endpoint once; an endpoint that cannot be read is an error naming it (before
/// any request is sent).
pub(crate) async fn before(client: &Client, urls: &[String]) -> anyhow::Result<Before> {
    let mut snapshots = Vec::with_capacity(urls.len());
    for url in urls {
        let text = client
            .get_text(url)
            .await
            .with_context(|| format!("--metrics-url {url}"))?;
        snapshots.push(prometheus::parse(&text));
    }
    Ok(Before {
        urls: urls.to_vec(),
        snapshots,
    })
}

impl Before {
    /// Each endpoint's counters since [`before`]; an endpoint that stopped answering is
    /// reported with its counters unknown, not an error (the replay's own results stand).
    pub(crate) async fn since(self, client: &Client) -> Vec<InstanceCounters> {
        let mut out = Vec::with_capacity(self.urls.len());
        for (url, before) in self.urls.into_iter().zip(&self.snapshots) {
            let after = client
                .get_text(&url)
                .await
                .ok()
                .map(|t| prometheus::parse(&t));
            let ev = after.map(|a| prometheus::delta(before, &a));
            out.push(InstanceCounters::from_evidence(url, ev.as_ref()));
        }
        out
    }
}

impl InstanceCounters {
    /// The counters in one instance's deltas (`None`: they could not be read).
    pub(crate) fn from_evidence(
        metrics_url: String,
        ev: Option<&ldqa_model::ServerEvidence>,
    ) -> InstanceCounters {
        let summary = ev.map(EvidenceSummary::from_evidence);
        let whole = |v: Option<f64>| v.filter(|x| x.is_finite() && *x >= 0.0).map(|x| x as u64);
        InstanceCounters {
            metrics_url,
            requests: whole(ev.and_then(|e| e.first_of(REQUESTS))),
            prefix_cache_queries_tokens: whole(
                summary.as_ref().and_then(|s| s.prefix_cache_queries_tokens),
            ),
            prefix_cache_hits_tokens: whole(
                summary.as_ref().and_then(|s| s.prefix_cache_hits_tokens),
            ),
            external_cache_hits_tokens: whole(
                summary.as_ref().and_then(|s| s.external_cache_hits_tokens),
            ),
            lmcache_hit_tokens: whole(summary.as_ref().and_then(|s| s.lmcache_hit_tokens)),
        }
    }
}

/// The lines under the table: each instance's counters, their sum, and whether it adds up
/// to what the client saw (`requests` answered, `cached` tokens reported in usage).
pub(crate) fn lines(counters: &[InstanceCounters], requests: usize, cached: u64) -> String {
    if counters.is_empty() {
        return String::new();
    }
    let known = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let mut out = String::from("Each instance's own counters (--metrics-url):\n");
    for (k, c) in counters.iter().enumerate() {
        out.push_str(&format!(
            "  instance {}: {} requests, {} of {} prompt tokens hit its prefix cache ({})\n",
            k + 1,
            known(c.requests),
            known(c.prefix_cache_hits_tokens),
            known(c.prefix_cache_queries_tokens),
            c.metrics_url
        ));
    }
    let sum = |f: fn(&InstanceCounters) -> Option<u64>| -> Option<u64> {
        counters.iter().map(f).sum::<Option<u64>>()
    };
    // What the client calls cached: the GPU prefix cache's hits and the connector's.
    let hit = |c: &InstanceCounters| {
        c.prefix_cache_hits_tokens
            .map(|h| h + c.external_cache_hits_tokens.unwrap_or(0))
    };
    let n = sum(|c| c.requests);
    let hits = counters.iter().map(hit).sum::<Option<u64>>();
    let verdict = match (n, hits) {
        (Some(n), Some(h)) if n == requests as u64 && h == cached => {
            "they add up to what the client saw"
        }
        (Some(n), _) if n != requests as u64 => {
            "the requests do NOT add up (another client, or an instance not listed)"
        }
        (Some(_), Some(_)) => {
            "the hits do NOT add up (another client, or hits the server does not count, e.g. a KV connector's)"
        }
        _ => "some counters could not be read",
    };
    out.push_str(&format!(
        "  all: {} requests, {} tokens hit; the client saw {requests} answers, {cached} cached tokens: {verdict}\n",
        known(n),
        known(hits)
    ));
    out
}
