//! A round of requests under the in-flight cap.
//!
//! Like upstream (an asyncio semaphore over all of a round's requests), every request
//! is queued at the round's start and sent, in order, as soon as one of the
//! `max_inflight` slots is free. Here the slots are worker tasks pulling the next index:
//! each keeps its records locally and the round merges them once, so nothing is shared
//! on the hot path but one atomic counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ldqa_model::{
    Failure, FailureKind, PromptSource, RequestRecord, RequestSpec, RoundKind, RoundRecord,
};
use tokio::time::Instant;

use crate::clock::ns_since;
use crate::{Cancel, Client};

/// Hears about a round as it runs (progress bars, crash-safe record logs, response files).
///
/// Called from the workers: keep it quick, and never block on I/O for long.
pub trait RoundObserver: Send + Sync {
    /// A request took a slot and is being sent.
    fn on_sent(&self, _kind: RoundKind, _spec: &RequestSpec) {}
    /// A request ended (successfully or not); `text` is its generated text when
    /// [`RoundObserver::wants_text`] is true.
    fn on_finished(&self, _kind: RoundKind, _record: &RequestRecord, _text: Option<&str>) {}
    /// Whether generated text should be collected for [`RoundObserver::on_finished`].
    fn wants_text(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl RoundObserver for NoObserver {}

/// Runs `specs` with at most `max_inflight` requests in flight and returns the round.
///
/// On cancellation, no further request is sent, in-flight requests are recorded as
/// [`FailureKind::Cancelled`], and the round is marked interrupted.
pub async fn run_round(
    client: &Client,
    kind: RoundKind,
    specs: &[RequestSpec],
    prompts: &dyn PromptSource,
    max_inflight: usize,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> RoundRecord {
    let clients = std::slice::from_ref(client);
    run_round_on(
        clients,
        kind,
        specs,
        prompts,
        max_inflight,
        observer,
        cancel,
    )
    .await
}

/// [`run_round`] on several servers, one client each: request `i` goes to
/// `clients[i % n]` (client-side round robin; the cap is the round's, over all of them).
/// Nothing is sent without a client.
pub async fn run_round_on(
    clients: &[Client],
    kind: RoundKind,
    specs: &[RequestSpec],
    prompts: &dyn PromptSource,
    max_inflight: usize,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> RoundRecord {
    let started_unix_ns = unix_now_ns();
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers = if clients.is_empty() {
        0
    } else {
        max_inflight.clamp(1, specs.len().max(1))
    };
    let per_worker = futures_util::future::join_all((0..workers).map(|_| {
        worker(
            clients, kind, specs, prompts, start, &next, observer, cancel,
        )
    }))
    .await;
    round_of(kind, started_unix_ns, start, per_worker, cancel)
}

/// The wall clock now, in ns since the Unix epoch (0 before it).
pub fn unix_now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The round that started at `start` (`started_unix_ns` on the wall clock) and ends now,
/// from its workers' records, in `prompt_id` order.
pub(crate) fn round_of(
    kind: RoundKind,
    started_unix_ns: u128,
    start: Instant,
    per_worker: Vec<Vec<RequestRecord>>,
    cancel: &Cancel,
) -> RoundRecord {
    let duration_ns = ns_since(start, Instant::now());
    let mut requests: Vec<RequestRecord> = per_worker.into_iter().flatten().collect();
    requests.sort_by_key(|r| r.prompt_id);
    RoundRecord {
        kind,
        started_unix_ns,
        duration_ns,
        interrupted: cancel.is_cancelled(),
        requests,
        evidence: None,
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
async fn worker(
    clients: &[Client],
    kind: RoundKind,
    specs: &[RequestSpec],
    prompts: &dyn PromptSource,
    start: Instant,
    next: &AtomicUsize,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> Vec<RequestRecord> {
    let mut records = Vec::new();
    // One slot per server: each keeps its own connection.
    let mut slots: Vec<_> = clients.iter().map(Client::slot).collect();
    let mut prompt = String::new();
    let mut text = String::new();
    let wants_text = observer.wants_text();
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(spec) = specs.get(i) else { break };
        let server = i % clients.len();
        prompts.write_prompt(spec, &mut prompt);
        let body = clients[server].body(&prompt);
        text.clear();
        observer.on_sent(kind, spec);
        let sent_ns = ns_since(start, Instant::now());
        let send = slots[server].send(spec, body, start, 0, wants_text.then_some(&mut text));
        let record = tokio::select! {
            biased;
            record = send => record,
            () = cancel.cancelled() => cancelled_record(spec, sent_ns, ns_since(start, Instant::now())),
        };
        observer.on_finished(kind, &record, wants_text.then_some(text.as_str()));
        records.push(record);
    }
    records
}

/// A request dropped in flight by Ctrl-C: what it had measured is lost with its future,
/// but its send and end times are known.
pub(crate) fn cancelled_record(spec: &RequestSpec, sent_ns: u64, end_ns: u64) -> RequestRecord {
    let mut r = RequestRecord::new(spec.prompt_id, spec.document_id, spec.is_miss);
    r.sent_ns = sent_ns;
    r.end_ns = end_ns;
    r.failure = Some(Failure::new(
        FailureKind::Cancelled,
        "interrupted while in flight",
    ));
    r
}
