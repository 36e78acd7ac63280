//! The Long Doc QA protocol against a live server: pre-warmup, warmup round, optional
//! sleep, query round, with the server's `/metrics` read around each round.

use std::time::Duration;

use ldqa_model::{PromptSource, RequestSpec, RoundKind, RoundRecord};

use crate::prometheus::{self, Snapshot};
use crate::{run_round, Cancel, Client, RoundObserver};

/// The three request lists of a run and how to render their prompts.
pub struct Plan<'a> {
    /// Requests sent before the warmup, unmeasured (upstream's pre-warmup).
    pub pre_warmup: &'a [RequestSpec],
    /// The warmup round: every document once.
    pub warmup: &'a [RequestSpec],
    /// The measured query round.
    pub query: &'a [RequestSpec],
    /// Renders each request's prompt text.
    pub prompts: &'a dyn PromptSource,
}

/// How the protocol runs.
#[derive(Debug, Clone)]
pub struct ProtocolOptions {
    /// Most requests in flight at once (`--max-inflight-requests`).
    pub max_inflight: usize,
    /// Pause between the warmup and the query round (`--sleep-time-after-warmup`).
    pub sleep_after_warmup: Duration,
    /// Where to read Prometheus metrics; `None` skips them.
    pub metrics_url: Option<String>,
}

/// What a protocol run produced. Rounds that did not start are absent.
#[derive(Debug, Clone)]
pub struct ProtocolOutcome {
    /// The pre-warmup round, if it ran.
    pub pre_warmup: Option<RoundRecord>,
    /// The warmup round, if it ran.
    pub warmup: Option<RoundRecord>,
    /// The query round, if it ran.
    pub query: Option<RoundRecord>,
    /// Why server metrics are missing, when they were asked for and could not be read.
    pub metrics_warning: Option<String>,
}

impl ProtocolOutcome {
    /// True when Ctrl-C cut the run short.
    pub fn interrupted(&self) -> bool {
        [&self.pre_warmup, &self.warmup, &self.query]
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.interrupted))
            || self.query.is_none()
    }
}

/// Runs the whole protocol. Never fails: failed requests are in the records, a metrics
/// endpoint that cannot be read becomes a warning, and cancellation ends it early.
pub async fn run_protocol(
    client: &Client,
    plan: &Plan<'_>,
    options: &ProtocolOptions,
    observer: &dyn RoundObserver,
    cancel: &Cancel,
) -> ProtocolOutcome {
    let mut outcome = ProtocolOutcome {
        pre_warmup: None,
        warmup: None,
        query: None,
        metrics_warning: None,
    };
    let mut metrics = MetricsReader {
        client,
        url: options.metrics_url.clone(),
        warning: None,
    };
    let inflight = options.max_inflight;

    let pre = run_round(
        client,
        RoundKind::PreWarmup,
        plan.pre_warmup,
        plan.prompts,
        inflight,
        observer,
        cancel,
    )
    .await;
    outcome.pre_warmup = Some(pre);
    if cancel.is_cancelled() {
        return outcome;
    }

    let before = metrics.read().await;
    let mut warmup = run_round(
        client,
        RoundKind::Warmup,
        plan.warmup,
        plan.prompts,
        inflight,
        observer,
        cancel,
    )
    .await;
    warmup.evidence = metrics.delta_since(before.as_ref()).await;
    outcome.warmup = Some(warmup);
    if cancel.is_cancelled() {
        outcome.metrics_warning = metrics.warning;
        return outcome;
    }

    if !options.sleep_after_warmup.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(options.sleep_after_warmup) => {}
            () = cancel.cancelled() => {
                outcome.metrics_warning = metrics.warning;
                return outcome;
            }
        }
    }

    let before = metrics.read().await;
    let mut query = run_round(
        client,
        RoundKind::Query,
        plan.query,
        plan.prompts,
        inflight,
        observer,
        cancel,
    )
    .await;
    query.evidence = metrics.delta_since(before.as_ref()).await;
    outcome.query = Some(query);
    outcome.metrics_warning = metrics.warning;
    outcome
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
                self.warning = Some(format!(
                    "server metrics not read ({e}); use --metrics-url or --no-metrics"
                ));
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
