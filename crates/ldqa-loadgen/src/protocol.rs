//! A [`Plan`] against a live server: its rounds one after the other, each after its
//! pause, with the server's `/metrics` read around every reported round (all but the
//! pre-warmup).

use std::time::Duration;

use ldqa_model::{Arrival, Plan, PlannedRound, PromptSource, RoundKind, RoundRecord};

use crate::prometheus::{self, Snapshot};
use crate::schedule::{run_scheduled, PromptBodies, ScheduledRequest};
use crate::{run_round, Cancel, Client, RoundObserver};

/// How the protocol runs, beyond the plan itself.
#[derive(Debug, Clone, Default)]
pub struct ProtocolOptions {
    /// Where to read Prometheus metrics; `None` skips them.
    pub metrics_url: Option<String>,
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
pub async fn run_protocol(
    client: &Client,
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
    let mut metrics = MetricsReader {
        client,
        url: options.metrics_url.clone(),
        warning: None,
    };
    for round in &plan.rounds {
        if cancel.is_cancelled() || !pause(round, cancel).await {
            break;
        }
        let record = run_planned(client, round, prompts, &mut metrics, observer, cancel).await;
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
    client: &Client,
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
            run_round(
                client,
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
                    max_tokens: client.config().output_len,
                    after: None,
                })
                .collect();
            run_scheduled(
                std::slice::from_ref(client),
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
    url: Option<String>,
    warning: Option<String>,
}

impl MetricsReader<'_> {
    /// One scrape; the first failure disables metrics for the rest of the run.
    async fn read(&mut self) -> Option<Snapshot> {
        let url = self.url.as_ref()?;
        match self.client.get_text(url).await {
            Ok(text) => Some(prometheus::parse(&text)),
            Err(e) => {
                self.warning = Some(format!("server metrics not read from {url} ({e})"));
                self.url = None;
                None
            }
        }
    }

    async fn delta_since(
        &mut self,
        before: Option<&Snapshot>,
    ) -> Option<ldqa_model::ServerEvidence> {
        let before = before?;
        let after = self.read().await?;
        Some(prometheus::delta(before, &after))
    }
}
