//! The seed's protocol and its two published scenarios, in virtual time.
//!
//! Protocol (LMCache `benchmarks/long_doc_qa/long_doc_qa.py`): a pre-warmup round of
//! 5 prompts `"{i}xx" + "hi hi …"` (1,000 × "hi"), then the warmup round (each
//! document once, prompt `"{i} " + "hi " × document_length`), then the query round
//! (the documents repeated, here `tile` or `interleave`), all with the same
//! `max_inflight_requests` and `output_len`.
//!
//! Token counts without a tokenizer: " hi" is one Llama-3 token, the document id is
//! one token per group of up to three digits, and the Llama-3.1 chat template adds
//! [`CHAT_TEMPLATE_TOKENS`] tokens, of which the first [`CHAT_TEMPLATE_SHARED_TOKENS`]
//! (the system header with its knowledge/today dates, and the user header) are the
//! same for every prompt.
//!
//! The two scenarios are built by [`scenario::build`] from the catalog, exactly as
//! `ldqa predict` builds them: GPU KV from `ldqa-recommend`'s vLLM sizing.

use serde::{Deserialize, Serialize};

use crate::round::{run_round, Frontend, RoundOutcome, RoundRequest};
use crate::scenario::{self, EngineMode};
use crate::{Efficiencies, Engine, EngineConfig, PromptKey};
use crate::{SimError, SimRequest};

/// Tokens the Llama-3.1 chat template adds around one user message (no tools):
/// `<|begin_of_text|>`, the system header (4), "Cutting Knowledge Date: December
/// 2023\nToday Date: 26 Jul 2024\n\n" (19), `<|eot_id|>`, the user header (4), then
/// after the content `<|eot_id|>` and the assistant header (4). Counted by hand from
/// the template and Llama-3's pre-tokenizer (digits in groups of up to three);
/// an approximation when no tokenizer is given.
pub const CHAT_TEMPLATE_TOKENS: u64 = 34;
/// Of those, the leading tokens identical in every prompt (everything before the content).
pub const CHAT_TEMPLATE_SHARED_TOKENS: u32 = 29;

/// Repeat modes the built-in protocol supports (random needs the workload crate's RNG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepeatMode {
    Tile,
    Interleave,
}

/// The Long Doc QA workload flags that matter to the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub num_documents: usize,
    pub document_length: u64,
    pub output_len: u32,
    pub repeat_count: usize,
    pub repeat_mode: RepeatMode,
    pub max_inflight_requests: usize,
    /// Chat API (adds the chat template) rather than completions.
    pub chat: bool,
}

/// Tokens of a document id written in decimal (Llama-3 splits digit runs into groups of ≤ 3).
pub fn number_tokens(n: usize) -> u64 {
    let digits = n.checked_ilog10().map_or(1, |d| d + 1);
    u64::from(digits.div_ceil(3))
}

impl Workload {
    fn template(&self) -> (u64, u32) {
        if self.chat {
            (CHAT_TEMPLATE_TOKENS, CHAT_TEMPLATE_SHARED_TOKENS)
        } else {
            (0, 0)
        }
    }

    /// Prompt tokens of document `i` (`"{i} hi hi …"`, template included).
    pub fn document_prompt_tokens(&self, i: usize) -> u64 {
        number_tokens(i) + self.document_length + self.template().0
    }

    fn request(&self, prompt_id: usize, doc: usize, key_domain: u64, tokens: u64) -> RoundRequest {
        let (_, shared) = self.template();
        let mut key = PromptKey::for_document(doc as u64, None, shared);
        key.content ^= key_domain;
        RoundRequest {
            prompt_id,
            document_id: doc,
            is_miss: false,
            request: SimRequest {
                key,
                prompt_tokens: tokens,
                max_output_tokens: self.output_len,
            },
        }
    }

