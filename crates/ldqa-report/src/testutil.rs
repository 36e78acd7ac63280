//! Synthetic rounds for the tests of this crate.

use ldqa_metrics::RoundSummary;
use ldqa_model::{
    Failure, FailureKind, PrefixSource, RequestRecord, RoundKind, RoundRecord, ServerEvidence,
    Usage,
};

const MS: u64 = 1_000_000;

/// A round whose requests all succeed with the given TTFTs, sent back to back.
pub fn round(kind: RoundKind, ttfts_ns: &[u64], duration_ns: u64) -> RoundRecord {
    let requests = ttfts_ns
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let mut r = RequestRecord::new(i, i, kind != RoundKind::Query);
            r.first_token_ns = Some(t);
            r.last_token_ns = Some(t);
            r.end_ns = t + 1;
            r
        })
        .collect();
    RoundRecord {
        kind,
        started_unix_ns: 0,
        duration_ns,
        interrupted: false,
        requests,
        evidence: None,
    }
}

pub fn summary(r: &RoundRecord) -> RoundSummary {
    RoundSummary::from_round(r)
}

/// A small, varied round: 2 in flight, hits and misses, one timeout, one HTTP error,
/// usage on most requests, simulator prefix sources and server counters.
pub fn rich_round(kind: RoundKind) -> RoundRecord {
    let mut requests = Vec::new();
    let mut slot_free_ms = [0u64, 0u64];
    for i in 0..8usize {
        let miss = kind == RoundKind::Warmup || i % 4 == 3;
        let slot = i % 2;
        let mut r = RequestRecord::new(i, i % 4, miss);
        r.queued_ns = 0;
        let sent = slot_free_ms[slot];
        let ttft = if miss {
            400 + 10 * i as u64
        } else {
            60 + 5 * i as u64
        };
        let decode = 200;
        r.sent_ns = sent * MS;
        r.first_byte_ns = Some((sent + 2) * MS);
        match i {
            5 => {
                r.failure = Some(Failure::new(FailureKind::Timeout, "no response within 30s"));
                r.end_ns = (sent + 300) * MS;
            }
            6 => {
                let mut f =
                    Failure::new(FailureKind::HttpStatus, "HTTP 503: server busy, try later");
                f.http_status = Some(503);
                r.failure = Some(f);
                r.first_byte_ns = Some((sent + 1) * MS);
                r.end_ns = (sent + 1) * MS;
            }
            _ => {
                r.first_token_ns = Some((sent + ttft) * MS);
                r.last_token_ns = Some((sent + ttft + decode) * MS);
                r.end_ns = (sent + ttft + decode + 1) * MS;
                r.content_events = 21;
                r.max_itl_ns = Some((15 + i as u64) * MS);
                r.usage = Some(Usage {
                    prompt_tokens: Some(1001),
                    completion_tokens: Some(21),
                    cached_tokens: (!miss).then_some(992),
                });
                let cpu = if miss { 0 } else { 768 };
                r.prefix = Some(PrefixSource {
                    gpu_hit_tokens: 0,
                    cpu_hit_tokens: cpu,
                    computed_tokens: 1001 - cpu,
                });
            }
        }
        slot_free_ms[slot] = r.end_ns / MS;
        requests.push(r);
    }
    let duration_ns = requests.iter().map(|r| r.end_ns).max().unwrap_or(0) + MS;
    let mut evidence = ServerEvidence::default();
    evidence
        .deltas
        .insert("vllm:prefix_cache_queries_total".into(), 6006.0);
    evidence
        .deltas
        .insert("vllm:prefix_cache_hits_total".into(), 1984.0);
    evidence
        .deltas
        .insert("lmcache:num_requested_tokens_total".into(), 6006.0);
    evidence
        .deltas
        .insert("lmcache:num_hit_tokens_total".into(), 3072.0);
    evidence
        .deltas
        .insert("lmcache:num_stored_tokens_total".into(), 512.0);
    RoundRecord {
        kind,
        started_unix_ns: 1_764_000_000_000_000_000,
        duration_ns,
        interrupted: false,
        requests,
        evidence: Some(evidence),
    }
}

/// A two-round run (warmup and query of [`rich_round`]) for model `model` on a fixed machine.
pub fn rich_run(model: &str) -> crate::RunResult {
    let env = crate::Environment {
        os: "linux".into(),
        arch: "x86_64".into(),
        cpus: 2,
        hostname: None,
        target_url: Some("http://127.0.0.1:8000/v1".into()),
        model: Some(model.into()),
    };
    crate::RunResult::new(
        crate::ToolInfo::new("ldqa", "0"),
        serde_json::json!({}),
        env,
        &[rich_round(RoundKind::Warmup), rich_round(RoundKind::Query)],
    )
}
