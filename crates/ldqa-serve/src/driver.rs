//! The engine task: one task owns the [`Engine`] and runs it on the wall clock.
//!
//! Virtual time and wall time: simulated time runs `time_scale` times faster than the
//! wall clock, from the moment the task starts (`origin`): virtual `v` happens at wall
//! `origin + v / time_scale`. Every time a client sees (TTFT, round time, the TTFT
//! histogram of `/metrics`) is a wall time; multiply it by `time_scale` to get the
//! simulated seconds that `ldqa predict` reports.
//!
//! A submission is stamped on the wall clock when the handler sends it; it reaches the
//! engine at that virtual time plus the front end's simulated cost
//! ([`Frontend::delay_ns`], the same delay `ldqa predict` adds), so that a client's TTFT
//! matches the prediction. The task sleeps until the wall deadline of the engine's next
//! event (an OS thread waiting with `recv_timeout` on absolute deadlines, so lateness does not accumulate), advances
//! the engine exactly to that virtual time, and forwards each event to its request's
//! stream with the wall deadline it was due at.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ldqa_model::PrefixSource;
use ldqa_sim::kv_events::KvEvent;
use ldqa_sim::round::{Deliveries, Frontend, FrontendQueue};
use ldqa_sim::{Engine, Event, EventKind, ReqId, SimRequest, SimTime};
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::kv_events::{KvEventPublisher, WireEvent};
use crate::metrics::{FinishedTimes, Metrics};

/// What a request's stream receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamEvent {
    /// An output token is due.
    Token {
        /// 0-based position of the token in the output.
        index: u32,
        /// When to write it, on the wall clock.
        due: Instant,
    },
    /// All tokens were produced.
    Finished {
        /// Where the prompt's tokens came from (GPU cache, CPU tier, prefill).
        prefix: PrefixSource,
        /// Tokens generated.
        output_tokens: u32,
    },
    /// The engine can never run this request (larger than the GPU KV cache).
    Rejected,
    /// Aborted (only seen if the stream still listens).
    Aborted,
}

/// Handle of a submitted request, chosen by the server (not the engine's [`ReqId`]).
pub type Ticket = u64;

pub(crate) enum Command {
    Submit {
        ticket: Ticket,
        request: SimRequest,
        /// The prompt's token ids, when KV events need them.
        tokens: Option<Arc<[u64]>>,
        received: Instant,
        events: mpsc::UnboundedSender<StreamEvent>,
    },
    Abort(Ticket),
    ResetPrefixCache(oneshot::Sender<bool>),
    /// A `/tokenize` of `prompt_tokens` received at `received`: it takes the front end as
    /// a generation request's preparation does (vLLM's API server renders and tokenizes
    /// both alike), and `reply` gets the wall instant it is done.
    Tokenize {
        prompt_tokens: u64,
        received: Instant,
        reply: oneshot::Sender<Instant>,
    },
}

/// Maps virtual time to wall time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    time_scale: f64,
}

impl Clock {
    /// A clock starting now; `time_scale` > 0 (checked by the caller).
    pub fn new(origin: Instant, time_scale: f64) -> Self {
        Clock { origin, time_scale }
    }

    /// The virtual time at wall instant `t`.
    pub fn virtual_at(&self, t: Instant) -> SimTime {
        let wall_ns = t.saturating_duration_since(self.origin).as_nanos() as f64;
        SimTime((wall_ns * self.time_scale) as u64)
    }

    /// The wall instant of virtual time `v`.
    pub fn wall_at(&self, v: SimTime) -> Instant {
        self.origin + Duration::from_nanos((v.as_ns() as f64 / self.time_scale) as u64)
    }
}

struct Live {
    ticket: Ticket,
    events: mpsc::UnboundedSender<StreamEvent>,
    received: Instant,
    prompt_tokens: u64,
    /// When it reached the engine (after the front end).
    queued: SimTime,
    /// Its first and latest tokens so far (virtual time).
    first_token: Option<SimTime>,
    last_token: Option<SimTime>,
    /// The prompt's token ids (KV events only).
    tokens: Option<Arc<[u64]>>,
}

/// Where the engine's KV events go, and what turns them into vLLM's.
pub(crate) struct KvSink {
    pub publisher: KvEventPublisher,
    pub block_size: u32,
    /// The token every output position holds.
    pub output_token: u64,
}