    /// The pre-warmup round: 5 prompts `"{i}xx" + "hi hi …"` (1,000 "hi": about 1,002 tokens).
    pub fn pre_warmup_round(&self) -> Vec<RoundRequest> {
        let (template, _) = self.template();
        (0..5)
            .map(|i| {
                self.request(
                    i,
                    i,
                    PRE_WARMUP_DOMAIN,
                    number_tokens(i) + 1 + 1000 + template,
                )
            })
            .collect()
    }

    /// The warmup round: every document once.
    pub fn warmup_round(&self) -> Vec<RoundRequest> {
        (0..self.num_documents)
            .map(|i| self.request(i, i, 0, self.document_prompt_tokens(i)))
            .collect()
    }

    /// The query round: the documents repeated `repeat_count` times in the repeat mode.
    pub fn query_round(&self) -> Vec<RoundRequest> {
        let n = self.num_documents;
        let order: Vec<usize> = match self.repeat_mode {
            RepeatMode::Tile => (0..self.repeat_count).flat_map(|_| 0..n).collect(),
            RepeatMode::Interleave => (0..n)
                .flat_map(|d| std::iter::repeat_n(d, self.repeat_count))
                .collect(),
        };
        order
            .into_iter()
            .enumerate()
            .map(|(p, d)| self.request(p, d, 0, self.document_prompt_tokens(d)))
            .collect()
    }
}

/// Tokens of a miss prefix such as `"-1234567 "` without a tokenizer: the sign, the digits
/// in groups of up to three, and the space.
pub fn miss_prefix_tokens(prefix: &str) -> u64 {
    let t = prefix.trim();
    let sign = u64::from(t.starts_with('-') || t.starts_with('+'));
    let digits = t.trim_start_matches(['-', '+']).len() as u64;
    sign + digits.div_ceil(3) + u64::from(prefix.ends_with(' '))
}

impl Workload {
    /// The engine request for a planned request of the workload crate: its exact token
    /// count when a tokenizer gave one, else the count of `"{miss}{i} hi hi …"`.
    pub fn request_from_spec(&self, spec: &ldqa_model::RequestSpec) -> RoundRequest {
        let (_, shared) = self.template();
        let tokens = spec.prompt_tokens.unwrap_or_else(|| {
            self.document_prompt_tokens(spec.document_id)
                + spec.miss_prefix.as_deref().map_or(0, miss_prefix_tokens)
        });
        RoundRequest {
            prompt_id: spec.prompt_id,
            document_id: spec.document_id,
            is_miss: spec.is_miss,
            request: SimRequest {
                key: PromptKey::for_document(
                    spec.document_id as u64,
                    spec.miss_prefix.as_deref(),
                    shared,
                ),
                prompt_tokens: tokens,
                max_output_tokens: self.output_len,
            },
        }
    }
}

const PRE_WARMUP_DOMAIN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The three rounds of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolResult {
    pub pre_warmup: RoundOutcome,
    pub warmup: RoundOutcome,
    pub query: RoundOutcome,
}

/// Runs the seed protocol (pre-warmup, warmup, query) on a fresh engine.
pub fn run_protocol(
    config: &EngineConfig,
    eff: &Efficiencies,
    workload: &Workload,
) -> Result<ProtocolResult, SimError> {
    let mut engine = Engine::new(config.clone(), eff)?;
    let fe = Frontend::from_efficiencies(eff);
    let inflight = workload.max_inflight_requests;
    let pre_warmup = run_round(&mut engine, &workload.pre_warmup_round(), inflight, &fe)?;
    let warmup = run_round(&mut engine, &workload.warmup_round(), inflight, &fe)?;
    let query = run_round(&mut engine, &workload.query_round(), inflight, &fe)?;
    Ok(ProtocolResult {
        pre_warmup,
        warmup,
        query,
    })
}

/// Published numbers of one engine in one run (seconds, as published).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub warmup_mean_ttft_s: f64,
    pub warmup_round_time_s: f64,
    pub query_mean_ttft_s: f64,
    pub query_round_time_s: f64,
}

