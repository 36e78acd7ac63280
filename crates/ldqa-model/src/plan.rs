//! What a run sends, round by round: the one plan type that both the HTTP client
//! (`ldqa-loadgen`) and the simulator (`ldqa-sim`) consume.
//!
//! A [`Plan`] is a list of [`PlannedRound`]s; each holds its [`RequestSpec`]s, the rule
//! by which they arrive ([`Arrival`]) and the pause before it starts. Long Doc QA is
//! three rounds (pre-warmup, warmup, query) in closed loop; other workloads (multi-round
//! chat, open-loop arrivals, traces) are other lists and other arrival rules.

use serde::{Deserialize, Serialize};

use crate::{RequestSpec, RoundKind};

/// How the requests of a round are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrival {
    /// Closed loop, as upstream's asyncio semaphore: every request is queued at the
    /// round's start and sent, in order, as soon as fewer than `max_inflight` are in flight.
    ClosedLoop {
        /// The in-flight cap (`--max-inflight-requests`), at least 1.
        max_inflight: usize,
    },
    /// Open loop: each request is sent when it is due ([`PlannedRound::send_at_ns`]), or,
    /// with `max_concurrency` in flight already, when one of them ends.
    OpenLoop {
        /// The cap (`--max-concurrency`); none: every request at its time.
        max_concurrency: Option<usize>,
    },
}

impl Arrival {
    /// The most requests this rule ever has in flight.
    pub fn max_inflight(&self) -> usize {
        match *self {
            Arrival::ClosedLoop { max_inflight } => max_inflight.max(1),
            Arrival::OpenLoop { max_concurrency } => max_concurrency.unwrap_or(usize::MAX).max(1),
        }
    }
}

/// One round of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRound {
    /// Which round this is (pre-warmup rounds are run but not reported).
    pub kind: RoundKind,
    /// The requests, in the order they are released.
    pub requests: Vec<RequestSpec>,
    /// How they are released.
    pub arrival: Arrival,
    /// Idle time before the round starts, in ns (`--sleep-time-after-warmup` before the query round).
    pub pause_before_ns: u64,
    /// Open loop: when each request is due, ns from the round's start (ascending); empty
    /// in closed loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_at_ns: Vec<u64>,
}

/// Every round of a run, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// The rounds, run one after the other.
    pub rounds: Vec<PlannedRound>,
}

impl Plan {
    /// The first round of `kind`, if the plan has one.
    pub fn round(&self, kind: RoundKind) -> Option<&PlannedRound> {
        self.rounds.iter().find(|r| r.kind == kind)
    }

    /// The same plan with its times (arrivals, pauses) for a server whose clock runs
    /// `time_scale` simulated seconds per wall second (`ldqa serve --time-scale`): a gap
    /// of one simulated second waits `1 / time_scale` wall seconds, so the server sees the
    /// schedule a prediction of the plan simulates.
    pub fn in_wall_time(mut self, time_scale: f64) -> Plan {
        if time_scale > 0.0 && time_scale != 1.0 {
            let wall = |ns: u64| (ns as f64 / time_scale).round() as u64;
            for round in &mut self.rounds {
                round.pause_before_ns = wall(round.pause_before_ns);
                for at in &mut round.send_at_ns {
                    *at = wall(*at);
                }
            }
        }
        self
    }
}

/// What an OpenAI-compatible server adds around a prompt before the engine sees it: the
/// chat template. Only its size and shape matter to the caches: `added_tokens` in all,
/// of which the first `shared_prefix_tokens` are identical in every prompt (the system
/// header), so they hit the prefix cache whatever the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// Tokens the template adds around one user message.
    pub added_tokens: u64,
    /// Of those, the leading tokens every prompt shares.
    pub shared_prefix_tokens: u32,
}

impl PromptTemplate {
    /// No template: `/v1/completions` sends the prompt as it is.
    pub const NONE: PromptTemplate = PromptTemplate {
        added_tokens: 0,
        shared_prefix_tokens: 0,
    };

    /// The Llama-3.1 chat template around one user message (no tools), counted by hand
    /// from the template and Llama-3's pre-tokenizer: `<|begin_of_text|>`, the system
    /// header (4), "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    /// (19), `<|eot_id|>`, the user header (4), then after the content `<|eot_id|>` and
    /// the assistant header (4): 34 tokens, the first 29 the same in every prompt.
    pub const LLAMA3_CHAT: PromptTemplate = PromptTemplate {
        added_tokens: 34,
        shared_prefix_tokens: 29,
    };

    /// Tokens the Llama-3.1 template adds for each message after the first (a header of
    /// 4 and `<|eot_id|>`).
    pub const LLAMA3_TOKENS_PER_EXTRA_MESSAGE: u64 = 5;

    /// The template a request through `api` gets (Llama-3.1's for chat).
    pub fn for_api(api: crate::Api) -> PromptTemplate {
        match api {
            crate::Api::Chat => PromptTemplate::LLAMA3_CHAT,
            crate::Api::Completions => PromptTemplate::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_found_by_kind_and_caps_are_at_least_one() {
        let round = |kind| PlannedRound {
            kind,
            requests: Vec::new(),
            arrival: Arrival::ClosedLoop { max_inflight: 0 },
            pause_before_ns: 0,
            send_at_ns: Vec::new(),
        };
        let plan = Plan {
            rounds: vec![round(RoundKind::Warmup), round(RoundKind::Query)],
        };
        assert_eq!(plan.round(RoundKind::Query).unwrap().kind, RoundKind::Query);
        assert!(plan.round(RoundKind::PreWarmup).is_none());
        assert_eq!(plan.rounds[0].arrival.max_inflight(), 1);
        assert_eq!(
            PromptTemplate::for_api(crate::Api::Completions),
            PromptTemplate::NONE
        );
    }

    #[test]
    fn a_plan_in_wall_time_stretches_arrivals_and_pauses_by_the_time_scale() {
        let plan = Plan {
            rounds: vec![PlannedRound {
                kind: RoundKind::Query,
                requests: Vec::new(),
                arrival: Arrival::OpenLoop {
                    max_concurrency: None,
                },
                pause_before_ns: 1_000,
                send_at_ns: vec![0, 100, 250],
            }],
        };
        let slow = plan.clone().in_wall_time(0.25);
        assert_eq!(slow.rounds[0].send_at_ns, [0, 400, 1_000]);
        assert_eq!(slow.rounds[0].pause_before_ns, 4_000);
        assert_eq!(plan.clone().in_wall_time(1.0), plan);
    }
}
