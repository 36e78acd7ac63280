//! The virtual-time client's event loop, streaming: requests are read from their source
//! only when they are due, and each record leaves through the sink the moment its request
//! ends, so a round's memory is what is in flight or queued, not its length (a one-hour
//! trace and a one-day trace need the same).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use ldqa_model::{Failure, FailureKind, RequestRecord, Usage};

use super::{rejection, Backend, RoundRequest};
use crate::{Event, EventKind, ReqId, SimError, SimTime};

/// A request as the client learns of it: what to send, when, and after what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedRequest {
    /// What is sent.
    pub request: RoundRequest,
    /// When it is due, ns after the round's start (a source yields these ascending).
    pub due_ns: u64,
    /// The earlier request (by position in the source) whose end it waits for: a
    /// conversation's next turn after the previous answer.
    pub after: Option<usize>,
}

/// When a driven round started and its last request ended, on the virtual clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundSpan {
    /// When the round started (the engine idle).
    pub start: SimTime,
    /// When its last request ended.
    pub end: SimTime,
}

/// Receives each request's record as it ends: its position in the source, the instance
/// that served it, the record.
pub type RecordSink<'a> = dyn FnMut(usize, u32, RequestRecord) + 'a;

/// A request free to go, ordered by when it may go, then by position.
#[derive(Debug)]
struct Ready {
    at: SimTime,
    index: usize,
    due_ns: u64,
    request: RoundRequest,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.index) == (other.at, other.index)
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.index).cmp(&(other.at, other.index))
    }
}

/// A request on an engine, with the record it is filling.
struct InFlight {
    index: usize,
    id: ReqId,
    instance: u32,
    prompt_tokens: u64,
    max_output_tokens: u32,
    record: RequestRecord,
}

/// What the client holds: requests read but not yet sent, and those in flight.
struct Client<I: Iterator<Item = TimedRequest>> {
    source: std::iter::Peekable<I>,
    read: usize,
    start: SimTime,
    /// Free to go, soonest first.
    ready: BinaryHeap<Reverse<Ready>>,
    /// Every request read and not ended, with the requests waiting for its end.
    live: HashMap<usize, Vec<Ready>>,
    /// In flight, by engine slot (the low 32 bits of the id).
    by_slot: Vec<Option<InFlight>>,
    in_flight: usize,
}

impl<I: Iterator<Item = TimedRequest>> Client<I> {
    /// Reads every request due by `now`: free to go, or waiting for the one it follows.
    fn read_due(&mut self, now: SimTime) {
        while let Some(r) = self.source.next_if(|r| self.start.plus_ns(r.due_ns) <= now) {
            let index = self.read;
            self.read += 1;
            let ready = Ready {
                at: self.start.plus_ns(r.due_ns),
                index,
                due_ns: r.due_ns,
                request: r.request,
            };
            match r.after.and_then(|p| self.live.get_mut(&p)) {
                Some(waiting) => waiting.push(ready),
                None => self.ready.push(Reverse(ready)),
            }
            self.live.insert(index, Vec::new());
        }
    }

    /// When the next request falls due while a slot is free.
    fn next_due(&mut self, max_inflight: usize) -> Option<SimTime> {
        if self.in_flight >= max_inflight {
            return None;
        }
        let queued = self.ready.peek().map(|Reverse(r)| r.at);
        let unread = self.source.peek().map(|r| self.start.plus_ns(r.due_ns));
        queued.into_iter().chain(unread).min()
    }

    /// Sends request `r` at `at`.
    fn send(&mut self, engine: &mut impl Backend, r: Ready, at: SimTime) -> Result<(), SimError> {
        let (prompt_tokens, max_output_tokens) = (
            r.request.request.prompt_tokens,
            r.request.request.max_output_tokens,
        );
        let id = engine.send(at, r.request.request, r.request.session)?;
        let mut record = RequestRecord::new(
            r.request.prompt_id,
            r.request.document_id,
            r.request.is_miss,
        );
        // Open loop: when it was due (a full in-flight cap sends it late).
        record.queued_ns = r.due_ns;
        record.sent_ns = at.ns_since(self.start);
        let slot = (id.0 & 0xffff_ffff) as usize;
        if self.by_slot.len() <= slot {
            self.by_slot.resize_with(slot + 1, || None);
        }
        self.by_slot[slot] = Some(InFlight {
            index: r.index,
            id,
            instance: 0, // known when it ends (a router may still be deciding)
            prompt_tokens,
            max_output_tokens,
            record,
        });
        self.in_flight += 1;
        Ok(())
    }