/// One of the seed's runs: both engines on the same model, GPU and workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedScenario {
    pub name: &'static str,
    pub vllm: EngineConfig,
    pub lmcache: EngineConfig,
    pub workload: Workload,
    /// From `shared/calibration/seed-results.json`.
    pub published_vllm: Published,
    pub published_lmcache: Published,
}

/// One seed configuration, built like `ldqa predict` builds it: catalog model and GPU,
/// vLLM's `serve` defaults, GPU KV from `ldqa-recommend`, the published LMCache size.
fn seed_config(model: &str, tp: u32, cpu_gib: Option<f64>) -> EngineConfig {
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
    scenario::build(&m, &gpu, Some(tp), mode, &scenario::serve_knobs())
        .expect("invariant: the seed scenarios build (tested)")
        .config
}

fn seed_workload(num_documents: usize) -> Workload {
    Workload {
        num_documents,
        document_length: 10_000,
        output_len: 100,
        repeat_count: 1,
        repeat_mode: RepeatMode::Tile,
        max_inflight_requests: 4,
        chat: true,
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

/// Predicted numbers for one engine of one scenario (seconds, for comparison).
pub fn predict(
    config: &EngineConfig,
    eff: &Efficiencies,
    w: &Workload,
) -> Result<Published, SimError> {
    let r = run_protocol(config, eff, w)?;
    Ok(Published {
        warmup_mean_ttft_s: r.warmup.mean_ttft_ns() as f64 / 1e9,
        warmup_round_time_s: r.warmup.duration_ns() as f64 / 1e9,
        query_mean_ttft_s: r.query.mean_ttft_ns() as f64 / 1e9,
        query_round_time_s: r.query.duration_ns() as f64 / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts() {
        assert_eq!(number_tokens(0), 1);
        assert_eq!(number_tokens(999), 1);
        assert_eq!(number_tokens(1000), 2);
        let w = seed_workload(51);
        assert_eq!(w.document_prompt_tokens(7), 10_035);
        assert_eq!(w.pre_warmup_round()[0].request.prompt_tokens, 1036);
    }

    #[test]
    fn specs_become_requests() {
        let w = seed_workload(4);
        let spec = ldqa_model::RequestSpec {
            prompt_id: 2,
            document_id: 1,
            is_miss: true,
            miss_prefix: Some("-1234567 ".into()),
            prompt_tokens: None,
        };
        let r = w.request_from_spec(&spec);
        assert_eq!(r.request.prompt_tokens, 10_035 + 1 + 3 + 1);
        assert_ne!(r.request.key, w.warmup_round()[1].request.key);
        let exact = ldqa_model::RequestSpec {
            prompt_tokens: Some(77),
            miss_prefix: None,
            ..spec
        };
        let r = w.request_from_spec(&exact);
        assert_eq!(r.request.prompt_tokens, 77);
        assert_eq!(r.request.key, w.warmup_round()[1].request.key);
    }

    #[test]
    fn seed_capacities_from_the_recommender() {
        let kv = llama70b_h100_tp4().vllm.gpu_kv_tokens;
        assert!((400_000..500_000).contains(&kv), "{kv}");
        assert_eq!(kv % 16, 0);
        let kv8 = llama8b_h100().lmcache.gpu_kv_tokens;
        assert!((400_000..460_000).contains(&kv8), "{kv8}");
    }

    #[test]
    fn query_orders() {
        let mut w = seed_workload(3);
        w.repeat_count = 2;
        let tile: Vec<usize> = w.query_round().iter().map(|r| r.document_id).collect();
        assert_eq!(tile, vec![0, 1, 2, 0, 1, 2]);
        w.repeat_mode = RepeatMode::Interleave;
        let il: Vec<usize> = w.query_round().iter().map(|r| r.document_id).collect();
        assert_eq!(il, vec![0, 0, 1, 1, 2, 2]);
    }
}
