//! The Long Doc QA client in virtual time: a round of requests with at most
//! `max_inflight` in flight, the next one sent when one finishes.
//!
//! Like upstream's `long_doc_qa.py` (an asyncio semaphore around each request): every
//! request is queued at the round's start, takes a slot in order, and its clock starts
//! when it gets the slot. The OpenAI front end (HTTP, chat template, tokenisation)
//! delays its arrival at the engine ([`FrontendQueue`]).

mod drive;
mod ids;

pub use drive::{drive_stream, RecordSink, RoundSpan, TimedRequest};
pub use ids::{slot_of, ClientIds, EngineSlots, Placement};

use ldqa_model::{Failure, FailureKind, RequestRecord};

use crate::{Efficiencies, Engine, Event, ReqId, SimError, SimRequest, SimTime};

/// Cost of the server's front end before a request reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frontend {
    /// Fixed cost per request.
    pub request_overhead_ns: u64,
    /// Tokenisation cost per prompt token.
    pub ns_per_prompt_token: u64,
}

impl Frontend {
    /// The front end of the efficiencies file.
    pub fn from_efficiencies(e: &Efficiencies) -> Self {
        Frontend {
            request_overhead_ns: e.frontend_request_ns,
            ns_per_prompt_token: e.frontend_ns_per_prompt_token,
        }
    }

    /// Delay from sending a request to its arrival at the engine.
    pub fn delay_ns(&self, prompt_tokens: u64) -> u64 {
        self.request_overhead_ns
            .saturating_add(self.ns_per_prompt_token.saturating_mul(prompt_tokens))
    }
}

/// The server's front end as a single worker: requests are processed one at a time,
/// in the order they were received, each for [`Frontend::delay_ns`], and the engine's
/// outputs reach the client only when the worker is between two of those jobs.
///
/// vLLM's API server is one process (one asyncio loop) that parses and tokenises requests
/// one after the other, so requests a client sends together reach the engine spread out,
/// not in one batch; and while it tokenises one prompt, the tokens the engine produced for
/// others wait in its queue. (On the CPU vLLM, with 2 in flight, a query's first token came
/// 4–9 ms after the engine produced it whenever the other request of its pair was being
/// prepared: docs/simulator.md.) Both the round driver here and `ldqa serve` use this, so
/// that a prediction and a served run see the same arrivals and deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrontendQueue {
    frontend: Frontend,
    free_at: SimTime,
    /// The jobs that end after the outputs handed out so far, as (start, end), in order.
    busy: std::collections::VecDeque<(SimTime, SimTime)>,
}

impl FrontendQueue {
    /// An idle front end.
    pub fn new(frontend: Frontend) -> Self {
        FrontendQueue {
            frontend,
            free_at: SimTime::ZERO,
            busy: std::collections::VecDeque::new(),
        }
    }

    /// When a request received at `received` with `prompt_tokens` reaches the engine.
    pub fn arrival(&mut self, received: SimTime, prompt_tokens: u64) -> SimTime {
        let start = received.max(self.free_at);
        self.free_at = start.plus_ns(self.frontend.delay_ns(prompt_tokens));
        if self.free_at > start {
            self.busy.push_back((start, self.free_at));
        }
        self.free_at
    }

    /// When an output the engine produced at `produced` reaches the client: at once when
    /// the front end is idle then, else when the job it is busy with ends. Asked in the
    /// order of `produced`.
    pub fn delivery(&mut self, produced: SimTime) -> SimTime {
        while self.busy.front().is_some_and(|&(_, end)| end <= produced) {
            self.busy.pop_front();
        }
        match self.busy.front() {
            Some(&(start, end)) if start <= produced => end,
            _ => produced,
        }
    }
}

/// Engine events held back until the front end delivers them ([`FrontendQueue::delivery`]),
/// in delivery order (the order they were produced: a delivery is never earlier than a
/// later output's).
#[derive(Debug, Default)]
pub struct Deliveries {
    pending: std::collections::VecDeque<Event>,
}

impl Deliveries {
    /// Takes the engine's new `events`, each renamed by `client_id` (while the engine
    /// still holds the request: it reuses a slot at once) and re-timed to its delivery
    /// through `front`.
    pub fn hold(
        &mut self,
        front: &mut FrontendQueue,
        events: &mut Vec<Event>,
        client_id: impl Fn(ReqId) -> ReqId,
    ) {
        for mut ev in events.drain(..) {
            ev.req = client_id(ev.req);
            ev.at = front.delivery(ev.at);
            self.pending.push_back(ev);
        }
    }