    /// Applies one engine event; returns the request it ended, if it ended one, with where
    /// it went.
    fn on_event(&mut self, ev: Event, engine: &impl Backend) -> Option<InFlight> {
        let config = engine.config();
        let slot = (ev.req.0 & 0xffff_ffff) as usize;
        let entry = self.by_slot.get_mut(slot)?;
        let f = entry.as_mut().filter(|f| f.id == ev.req)?;
        let at_ns = ev.at.ns_since(self.start);
        let rec = &mut f.record;
        match ev.kind {
            EventKind::Token { .. } => {
                rec.on_content(at_ns);
                return None;
            }
            EventKind::Finished {
                prefix,
                output_tokens,
                ..
            } => {
                rec.usage = Some(Usage {
                    prompt_tokens: Some(f.prompt_tokens),
                    completion_tokens: Some(u64::from(output_tokens)),
                    cached_tokens: Some(prefix.gpu_hit_tokens + prefix.cpu_hit_tokens),
                });
                rec.prefix = Some(prefix);
            }
            EventKind::Rejected => {
                rec.failure = Some(rejection(config, f.prompt_tokens, f.max_output_tokens));
            }
            EventKind::Aborted => {
                rec.failure = Some(Failure::new(FailureKind::Cancelled, "aborted"));
            }
        }
        rec.end_ns = at_ns;
        if let Some(p) = engine.placement(f.id) {
            rec.first_byte_ns = Some(p.arrival.ns_since(self.start));
            f.instance = p.instance;
        }
        self.in_flight -= 1;
        let ended = entry.take()?;
        for mut next in self.live.remove(&ended.index).unwrap_or_default() {
            next.at = next.at.max(ev.at);
            self.ready.push(Reverse(next));
        }
        Some(ended)
    }
}

/// Runs the requests of `source` (in due order) on `engine`, at most `max_inflight` in
/// flight: each is sent when it is due, the request it follows has ended, and a slot is
/// free (the earliest due first, then the first read). Starts on an idle engine at its
/// clock; hands each record to `sink` as its request ends.
pub fn drive_stream(
    engine: &mut impl Backend,
    source: impl Iterator<Item = TimedRequest>,
    max_inflight: usize,
    sink: &mut RecordSink<'_>,
) -> Result<RoundSpan, SimError> {
    if max_inflight == 0 {
        return Err(SimError::InvalidConfig {
            field: "max_inflight",
            reason: "must be ≥ 1".into(),
        });
    }
    // Finish whatever is left from before, so the round starts on an idle engine.
    let mut events: Vec<Event> = Vec::new();
    engine.run_to_idle(&mut events)?;
    events.clear();
    let start = engine.now();
    let mut client = Client {
        source: source.peekable(),
        read: 0,
        start,
        ready: BinaryHeap::new(),
        live: HashMap::new(),
        by_slot: Vec::new(),
        in_flight: 0,
    };
    let mut now = start;
    let mut last_end = start;
    client.read_due(now);
    loop {
        // Sent after the last batch of events: a new request may reuse an engine slot
        // whose events were in it.
        while client.in_flight < max_inflight {
            match client.ready.peek() {
                Some(Reverse(r)) if r.at <= now => {
                    let Some(Reverse(r)) = client.ready.pop() else {
                        break;
                    };
                    client.send(engine, r, now)?;
                }
                _ => break,
            }
        }
        let t = match (engine.next_event_time(), client.next_due(max_inflight)) {
            (None, None) => break,
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => a.min(b),
        };
        engine.advance_to(t, &mut events)?;
        now = t;
        // Read before the events are applied: a turn due by now waits for a previous
        // answer that ends in them.
        client.read_due(now);
        for &ev in &events {
            if let Some(ended) = client.on_event(ev, engine) {
                last_end = last_end.max(ev.at);
                sink(ended.index, ended.instance, ended.record);
            }
        }
        events.clear();
    }
    Ok(RoundSpan {
        start,
        end: last_end,
    })
}
