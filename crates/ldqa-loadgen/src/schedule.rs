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
use crate::{Cancel, Client};

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

/// Writes a request's prompt as token ids, just before it is sent.
pub trait TokenSource: Send + Sync {
    /// The token ids of request `index` into `buf`, replacing what it held.
    fn write_tokens(&self, index: usize, buf: &mut Vec<u32>);
}

/// Sends `requests` (in ascending `send_at_ns`) on time, at most `max_concurrency` in
/// flight, and returns them as one round of `kind`. Ctrl-C: nothing more is sent, requests
/// in flight are recorded as cancelled, the round is marked interrupted.
pub async fn run_scheduled(
    client: &Client,
    kind: RoundKind,
    requests: &[ScheduledRequest],
    tokens: &dyn TokenSource,
    max_concurrency: usize,
    cancel: &Cancel,
) -> RoundRecord {
    let started_unix_ns = unix_now_ns();
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers = max_concurrency.clamp(1, requests.len().max(1));
    let per_worker = futures_util::future::join_all(
        (0..workers).map(|_| worker(client, requests, tokens, start, &next, cancel)),
    )
    .await;
    round_of(kind, started_unix_ns, start, per_worker, cancel)
}

async fn worker(
    client: &Client,
    requests: &[ScheduledRequest],
    tokens: &dyn TokenSource,
    start: Instant,
    next: &AtomicUsize,
    cancel: &Cancel,
) -> Vec<RequestRecord> {
    let mut records = Vec::new();
    let mut slot = client.slot();
    let mut ids = Vec::new();
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(r) = requests.get(i) else { break };
        tokens.write_tokens(i, &mut ids);
        let body = client.token_body(&ids, r.max_tokens);
        let due = start + Duration::from_nanos(r.send_at_ns);
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until(due) => {}
        }
        let sent_ns = ns_since(start, Instant::now());
        let send = slot.send(&r.spec, body, start, r.send_at_ns, None);
        let record = tokio::select! {
            biased;
            record = send => record,
            () = cancel.cancelled() => {
                let mut rec = cancelled_record(&r.spec, sent_ns, ns_since(start, Instant::now()));
                rec.queued_ns = r.send_at_ns;
                rec
            }
        };
        records.push(record);
    }
    records
}