    /// When the next held event is delivered.
    pub fn next_time(&self) -> Option<SimTime> {
        self.pending.front().map(|e| e.at)
    }

    /// Moves the events delivered by `t` to `out`.
    pub fn release(&mut self, t: SimTime, out: &mut Vec<Event>) {
        while self.pending.front().is_some_and(|e| e.at <= t) {
            out.extend(self.pending.pop_front());
        }
    }
}

/// What the virtual-time client sends to: one engine behind its front end, or a cluster
/// of them behind a router ([`crate::cluster::Cluster`]).
pub trait Backend {
    /// The virtual clock.
    fn now(&self) -> SimTime;
    /// The engines' configuration (the same for every instance).
    fn config(&self) -> &crate::EngineConfig;
    /// A request the client sent at `received` (in `session`, if any): its id, which its
    /// events carry.
    fn send(
        &mut self,
        received: SimTime,
        req: SimRequest,
        session: Option<u64>,
    ) -> Result<ReqId, SimError>;
    /// Where request `id` went and when it reached that engine; `None` while a router is
    /// still deciding. Still known when its last event has been handed out.
    fn placement(&self, id: ReqId) -> Option<Placement>;
    /// When something next happens, `None` when idle.
    fn next_event_time(&self) -> Option<SimTime>;
    /// Runs up to `t`, appending the events to `out` in time order.
    fn advance_to(&mut self, t: SimTime, out: &mut Vec<Event>) -> Result<(), SimError>;
    /// Runs until idle.
    fn run_to_idle(&mut self, out: &mut Vec<Event>) -> Result<(), SimError> {
        while let Some(t) = self.next_event_time() {
            self.advance_to(t, out)?;
        }
        Ok(())
    }
}

/// One engine behind one front end.
pub struct SingleEngine<'a> {
    engine: &'a mut Engine,
    front: FrontendQueue,
    held: Deliveries,
    produced: Vec<Event>,
    ids: ClientIds,
    engine_slots: EngineSlots,
}

impl<'a> SingleEngine<'a> {
    /// `engine` behind an idle `frontend`.
    pub fn new(engine: &'a mut Engine, frontend: Frontend) -> Self {
        SingleEngine {
            engine,
            front: FrontendQueue::new(frontend),
            held: Deliveries::default(),
            produced: Vec::new(),
            ids: ClientIds::default(),
            engine_slots: EngineSlots::default(),
        }
    }
}

impl Backend for SingleEngine<'_> {
    fn now(&self) -> SimTime {
        self.engine.now()
    }
    fn config(&self) -> &crate::EngineConfig {
        self.engine.config()
    }
    fn send(
        &mut self,
        received: SimTime,
        req: SimRequest,
        _session: Option<u64>,
    ) -> Result<ReqId, SimError> {
        let arrival = self.front.arrival(received, req.prompt_tokens);
        let engine_id = self.engine.submit(arrival, req)?;
        let (slot, id) = self.ids.issue();
        self.ids.place(
            slot,
            Placement {
                instance: 0,
                arrival,
            },
        );
        self.engine_slots.bind(engine_id, slot);
        Ok(id)
    }
    fn placement(&self, id: ReqId) -> Option<Placement> {
        self.ids.placement(id)
    }
    fn next_event_time(&self) -> Option<SimTime> {
        let engine = self.engine.next_event_time();
        engine.into_iter().chain(self.held.next_time()).min()
    }
    fn advance_to(&mut self, t: SimTime, out: &mut Vec<Event>) -> Result<(), SimError> {
        self.engine.advance_to(t, &mut self.produced)?;
        let (ids, slots) = (&self.ids, &self.engine_slots);
        self.held.hold(&mut self.front, &mut self.produced, |id| {
            ids.id_of(slots.client_slot(id))
        });
        let first = out.len();
        self.held.release(t, out);
        for ev in &out[first..] {
            if ev.kind.is_terminal() {
                self.ids.free(slot_of(ev.req));
            }
        }
        Ok(())
    }
}

/// One request of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRequest {
    /// Position in the round (upstream's `prompt_id`).
    pub prompt_id: usize,
    /// The document the prompt was built from.
    pub document_id: usize,
    /// A deliberate miss (a unique prefix).
    pub is_miss: bool,
    /// What the engine is asked.
    pub request: SimRequest,
    /// The session it belongs to (a conversation), for routers that keep a session on one
    /// instance; none for a request on its own.
    pub session: Option<u64>,
}

