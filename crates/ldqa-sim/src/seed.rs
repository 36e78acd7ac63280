//! The seed's two published runs as data: their engines, their workload, and the numbers
//! LMCache published for them (`shared/calibration/seed-results.json`).
//!
//! Nothing here plans or runs anything: tests and examples plan [`SeedWorkload`] with
//! `ldqa-workload` (tile order, chat API) and run it with [`crate::protocol::run_protocol`],
//! exactly as `ldqa predict` does; [`Published::of_rounds`] reads their records back.
//! The engines are built by [`scenario::build`] from the catalog, as `ldqa predict` builds
//! them: GPU KV from `ldqa-recommend`'s vLLM sizing.

use ldqa_model::{RoundKind, RoundRecord};
use serde::{Deserialize, Serialize};

use crate::scenario::{self, EngineMode, Scenario};

/// The Long Doc QA flags of a seed run (query order tile, chat API, no misses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedWorkload {
    /// `--num-documents`.
    pub num_documents: usize,
    /// `--document-length`, tokens.
    pub document_length: usize,
    /// `--output-len`, tokens.
    pub output_len: u32,
    /// `--repeat-count`.
    pub repeat_count: usize,
    /// `--max-inflight-requests`.
    pub max_inflight_requests: usize,
}

/// Published numbers of one engine in one run (seconds, as published).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Warmup round mean TTFT.
    pub warmup_mean_ttft_s: f64,
    /// Warmup round time.
    pub warmup_round_time_s: f64,
    /// Query round mean TTFT.
    pub query_mean_ttft_s: f64,
    /// Query round time.
    pub query_round_time_s: f64,
}

impl Published {
    /// The same four numbers read from a run's records (virtual seconds).
    pub fn of_rounds(rounds: &[RoundRecord]) -> Published {
        let round = |kind| rounds.iter().find(|r: &&RoundRecord| r.kind == kind);
        let mean_ttft_s = |kind| {
            round(kind)
                .and_then(RoundRecord::mean_ttft_ns)
                .unwrap_or(0.0)
                / 1e9
        };
        let time_s = |kind| round(kind).map_or(0.0, |r| r.duration_ns as f64 / 1e9);
        Published {
            warmup_mean_ttft_s: mean_ttft_s(RoundKind::Warmup),
            warmup_round_time_s: time_s(RoundKind::Warmup),
            query_mean_ttft_s: mean_ttft_s(RoundKind::Query),
            query_round_time_s: time_s(RoundKind::Query),
        }
    }
}

/// One of the seed's runs: both engines on the same model, GPU and workload.
#[derive(Debug, Clone)]
pub struct SeedScenario {
    /// A short name (`llama-3.1-8b-h100-tp1`).
    pub name: &'static str,
    /// The baseline engine.
    pub vllm: Scenario,
    /// The LMCache engine, with the published CPU size.
    pub lmcache: Scenario,
    /// The workload both ran.
    pub workload: SeedWorkload,
    /// The baseline's published numbers (`shared/calibration/seed-results.json`).
    pub published_vllm: Published,
    /// LMCache's published numbers.
    pub published_lmcache: Published,
}

/// One seed configuration, built like `ldqa predict` builds it: catalog model and GPU,
/// vLLM's `serve` defaults, GPU KV from `ldqa-recommend`, the published LMCache size.
fn seed_config(model: &str, tp: u32, cpu_gib: Option<f64>) -> Scenario {
    let m =
        ldqa_specs::catalog::model(model).expect("invariant: the seed models are in the catalog");
    let gpu =
        ldqa_specs::catalog::gpu("h100-80gb").expect("invariant: h100-80gb is in the catalog");
    let mode = match cpu_gib {
        None => EngineMode::Vllm,
        Some(g) => EngineMode::Lmcache {
            cpu_gib_per_rank: Some(g),
        },
    };
    let deployment = ldqa_recommend::Deployment::new(m, gpu, Some(tp), Default::default())
        .expect("invariant: the seed deployments start (tested)");
    scenario::build(&deployment, mode).expect("invariant: the seed scenarios build (tested)")
}

fn seed_workload(num_documents: usize) -> SeedWorkload {
    SeedWorkload {
        num_documents,
        document_length: 10_000,
        output_len: 100,
        repeat_count: 1,
        max_inflight_requests: 4,
    }
}

/// Seed run 1: Llama-3.1-8B, H100 80GB, TP 1, 51 documents, LMCache 66 GiB.
/// GPU KV from `ldqa_recommend::gpu_kv_capacity` (vLLM 0.10 `serve` defaults).
pub fn llama8b_h100() -> SeedScenario {
    let m = "meta-llama/Llama-3.1-8B-Instruct";
    SeedScenario {
        name: "llama-3.1-8b-h100-tp1",
        vllm: seed_config(m, 1, None),
        lmcache: seed_config(m, 1, Some(66.0)),
        workload: seed_workload(51),
        published_vllm: Published {
            warmup_mean_ttft_s: 0.751,
            warmup_round_time_s: 24.915,
            query_mean_ttft_s: 0.753,
            query_round_time_s: 24.628,
        },
        published_lmcache: Published {
            warmup_mean_ttft_s: 0.832,
            warmup_round_time_s: 26.027,
            query_mean_ttft_s: 0.214,
            query_round_time_s: 14.564,
        },
    }
}

/// Seed run 2: Llama-3.1-70B, H100 80GB, TP 4, 50 documents, LMCache 40 GiB per rank.
/// GPU KV from `ldqa_recommend::gpu_kv_capacity` (vLLM 0.10 `serve` defaults).
pub fn llama70b_h100_tp4() -> SeedScenario {
    let m = "meta-llama/Llama-3.1-70B-Instruct";
    SeedScenario {
        name: "llama-3.1-70b-h100-tp4",
        vllm: seed_config(m, 4, None),
        lmcache: seed_config(m, 4, Some(40.0)),
        workload: seed_workload(50),
        published_vllm: Published {
            warmup_mean_ttft_s: 1.797,
            warmup_round_time_s: 54.903,
            query_mean_ttft_s: 1.798,
            query_round_time_s: 54.974,
        },
        published_lmcache: Published {
            warmup_mean_ttft_s: 1.881,
            warmup_round_time_s: 56.673,
            query_mean_ttft_s: 0.174,
            query_round_time_s: 26.223,
        },
    }
}

/// Both seed scenarios.
pub fn scenarios() -> Vec<SeedScenario> {
    vec![llama8b_h100(), llama70b_h100_tp4()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_capacities_from_the_recommender() {
        let kv = llama70b_h100_tp4().vllm.config.gpu_kv_tokens;
        assert!((400_000..500_000).contains(&kv), "{kv}");
        assert_eq!(kv % 16, 0);
        let kv8 = llama8b_h100().lmcache.config.gpu_kv_tokens;
        assert!((400_000..460_000).contains(&kv8), "{kv8}");
    }

    #[test]
    fn published_numbers_are_read_from_records() {
        let mut r = ldqa_model::RequestRecord::new(0, 0, false);
        r.first_token_ns = Some(500_000_000);
        r.end_ns = 2_000_000_000;
        let round = |kind| RoundRecord {
            kind,
            started_unix_ns: 0,
            duration_ns: 2_000_000_000,
            interrupted: false,
            requests: vec![r.clone()],
            evidence: None,
        };
        let p = Published::of_rounds(&[round(RoundKind::Warmup), round(RoundKind::Query)]);
        assert_eq!(p.warmup_mean_ttft_s, 0.5);
        assert_eq!(p.query_round_time_s, 2.0);
    }
}