pub(crate) struct Driver {
    engine: Engine,
    clock: Clock,
    frontend: FrontendQueue,
    metrics: Arc<Metrics>,
    live: HashMap<ReqId, Live>,
    by_ticket: HashMap<Ticket, ReqId>,
    /// The engine's events, then those the front end has delivered ([`FrontendQueue`]:
    /// the engine's outputs wait while the front end prepares a request).
    produced: Vec<Event>,
    held: Deliveries,
    events: Vec<Event>,
    kv: Option<KvSink>,
    kv_events: Vec<KvEvent>,
}

impl Driver {
    pub(crate) fn new(
        engine: Engine,
        clock: Clock,
        frontend: Frontend,
        metrics: Arc<Metrics>,
        kv: Option<KvSink>,
    ) -> Self {
        Driver {
            engine,
            clock,
            frontend: FrontendQueue::new(frontend),
            metrics,
            live: HashMap::new(),
            by_ticket: HashMap::new(),
            produced: Vec::new(),
            held: Deliveries::default(),
            events: Vec::new(),
            kv,
            kv_events: Vec::new(),
        }
    }

    /// Runs on its own OS thread until every command sender is gone. A thread, not a
    /// task: `recv_timeout` wakes within tens of microseconds of a deadline, where
    /// Tokio's timer rounds sleeps up to whole milliseconds.
    pub(crate) fn run(mut self, commands: std_mpsc::Receiver<Command>) {
        self.publish();
        loop {
            let deadline = self.next_event_time().map(|t| self.clock.wall_at(t));
            let cmd = match deadline {
                None => commands
                    .recv()
                    .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                Some(d) => commands.recv_timeout(d.saturating_duration_since(Instant::now())),
            };
            match cmd {
                Ok(cmd) => self.handle(cmd),
                Err(std_mpsc::RecvTimeoutError::Timeout) => self.step(),
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                ticket,
                request,
                tokens,
                received,
                events,
            } => {
                let now = self.clock.virtual_at(received).max(self.engine.now());
                let prompt_tokens = request.prompt_tokens;
                let at = self.frontend.arrival(now, prompt_tokens);
                match self.engine.submit(at, request) {
                    Ok(id) => {
                        self.by_ticket.insert(ticket, id);
                        self.live.insert(
                            id,
                            Live {
                                ticket,
                                events,
                                received,
                                prompt_tokens,
                                queued: at,
                                first_token: None,
                                last_token: None,
                                tokens,
                            },
                        );
                    }
                    Err(_) => {
                        // Cannot happen (`at` ≥ now); refuse rather than panic.
                        let _ = events.send(StreamEvent::Rejected);
                    }
                }
            }
            Command::Abort(ticket) => {
                if let Some(id) = self.by_ticket.remove(&ticket) {
                    self.live.remove(&id);
                    // `false`: the request already left the engine (its last step was
                    // planned; its Finished event is pending) and counts as finished.
                    if self.engine.abort(id) {
                        self.metrics.aborted();
                    }
                }
            }
            Command::ResetPrefixCache(reply) => {
                let _ = reply.send(self.engine.reset_prefix_cache());
                self.publish_kv_events();
            }
            Command::Tokenize {
                prompt_tokens,
                received,
                reply,
            } => {
                let now = self.clock.virtual_at(received).max(self.engine.now());
                let done = self.frontend.arrival(now, prompt_tokens);
                let _ = reply.send(self.clock.wall_at(done));
            }
        }
        self.publish();
    }

    /// The engine's next step, or the front end's next delivery.
    fn next_event_time(&self) -> Option<SimTime> {
        let engine = self.engine.next_event_time();
        engine.into_iter().chain(self.held.next_time()).min()
    }

    fn step(&mut self) {
        let Some(t) = self.next_event_time() else {
            return;
        };
        if self.clock.wall_at(t) > Instant::now() {
            return; // woken early
        }
        if self.engine.next_event_time() == Some(t) {
            // The tokens due now go out first; deciding the next step (13 µs at the
            // median, 50 µs at most, with a thousand requests running) comes after, off
            // their path.
            if self.engine.release_due(t, &mut self.produced).is_err() {
                // `t` comes from the engine itself and is never in its past.
                return;
            }
            self.deliver(t);
            if self.engine.advance_to(t, &mut self.produced).is_err() {
                return;
            }
            // Before the events: a request that ends in them still has its tokens.
            self.publish_kv_events();
        }
        self.deliver(t);
        self.publish();
    }

    /// Sends the events the front end has delivered by `t`.
    fn deliver(&mut self, t: SimTime) {
        // The engine's ids are the streams' (no id outlives its request here).
        self.held
            .hold(&mut self.frontend, &mut self.produced, |id| id);
        self.held.release(t, &mut self.events);
        self.forward_events();
    }

