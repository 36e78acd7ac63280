//! A recorded trace in virtual time: each request sent at its recorded arrival (divided by
//! a speed-up), its prompt named by the trace's block ids ([`BlockChain`]), so the prefix
//! cache and LMCache's tier see exactly the trace's sharing, re-chunked to the engine's
//! block size and LMCache's chunk size. A Bailian conversation's next turn waits for the
//! previous turn's answer (a slower engine delays it past its recorded arrival).

use std::borrow::Borrow;

use ldqa_trace::{ChatLinks, ScheduleCut, Trace, TraceFormat, TraceRequest};

use crate::cluster::{Cluster, ClusterSpec};
use crate::prompt::{BlockChain, PromptKey};
use crate::round::{
    drive_stream, Frontend, RecordSink, RoundOutcome, RoundRequest, RoundSpan, SingleEngine,
    TimedRequest,
};
use crate::{Engine, Scenario, SimError, SimRequest};

/// Which part of a trace to replay, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceOptions {
    /// Arrival times are divided by this (2: twice as fast).
    pub speedup: f64,
    /// Only the first requests.
    pub max_requests: Option<usize>,
    /// Only the requests that arrive within this many seconds of the first (before the
    /// speed-up).
    pub time_window_s: Option<f64>,
    /// At most this many requests in flight; a request due while none is free is sent
    /// when one frees.
    pub max_concurrency: Option<usize>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            speedup: 1.0,
            max_requests: None,
            time_window_s: None,
            max_concurrency: None,
        }
    }
}

/// The requests of a trace (in `format`, in arrival order) that `options` keep, each when
/// it is due (ns from the first) and after the earlier request it follows in its
/// conversation (Bailian's `parent_chat_id`), one at a time.
pub fn timed_requests<R: Borrow<TraceRequest>>(
    format: TraceFormat,
    requests: impl IntoIterator<Item = R>,
    options: &TraceOptions,
) -> impl Iterator<Item = TimedRequest> {
    let block = u32::try_from(format.block_tokens()).unwrap_or(u32::MAX);
    let mut cut = ScheduleCut::new(options.speedup, options.max_requests, options.time_window_s);
    let mut links = ChatLinks::default();
    requests.into_iter().enumerate().map_while(move |(i, r)| {
        let r = r.borrow();
        let due_ns = cut.send_at_ns(r)?;
        let (after, conversation) = links.link(r);
        Some(TimedRequest {
            request: RoundRequest {
                prompt_id: i,
                document_id: i,
                is_miss: false,
                request: SimRequest {
                    key: PromptKey::Blocks(BlockChain::new(&r.hash_ids, block, r.input_length)),
                    prompt_tokens: r.input_length,
                    max_output_tokens: u32::try_from(r.output_length.max(1)).unwrap_or(u32::MAX),
                },
                session: conversation.map(|c| c as u64),
            },
            due_ns,
            after,
        })
    })
}

/// `trace` on `scenario`'s engine, from an idle engine: every request's record, in the
/// trace's order.
pub fn simulate_trace(
    scenario: &Scenario,
    trace: &Trace,
    options: &TraceOptions,
) -> Result<RoundOutcome, SimError> {
    simulate_trace_on_cluster(scenario, trace, options, &ClusterSpec::single())
}

/// `trace` on `cluster.instances` idle copies of `scenario`'s engine behind its router,
/// sharing its remote tier if any (one instance without one: the engine alone): every
/// request's record, and its instance, in the trace's order.
pub fn simulate_trace_on_cluster(
    scenario: &Scenario,
    trace: &Trace,
    options: &TraceOptions,
    cluster: &ClusterSpec,
) -> Result<RoundOutcome, SimError> {
    let mut records = Vec::new();
    let mut instances = Vec::new();
    let span = stream_trace(
        scenario,
        trace.format,
        &trace.requests,
        options,
        cluster,
        &mut |i, instance, record| {
            if records.len() <= i {
                records.resize_with(i + 1, || None);
                instances.resize(i + 1, 0);
            }
            records[i] = Some(record);
            instances[i] = instance;
        },
    )?;
    Ok(RoundOutcome {
        records: records.into_iter().flatten().collect(),
        start: span.start,
        end: span.end,
        instances,
    })
}

