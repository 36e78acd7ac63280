//! A [`Plan`] on the simulated engine, in virtual time: the same plan `ldqa run` sends
//! over HTTP, so a prediction and a measurement differ only in the runner.
//!
//! Each planned request becomes an engine request: its key from the document and miss
//! prefix (identical prompts share every block, others share only the template's header),
//! its prompt tokens the plan's count plus what the chat template adds, its output
//! `output_len` tokens. Rounds run one after the other on one engine, each after its
//! pause; the records are the same [`RoundRecord`]s the HTTP client produces, with times
//! on the virtual clock.

use ldqa_model::{Arrival, PlannedRound, PromptTemplate, RequestSpec, RoundRecord};

use crate::cluster::{Cluster, ClusterSpec};
use crate::round::{
    run_round_on, run_scheduled_on, Backend, Frontend, RoundRequest, Schedule, SingleEngine,
};
use crate::{Engine, PromptKey, Scenario, SimError, SimRequest};

/// What the client side adds to every planned request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimClient {
    /// `max_tokens` of every request (`--output-len`).
    pub output_len: u32,
    /// What the server wraps around each prompt (the chat template, or nothing).
    pub template: PromptTemplate,
}

/// Runs every round of `plan` on a fresh engine built from `scenario`.
pub fn run_protocol(
    scenario: &Scenario,
    plan: &ldqa_model::Plan,
    client: &SimClient,
) -> Result<Vec<RoundRecord>, SimError> {
    let (rounds, _) = run_protocol_on_cluster(scenario, plan, client, &ClusterSpec::single())?;
    Ok(rounds)
}

/// [`run_protocol`] on `cluster.instances` fresh engines behind its router: the rounds,
/// and the instance that served each request of each round (all 0 on one engine).
pub fn run_protocol_on_cluster(
    scenario: &Scenario,
    plan: &ldqa_model::Plan,
    client: &SimClient,
    cluster: &ClusterSpec,
) -> Result<(Vec<RoundRecord>, Vec<Vec<u32>>), SimError> {
    let mut engine = Engine::new(scenario.config.clone(), &scenario.efficiencies)?;
    let frontend = Frontend::from_efficiencies(&scenario.efficiencies);
    let outcomes: Vec<(RoundRecord, Vec<u32>)> =
        if cluster.instances == 1 && cluster.remote.is_none() {
            let mut single = SingleEngine::new(&mut engine, frontend);
            plan.rounds
                .iter()
                .map(|round| run_planned(&mut single, round, client))
                .collect::<Result<_, _>>()?
        } else {
            let mut many = Cluster::new(&engine, cluster, &frontend)?;
            plan.rounds
                .iter()
                .map(|round| run_planned(&mut many, round, client))
                .collect::<Result<_, _>>()?
        };
    Ok(outcomes.into_iter().unzip())
}

fn run_planned(
    backend: &mut impl Backend,
    round: &PlannedRound,
    client: &SimClient,
) -> Result<(RoundRecord, Vec<u32>), SimError> {
    if round.pause_before_ns > 0 {
        let mut events = Vec::new();
        backend.run_to_idle(&mut events)?;
        let until = backend.now().plus_ns(round.pause_before_ns);
        backend.advance_to(until, &mut events)?;
    }
    let requests: Vec<RoundRequest> = round
        .requests
        .iter()
        .map(|spec| engine_request(spec, client))
        .collect();
    let outcome = match round.arrival {
        Arrival::ClosedLoop { max_inflight } => {
            run_round_on(backend, &requests, max_inflight.max(1))?
        }
        Arrival::OpenLoop { max_concurrency } => run_scheduled_on(
            backend,
            &requests,
            &Schedule {
                send_at_ns: &round.send_at_ns,
                after: &[],
                max_concurrency,
            },
        )?,
    };
    let record = RoundRecord {
        kind: round.kind,
        // Virtual time: the round's start on the simulated clock, so output is reproducible.
        started_unix_ns: u128::from(outcome.start.0),
        duration_ns: outcome.duration_ns(),
        interrupted: false,
        requests: outcome.records,
        evidence: None,
    };
    Ok((record, outcome.instances))
}

/// The engine's view of one planned request.
pub fn engine_request(spec: &RequestSpec, client: &SimClient) -> RoundRequest {
    RoundRequest {
        prompt_id: spec.prompt_id,
        document_id: spec.document_id,
        is_miss: spec.is_miss,
        request: SimRequest {
            key: PromptKey::for_document(
                spec.document_id as u64,
                spec.miss_prefix.as_deref(),
                client.template.shared_prefix_tokens,
            ),
            prompt_tokens: spec.prompt_tokens + client.template.added_tokens,
            max_output_tokens: client.output_len,
        },
        session: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_adds_tokens_and_a_shared_header() {
        let spec = RequestSpec {
            prompt_id: 2,
            document_id: 1,
            is_miss: true,
            miss_prefix: Some("-1234567 ".into()),
            prompt_tokens: 10_006,
        };
        let chat = SimClient {
            output_len: 100,
            template: PromptTemplate::LLAMA3_CHAT,
        };
        let r = engine_request(&spec, &chat);
        assert_eq!(r.request.prompt_tokens, 10_006 + 34);
        assert!(matches!(
            r.request.key,
            PromptKey::Document {
                shared_prefix_tokens: 29,
                ..
            }
        ));
        assert_eq!(r.request.max_output_tokens, 100);
        let hit = RequestSpec {
            miss_prefix: None,
            is_miss: false,
            ..spec.clone()
        };
        assert_ne!(engine_request(&hit, &chat).request.key, r.request.key);
        let plain = SimClient {
            template: PromptTemplate::NONE,
            ..chat
        };
        assert_eq!(engine_request(&spec, &plain).request.prompt_tokens, 10_006);
    }
}
