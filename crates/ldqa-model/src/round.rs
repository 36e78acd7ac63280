//! A round of requests and the server-side evidence around it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RequestRecord;

/// Which round of the Long Doc QA protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    /// Untimed short prompts that warm the server up (not reported).
    PreWarmup,
    /// Each document once, cold.
    Warmup,
    /// The documents again, repeated and ordered by the repeat mode.
    Query,
}

impl RoundKind {
    /// Lower-case name used in file names (`warmup_round.csv`) and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RoundKind::PreWarmup => "pre_warmup",
            RoundKind::Warmup => "warmup",
            RoundKind::Query => "query",
        }
    }

    /// Capitalised name used in upstream's result lines (`Warmup round mean TTFT`).
    pub fn title(self) -> &'static str {
        match self {
            RoundKind::PreWarmup => "Pre-warmup",
            RoundKind::Warmup => "Warmup",
            RoundKind::Query => "Query",
        }
    }
}

/// A finished (or interrupted) round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Which round.
    pub kind: RoundKind,
    /// Wall-clock start, nanoseconds since the Unix epoch (for people; durations use `duration_ns`).
    pub started_unix_ns: u128,
    /// Round time: from the round's start until its last request ended (monotonic).
    pub duration_ns: u64,
    /// True when the round was cut short (Ctrl-C); `requests` then holds what finished.
    pub interrupted: bool,
    /// One record per request, in `prompt_id` order.
    pub requests: Vec<RequestRecord>,
    /// Server-side counters read around the round, when available.
    pub evidence: Option<ServerEvidence>,
}

impl RoundRecord {
    /// Mean TTFT (from send) over the requests that produced a first token, in ns; `None`
    /// when none did.
    pub fn mean_ttft_ns(&self) -> Option<f64> {
        let ttfts: Vec<u64> = self.requests.iter().filter_map(|r| r.ttft_ns()).collect();
        (!ttfts.is_empty()).then(|| ttfts.iter().sum::<u64>() as f64 / ttfts.len() as f64)
    }

    /// Every time stretched by `factor` (see [`RequestRecord::scale_time`]).
    pub fn scale_time(&mut self, factor: f64) {
        self.duration_ns = (self.duration_ns as f64 * factor).round() as u64;
        for r in &mut self.requests {
            r.scale_time(factor);
        }
    }
}

/// Deltas of the server's Prometheus counters over one round.
///
/// Keys are metric names as the server exposes them (`vllm:prefix_cache_queries`, …),
/// summed over label sets; values are `after − before`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerEvidence {
    /// `after − before` per metric name (with several servers, their sum).
    pub deltas: BTreeMap<String, f64>,
    /// With several servers, each one's own deltas, in the order of their metrics URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<ServerEvidence>,
}

impl ServerEvidence {
    /// One server's evidence as it is; several servers' summed name by name, each kept
    /// in `instances`.
    pub fn summed(mut each: Vec<ServerEvidence>) -> ServerEvidence {
        if each.len() == 1 {
            return each.remove(0);
        }
        let mut deltas = BTreeMap::new();
        for e in &each {
            for (name, v) in &e.deltas {
                *deltas.entry(name.clone()).or_insert(0.0) += v;
            }
        }
        ServerEvidence {
            deltas,
            instances: each,
        }
    }

    /// The delta of the first of `names` present (servers renamed some counters across versions).
    pub fn first_of(&self, names: &[&str]) -> Option<f64> {
        names.iter().find_map(|n| self.deltas.get(*n).copied())
    }
}