/// [`simulate_trace_on_cluster`] with the trace's requests read as they fall due (in
/// arrival order) and each record handed to `sink` as its request ends (its position, its
/// instance): the memory of what is in flight, whatever the trace's length.
pub fn stream_trace<R: Borrow<TraceRequest>>(
    scenario: &Scenario,
    format: TraceFormat,
    requests: impl IntoIterator<Item = R>,
    options: &TraceOptions,
    cluster: &ClusterSpec,
    sink: &mut RecordSink<'_>,
) -> Result<RoundSpan, SimError> {
    if !(options.speedup.is_finite() && options.speedup > 0.0) {
        return Err(SimError::InvalidConfig {
            field: "speedup",
            reason: format!("must be a positive number, not {}", options.speedup),
        });
    }
    let source = timed_requests(format, requests, options);
    let cap = options.max_concurrency.unwrap_or(usize::MAX);
    let mut engine = Engine::new(scenario.config.clone(), &scenario.efficiencies)?;
    let frontend = Frontend::from_efficiencies(&scenario.efficiencies);
    if cluster.instances == 1 && cluster.remote.is_none() {
        return drive_stream(
            &mut SingleEngine::new(&mut engine, frontend),
            source,
            cap,
            sink,
        );
    }
    let mut cluster = Cluster::new(&engine, cluster, &frontend)?;
    drive_stream(&mut cluster, source, cap, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{self, EngineMode};
    use ldqa_trace::{TraceFormat, TraceRequest};

    fn request(at_ms: f64, ids: &[u64]) -> TraceRequest {
        TraceRequest {
            arrival_ms: at_ms,
            input_length: ids.len() as u64 * 512,
            output_length: 2,
            hash_ids: ids.to_vec(),
            chat: None,
        }
    }

    fn seed_vllm() -> Scenario {
        let d = ldqa_recommend::Deployment::new(
            ldqa_specs::catalog::model("meta-llama/Llama-3.1-8B-Instruct").unwrap(),
            ldqa_specs::catalog::gpu("h100-80gb").unwrap(),
            Some(1),
            ldqa_recommend::VllmKnobs::default(),
        )
        .unwrap();
        scenario::build(&d, EngineMode::Vllm).unwrap()
    }

    /// Requests are sent at their arrivals (over the speed-up), and a later request hits
    /// exactly the engine blocks inside the trace blocks it shares with an earlier one.
    #[test]
    fn arrivals_and_shared_blocks_are_the_traces() {
        let trace = Trace {
            format: TraceFormat::Mooncake,
            requests: vec![
                request(0.0, &[1, 2, 3]),
                request(4000.0, &[1, 2, 4]),
                request(8000.0, &[5]),
            ],
        };
        let options = TraceOptions {
            speedup: 2.0,
            ..TraceOptions::default()
        };
        let out = simulate_trace(&seed_vllm(), &trace, &options).unwrap();
        let sent: Vec<u64> = out.records.iter().map(|r| r.sent_ns).collect();
        assert_eq!(sent, [0, 2_000_000_000, 4_000_000_000]);
        let cached: Vec<u64> = out
            .records
            .iter()
            .map(|r| r.usage.unwrap().cached_tokens.unwrap())
            .collect();
        // Two 512-token blocks in common: 1,024 tokens, 64 blocks of 16.
        assert_eq!(cached, [0, 1024, 0]);
    }

    /// A conversation's second turn, recorded 10 ms after the first, waits for the first's
    /// 200-token answer; a stranger due at the same time does not.
    #[test]
    fn a_next_turn_waits_for_the_previous_answer() {
        let turn =
            |chat_id: i64, parent: Option<i64>, at_ms: f64, ids: &[u64], out: u64| TraceRequest {
                arrival_ms: at_ms,
                input_length: ids.len() as u64 * 16,
                output_length: out,
                hash_ids: ids.to_vec(),
                chat: Some(ldqa_trace::format::ChatLink {
                    chat_id,
                    parent_chat_id: parent,
                    turn: 1 + u32::from(parent.is_some()),
                }),
            };
        let trace = Trace {
            format: TraceFormat::Bailian,
            requests: vec![
                turn(1, None, 0.0, &[1, 2, 3], 200),
                turn(2, Some(1), 10.0, &[1, 2, 3, 4], 2),
                turn(3, None, 10.0, &[9], 2),
            ],
        };
        let out = simulate_trace(&seed_vllm(), &trace, &TraceOptions::default()).unwrap();
        let r = &out.records;
        assert_eq!(r[2].sent_ns, 10_000_000, "the stranger goes when due");
        assert_eq!(
            r[1].sent_ns, r[0].end_ns,
            "the next turn goes when the answer ends"
        );
        assert!(r[1].sent_ns > 10_000_000 + 100_000_000);
        assert_eq!(r[1].usage.unwrap().cached_tokens, Some(48));
    }

    #[test]
    fn the_window_and_the_count_cut_the_trace() {
        let trace = Trace {
            format: TraceFormat::Mooncake,
            requests: (0..10u32)
                .map(|i| request(f64::from(i) * 1000.0, &[u64::from(i)]))
                .collect(),
        };
        let window = TraceOptions {
            time_window_s: Some(3.5),
            ..TraceOptions::default()
        };
        let kept = |o: &TraceOptions| timed_requests(trace.format, &trace.requests, o).count();
        assert_eq!(kept(&window), 4);
        let count = TraceOptions {
            max_requests: Some(2),
            ..window
        };
        assert_eq!(kept(&count), 2);
    }
}
