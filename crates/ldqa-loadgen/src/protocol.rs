//! A [`Plan`] against a live server: its rounds one after the other, each after its
//! pause, with the server's `/metrics` read around every reported round (all but the
//! pre-warmup).

use std::time::Duration;

use ldqa_model::{Arrival, Plan, PlannedRound, PromptSource, RoundKind, RoundRecord};

use crate::prometheus::{self, Snapshot};
use crate::schedule::{run_scheduled, PromptBodies, ScheduledRequest};
use crate::{run_round_on, Cancel, Client, RoundObserver};

/// How the protocol runs, beyond the plan itself.
#[derive(Debug, Clone, Default)]
pub struct ProtocolOptions {
    /// Where to read Prometheus metrics, one URL per server (none: skipped). With several,
    /// a round's evidence is their sum, with each server's own beside it.
    pub metrics_urls: Vec<String>,
}

impl ProtocolOptions {
    /// Metrics read from `url`, if any.
    pub fn metrics_at(url: Option<String>) -> Self {
        ProtocolOptions {
            metrics_urls: url.into_iter().collect(),
        }
    }
}

/// What a protocol run produced. Rounds that did not start are absent.
#[derive(Debug, Clone)]
pub struct ProtocolOutcome {
    /// The rounds that ran (the last one possibly interrupted), in plan order.
    pub rounds: Vec<RoundRecord>,
    /// Why server metrics are missing, when they were asked for and could not be read.
    pub metrics_warning: Option<String>,
    /// Rounds the plan has.
    planned: usize,
}

impl ProtocolOutcome {
    /// The first round of `kind` that ran.
    pub fn round(&self, kind: RoundKind) -> Option<&RoundRecord> {
        self.rounds.iter().find(|r| r.kind == kind)
    }

    /// The rounds a report shows: all but the pre-warmup.
    pub fn reported(&self) -> impl Iterator<Item = &RoundRecord> {
        self.rounds
            .iter()
            .filter(|r| r.kind != RoundKind::PreWarmup)
    }

    /// True when Ctrl-C cut the run short.
    pub fn interrupted(&self) -> bool {
        self.rounds.iter().any(|r| r.interrupted) || self.rounds.len() < self.planned
    }
}

/// Runs every round of `plan`. Never fails: failed requests are in the records, a
/// metrics endpoint that cannot be read becomes a warning, and cancellation ends it early.
/// With several `clients` (one per server), request `i` of a round goes to
/// `clients[i % n]`: client-side round robin.
pub async fn run_protocol(
    clients: &[Client],
    plan: &Plan,
    prompts: &dyn PromptSource,
    options: &ProtocolOptions,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> ProtocolOutcome {
    let mut outcome = ProtocolOutcome {
        rounds: Vec::new(),
        metrics_warning: None,
        planned: plan.rounds.len(),
    };
    let Some(client) = clients.first() else {
        return outcome;
    };
    let mut metrics = MetricsReader {
        client,
        urls: options.metrics_urls.clone(),
        warning: None,
    };
    for round in &plan.rounds {
        if cancel.is_cancelled() || !pause(round, cancel).await {
            break;
        }
        let record = run_planned(clients, round, prompts, &mut metrics, observer, cancel).await;
        outcome.rounds.push(record);
    }
    outcome.metrics_warning = metrics.warning;
    outcome
}

/// Waits out the round's pause; false when cancelled meanwhile.
async fn pause(round: &PlannedRound, cancel: &Cancel) -> bool {
    if round.pause_before_ns == 0 {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_nanos(round.pause_before_ns)) => true,
        () = cancel.cancelled() => false,
    }
}

async fn run_planned(
    clients: &[Client],
    round: &PlannedRound,
    prompts: &dyn PromptSource,
    metrics: &mut MetricsReader<'_>,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> RoundRecord {
    let reported = round.kind != RoundKind::PreWarmup;
    let before = if reported { metrics.read().await } else { None };
    let mut record = match round.arrival {
        Arrival::ClosedLoop { max_inflight } => {
            run_round_on(
                clients,
                round.kind,
                &round.requests,
                prompts,
                max_inflight.max(1),
                observer,
                cancel,
            )
            .await
        }
        Arrival::OpenLoop { max_concurrency } => {
            let scheduled: Vec<ScheduledRequest> = round
                .requests
                .iter()
                .zip(&round.send_at_ns)
                .map(|(spec, &send_at_ns)| ScheduledRequest {
                    spec: spec.clone(),
                    send_at_ns,
                    max_tokens: clients[0].config().output_len,
                    after: None,
                })
                .collect();
            run_scheduled(
                clients,
                round.kind,
                &scheduled,
                &PromptBodies(prompts),
                max_concurrency.unwrap_or(usize::MAX),
                observer,
                cancel,
            )
            .await
        }
    };
    record.evidence = metrics.delta_since(before.as_ref()).await;
    record
}

struct MetricsReader<'a> {
    client: &'a Client,
    urls: Vec<String>,
    warning: Option<String>,
}

impl MetricsReader<'_> {
    /// One scrape of every server; the first failure disables metrics for the rest of
    /// the run.
    async fn read(&mut self) -> Option<Vec<Snapshot>> {
        if self.urls.is_empty() {
            return None;
        }
        let mut snapshots = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            match self.client.get_text(url).await {
                Ok(text) => snapshots.push(prometheus::parse(&text)),
                Err(e) => {
                    self.warning = Some(format!("server metrics not read from {url} ({e})"));
                    self.urls.clear();
                    return None;
                }
            }
        }
        Some(snapshots)
    }

    async fn delta_since(
        &mut self,
        before: Option<&Vec<Snapshot>>,
    ) -> Option<ldqa_model::ServerEvidence> {
        let before = before?;
        let after = self.read().await?;
        let each: Vec<ldqa_model::ServerEvidence> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| prometheus::delta(b, a))
            .collect();
        Some(ldqa_model::ServerEvidence::summed(each))
    }
}
