//! Open-loop sending: each request at its own time (a trace's arrivals), by at most
//! `max_concurrency` workers; a request due while every worker is busy goes when one
//! frees, and its lag (sent minus due) is in its record (`queued_ns` is when it was due).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ldqa_model::{RequestRecord, RequestSpec, RoundKind, RoundRecord};
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
/// flight, and returns them as one round of `kind`. Ctrl-C: nothing more is sent, requests
/// in flight are recorded as cancelled, the round is marked interrupted.
pub async fn run_scheduled(
    client: &Client,
    kind: RoundKind,
    requests: &[ScheduledRequest],
    bodies: &dyn RequestBodies,
    max_concurrency: usize,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> RoundRecord {
    let started_unix_ns = unix_now_ns();
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers = max_concurrency.clamp(1, requests.len().max(1));
    let per_worker = futures_util::future::join_all((0..workers).map(|_| {
        Worker {
            client,
            kind,
            requests,
            bodies,
            observer,
            cancel,
        }
        .run(start, &next)
    }))
    .await;
    round_of(kind, started_unix_ns, start, per_worker, cancel)
}

/// What every worker of a round shares.
struct Worker<'a> {
    client: &'a Client,
    kind: RoundKind,
    requests: &'a [ScheduledRequest],
    bodies: &'a dyn RequestBodies,
    observer: &'a dyn RoundObserver,
    cancel: &'a Cancel,
}

impl Worker<'_> {
    async fn run(self, start: Instant, next: &AtomicUsize) -> Vec<RequestRecord> {
        let mut records = Vec::new();
        let mut slot = self.client.slot();
        let mut text = String::new();
        let wants_text = self.observer.wants_text();
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(r) = self.requests.get(i) else { break };
            let body = self.bodies.body(self.client, i, r);
            let due = start + Duration::from_nanos(r.send_at_ns);
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
            text.clear();
            self.observer.on_sent(self.kind, &r.spec);
            let sent_ns = ns_since(start, Instant::now());
            let send = slot.send(
                &r.spec,
                body,
                start,
                r.send_at_ns,
                wants_text.then_some(&mut text),
            );
            let record = tokio::select! {
                biased;
                record = send => record,
                () = self.cancel.cancelled() => {
                    let mut rec = cancelled_record(&r.spec, sent_ns, ns_since(start, Instant::now()));
                    rec.queued_ns = r.send_at_ns;
                    rec
                }
            };
            self.observer
                .on_finished(self.kind, &record, wants_text.then_some(text.as_str()));
            records.push(record);
        }
        records
    }
}