/// A finished round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// One record per request, in `prompt_id` order; times are offsets from `start`.
    pub records: Vec<RequestRecord>,
    /// When the round started on the virtual clock.
    pub start: SimTime,
    /// When its last request ended.
    pub end: SimTime,
    /// The instance that served each request (all 0 on one engine).
    pub instances: Vec<u32>,
}

impl RoundOutcome {
    /// Round time: from its start until its last request ended.
    pub fn duration_ns(&self) -> u64 {
        self.end.ns_since(self.start)
    }

    /// Mean TTFT over successful requests, in ns (0 when none succeeded).
    pub fn mean_ttft_ns(&self) -> u64 {
        let ttfts: Vec<u64> = self.records.iter().filter_map(|r| r.ttft_ns()).collect();
        if ttfts.is_empty() {
            0
        } else {
            (ttfts.iter().map(|&t| u128::from(t)).sum::<u128>() / ttfts.len() as u128) as u64
        }
    }
}

/// vLLM's answer (HTTP 400) to a request longer than `max_model_len`, word for word;
/// `ldqa serve` answers with it too.
pub fn context_length_message(max_model_len: u64, prompt_tokens: u64, max_tokens: u32) -> String {
    format!(
        "This model's maximum context length is {max_model_len} tokens. However, you requested {} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). Please reduce the length of the messages or completion.",
        prompt_tokens + u64::from(max_tokens)
    )
}

/// The answer (HTTP 400) to a request that can never fit the GPU KV cache.
pub fn kv_capacity_message(needed_tokens: u64, capacity_tokens: u64) -> String {
    format!(
        "the request needs {needed_tokens} tokens of KV cache but the GPU KV cache holds {capacity_tokens} tokens"
    )
}

/// Why the engine refused a request of `prompt_tokens` asking for `max_tokens`, worded as
/// `ldqa serve` (and vLLM) answer it: HTTP 400.
fn rejection(config: &crate::EngineConfig, prompt_tokens: u64, max_tokens: u32) -> Failure {
    let needed = prompt_tokens + u64::from(max_tokens);
    let message = if needed > config.max_model_len_tokens {
        context_length_message(config.max_model_len_tokens, prompt_tokens, max_tokens)
    } else if prompt_tokens == 0 || max_tokens == 0 {
        "the prompt and max_tokens must both be at least 1".to_string()
    } else {
        kv_capacity_message(needed, config.gpu_kv_tokens)
    };
    let mut failure = Failure::new(FailureKind::HttpStatus, message);
    failure.http_status = Some(400);
    failure
}

/// Runs `requests` as one round on `engine`, starting at the engine's clock, with at
/// most `max_inflight` requests in flight. Runs the engine until the round's last
/// request ends; the engine is then idle at [`RoundOutcome::end`].
pub fn run_round(
    engine: &mut Engine,
    requests: &[RoundRequest],
    max_inflight: usize,
    frontend: &Frontend,
) -> Result<RoundOutcome, SimError> {
    let mut single = SingleEngine::new(engine, *frontend);
    collect(&mut single, requests, |_| (0, None), max_inflight)
}

/// [`run_round`] on any [`Backend`] (a cluster of engines behind a router).
pub fn run_round_on(
    backend: &mut impl Backend,
    requests: &[RoundRequest],
    max_inflight: usize,
) -> Result<RoundOutcome, SimError> {
    collect(backend, requests, |_| (0, None), max_inflight)
}

/// When and after what the requests of an open-loop round are sent.
#[derive(Debug, Clone, Copy)]
pub struct Schedule<'a> {
    /// Request `i` is due `send_at_ns[i]` after the round's start (ascending).
    pub send_at_ns: &'a [u64],
    /// Request `i` waits for request `after[i]` (an earlier one) to end: a conversation's
    /// next turn after the previous answer (empty: no dependencies).
    pub after: &'a [Option<usize>],
    /// At most this many in flight; one due while none is free is sent when one frees.
    pub max_concurrency: Option<usize>,
}

