//! Open-loop sending: each request at its own time (a trace's arrivals, a rate's), once the
//! request it follows has ended (a conversation's previous turn), at most `max_concurrency`
//! in flight; a request due while all are busy goes when one frees (first come, first
//! served), and its lag (sent minus due) is in its record (`queued_ns` is when it was due).
//! The simulator's `run_scheduled` follows the same rules.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ldqa_model::{RequestRecord, RequestSpec, RoundKind, RoundRecord};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::clock::ns_since;
use crate::runner::{cancelled_record, round_of, unix_now_ns};
use crate::{Cancel, Client, RoundObserver};

/// One request to send at a time.
#[derive(Debug, Clone)]
pub struct ScheduledRequest {
    /// What it is (its `prompt_id` orders the records).
    pub spec: RequestSpec,
    /// When to send it, ns after the start.
    pub send_at_ns: u64,
    /// Its `max_tokens`.
    pub max_tokens: u32,
    /// The earlier request (its position) that must end before this one is sent.
    pub after: Option<usize>,
}

/// Serializes a request's body, just before it is due (a trace's token ids, or a Long Doc
/// QA prompt).
pub trait RequestBodies: Send + Sync {
    /// The body of request `index`.
    fn body(&self, client: &Client, index: usize, request: &ScheduledRequest) -> Vec<u8>;
}

/// Long Doc QA's prompts, as `run_round` sends them.
pub struct PromptBodies<'a>(pub &'a dyn ldqa_model::PromptSource);

impl RequestBodies for PromptBodies<'_> {
    fn body(&self, client: &Client, _index: usize, request: &ScheduledRequest) -> Vec<u8> {
        let mut prompt = String::new();
        self.0.write_prompt(&request.spec, &mut prompt);
        client.body(&prompt)
    }
}

/// Sends `requests` (in ascending `send_at_ns`) on time, at most `max_concurrency` in
/// flight, and returns them as one round of `kind`. With several `clients` (one per
/// server), request `i` goes to `clients[i % n]`: client-side round robin. Ctrl-C: nothing
/// more is sent, requests in flight are recorded as cancelled, the round is marked
/// interrupted.
pub async fn run_scheduled(
    clients: &[Client],
    kind: RoundKind,
    requests: &[ScheduledRequest],
    bodies: &dyn RequestBodies,
    max_concurrency: usize,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> RoundRecord {
    let started_unix_ns = unix_now_ns();
    let start = Instant::now();
    if clients.is_empty() {
        // Nowhere to send: nothing is sent (the callers always give one).
        return round_of(kind, started_unix_ns, start, Vec::new(), cancel);
    }
    let round = Round {
        clients,
        kind,
        requests,
        bodies,
        observer,
        cancel,
        start,
        slots: Semaphore::new(max_concurrency.clamp(1, Semaphore::MAX_PERMITS)),
        ended: requests.iter().map(|_| Ended::default()).collect(),
    };
    let records: Vec<RequestRecord> =
        futures_util::future::join_all((0..requests.len()).map(|i| round.send(i)))
            .await
            .into_iter()
            .flatten()
            .collect();
    round_of(kind, started_unix_ns, start, vec![records], cancel)
}

/// Whether a request has ended, for those that follow it.
#[derive(Default)]
struct Ended {
    done: AtomicBool,
    notify: Notify,
}

impl Ended {
    fn set(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// What every request of a round shares.
struct Round<'a> {
    clients: &'a [Client],
    kind: RoundKind,
    requests: &'a [ScheduledRequest],
    bodies: &'a dyn RequestBodies,
    observer: &'a dyn RoundObserver,
    cancel: &'a Cancel,
    start: Instant,
    slots: Semaphore,
    ended: Vec<Ended>,
}

impl Round<'_> {
    /// Request `i`: waits until it is due, the request it follows has ended and a slot is
    /// free, then sends it. `None`: cancelled before it was sent.
    async fn send(&self, i: usize) -> Option<RequestRecord> {
        let r = &self.requests[i];
        let record = self.send_when_ready(i, r).await;
        self.ended[i].set();
        record
    }

    async fn send_when_ready(&self, i: usize, r: &ScheduledRequest) -> Option<RequestRecord> {
        let due = self.start + Duration::from_nanos(r.send_at_ns);
        let ready = async {
            tokio::time::sleep_until(due).await;
            if let Some(p) = r.after.filter(|&p| p < i) {
                self.ended[p].wait().await;
            }
            self.slots.acquire().await.ok()
        };
        let permit = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return None,
            permit = ready => permit?,
        };
        let client = &self.clients[i % self.clients.len()];
        let body = self.bodies.body(client, i, r);
        let mut slot = client.slot();
        let mut text = String::new();
        let wants_text = self.observer.wants_text();
        self.observer.on_sent(self.kind, &r.spec);
        let sent_ns = ns_since(self.start, Instant::now());
        let send = slot.send(
            &r.spec,
            body,
            self.start,
            r.send_at_ns,
            wants_text.then_some(&mut text),
        );
        let record = tokio::select! {
            biased;
            record = send => record,
            () = self.cancel.cancelled() => {
                let mut rec = cancelled_record(&r.spec, sent_ns, ns_since(self.start, Instant::now()));
                rec.queued_ns = r.send_at_ns;
                rec
            }
        };
        drop(permit);
        self.observer
            .on_finished(self.kind, &record, wants_text.then_some(text.as_str()));
        Some(record)
    }
}