    /// Sends the engine's KV events since the last call as one batch, each cached block
    /// with its tokens, a request's consecutive blocks in one `BlockStored`.
    fn publish_kv_events(&mut self) {
        let Some(kv) = &self.kv else {
            return;
        };
        self.engine.take_kv_events(&mut self.kv_events);
        let mut wire: Vec<WireEvent> = Vec::new();
        for ev in self.kv_events.drain(..) {
            match ev {
                KvEvent::Stored {
                    req,
                    index,
                    hash,
                    parent,
                } => {
                    let Some(tokens) = self.live.get(&req).and_then(|l| l.tokens.as_deref()) else {
                        continue;
                    };
                    let bs = u64::from(kv.block_size);
                    let token = |p: u64| {
                        let id = usize::try_from(p)
                            .ok()
                            .and_then(|p| tokens.get(p))
                            .copied()
                            .unwrap_or(kv.output_token);
                        u32::try_from(id).unwrap_or(u32::MAX)
                    };
                    let ids = (index * bs..(index + 1) * bs).map(token);
                    match wire.last_mut() {
                        // The block after the last one stored: the same run.
                        Some(WireEvent::Stored {
                            hashes, token_ids, ..
                        }) if parent.is_some() && hashes.last() == parent.as_ref() => {
                            hashes.push(hash);
                            token_ids.extend(ids);
                        }
                        _ => wire.push(WireEvent::Stored {
                            hashes: vec![hash],
                            parent,
                            token_ids: ids.collect(),
                            block_size: kv.block_size,
                        }),
                    }
                }
                KvEvent::Removed { hash } => match wire.last_mut() {
                    Some(WireEvent::Removed { hashes }) => hashes.push(hash),
                    _ => wire.push(WireEvent::Removed { hashes: vec![hash] }),
                },
                KvEvent::Cleared => wire.push(WireEvent::Cleared),
            }
        }
        kv.publisher.send(wire);
    }

    /// Sends the buffered engine events to their requests' streams, and records their
    /// times in the metrics.
    fn forward_events(&mut self) {
        for ev in std::mem::take(&mut self.events) {
            let Some(live) = self.live.get_mut(&ev.req) else {
                continue;
            };
            let wall = |t: SimTime| self.clock.wall_at(t);
            let msg = match ev.kind {
                EventKind::Token { index } => {
                    if index == 0 {
                        let ttft = wall(ev.at).saturating_duration_since(live.received);
                        self.metrics.first_token(ttft, live.prompt_tokens);
                        live.first_token = Some(ev.at);
                    } else if let Some(last) = live.last_token {
                        self.metrics
                            .inter_token(wall(ev.at).saturating_duration_since(wall(last)));
                    }
                    live.last_token = Some(ev.at);
                    StreamEvent::Token {
                        index,
                        due: wall(ev.at),
                    }
                }
                EventKind::Finished {
                    prefix,
                    output_tokens,
                    scheduled_at,
                } => {
                    let first = live.first_token.unwrap_or(ev.at);
                    let last = live.last_token.unwrap_or(ev.at);
                    let between =
                        |a: SimTime, b: SimTime| wall(b).saturating_duration_since(wall(a));
                    self.metrics.finished(&FinishedTimes {
                        e2e: wall(ev.at).saturating_duration_since(live.received),
                        queue: between(live.queued, scheduled_at),
                        prefill: between(scheduled_at, first),
                        decode: between(first, last),
                        inference: between(scheduled_at, last),
                        prompt_tokens: live.prompt_tokens,
                        output_tokens,
                    });
                    StreamEvent::Finished {
                        prefix,
                        output_tokens,
                    }
                }
                EventKind::Rejected => StreamEvent::Rejected,
                EventKind::Aborted => StreamEvent::Aborted,
            };
            let _ = live.events.send(msg);
            if ev.kind.is_terminal() {
                if let Some(live) = self.live.remove(&ev.req) {
                    self.by_ticket.remove(&live.ticket);
                }
            }
        }
    }

    fn publish(&self) {
        self.metrics.publish(&self.engine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_round_trips() {
        let origin = Instant::now();
        let c = Clock::new(origin, 10.0);
        let v = c.virtual_at(origin + Duration::from_millis(3));
        assert_eq!(v, SimTime::from_ms(30));
        assert_eq!(
            c.wall_at(SimTime::from_ms(30)),
            origin + Duration::from_millis(3)
        );
    }
}