/// Runs `requests` open loop on `schedule` (a trace's or a rate's arrivals): each is sent
/// when it is due, the request it follows has ended, and a slot is free.
pub fn run_scheduled(
    engine: &mut Engine,
    requests: &[RoundRequest],
    schedule: &Schedule<'_>,
    frontend: &Frontend,
) -> Result<RoundOutcome, SimError> {
    let mut single = SingleEngine::new(engine, *frontend);
    run_scheduled_on(&mut single, requests, schedule)
}

/// [`run_scheduled`] on any [`Backend`] (a cluster of engines behind a router).
pub fn run_scheduled_on(
    backend: &mut impl Backend,
    requests: &[RoundRequest],
    schedule: &Schedule<'_>,
) -> Result<RoundOutcome, SimError> {
    let n = requests.len();
    if schedule.send_at_ns.len() != n || !(schedule.after.is_empty() || schedule.after.len() == n) {
        return Err(SimError::InvalidConfig {
            field: "schedule",
            reason: format!(
                "{} times and {} dependencies for {n} requests",
                schedule.send_at_ns.len(),
                schedule.after.len()
            ),
        });
    }
    let cap = schedule.max_concurrency.unwrap_or(usize::MAX);
    let at = |i: usize| {
        let after = schedule.after.get(i).copied().flatten().filter(|&p| p < i);
        (schedule.send_at_ns[i], after)
    };
    collect(backend, requests, at, cap)
}

/// Drives `requests` (request `i` due and following as `at(i)` says) and keeps every
/// record, in order.
fn collect(
    backend: &mut impl Backend,
    requests: &[RoundRequest],
    at: impl Fn(usize) -> (u64, Option<usize>),
    max_inflight: usize,
) -> Result<RoundOutcome, SimError> {
    let mut records: Vec<RequestRecord> = requests
        .iter()
        .map(|r| RequestRecord::new(r.prompt_id, r.document_id, r.is_miss))
        .collect();
    let mut instances = vec![0u32; requests.len()];
    let source = requests.iter().enumerate().map(|(i, r)| {
        let (due_ns, after) = at(i);
        TimedRequest {
            request: r.clone(),
            due_ns,
            after,
        }
    });
    let span = drive_stream(backend, source, max_inflight, &mut |i, instance, record| {
        records[i] = record;
        instances[i] = instance;
    })?;
    Ok(RoundOutcome {
        records,
        start: span.start,
        end: span.end,
        instances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> SimTime {
        SimTime::ZERO.plus_ns(n * 1_000_000)
    }

    #[test]
    fn outputs_wait_for_the_preparation_under_way() {
        let mut front = FrontendQueue::new(Frontend {
            request_overhead_ns: 10_000_000,
            ns_per_prompt_token: 0,
        });
        // Two requests received together: prepared over 0–10 ms, then 10–20 ms.
        assert_eq!(front.arrival(ms(0), 100), ms(10));
        assert_eq!(front.arrival(ms(0), 100), ms(20));
        // The first one's token, produced at 16 ms, waits for the second's preparation.
        assert_eq!(front.delivery(ms(16)), ms(20));
        // Idle after it: at once.
        assert_eq!(front.delivery(ms(25)), ms(25));
        // Busy again over 30–40 ms: from its start to just before its end.
        assert_eq!(front.arrival(ms(30), 1), ms(40));
        assert_eq!(front.delivery(ms(30)), ms(40));
        assert_eq!(front.delivery(ms(40)), ms(40));
    }

    #[test]
    fn held_events_go_out_in_order_when_delivered() {
        let mut front = FrontendQueue::new(Frontend {
            request_overhead_ns: 10_000_000,
            ns_per_prompt_token: 0,
        });
        front.arrival(ms(5), 1); // busy over 5–15 ms
        let token = |at: SimTime, index: u32| Event {
            at,
            req: ReqId(1),
            kind: crate::EventKind::Token { index },
        };
        let mut held = Deliveries::default();
        let mut produced = vec![token(ms(2), 0), token(ms(7), 1), token(ms(12), 2)];
        held.hold(&mut front, &mut produced, |id| id);
        assert!(produced.is_empty());
        let mut out = Vec::new();
        held.release(ms(10), &mut out);
        assert_eq!(out.iter().map(|e| e.at).collect::<Vec<_>>(), [ms(2)]);
        assert_eq!(held.next_time(), Some(ms(15)));
        held.release(ms(15), &mut out);
        assert_eq!(
            out.iter().map(|e| e.at).collect::<Vec<_>>(),
            [ms(2), ms(15), ms(15)]
        );
        assert_eq!(held.next_time(), None);
    }
}
