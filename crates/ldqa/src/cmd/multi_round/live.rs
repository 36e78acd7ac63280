//! Multi-round QA against a server, on the wall clock: every 0.1 s the sessions step;
//! each question goes out on its own slot with the user's `x-user-id`, and its streamed
//! answer joins the user's history when it is back.
//!
//! `--time` ends the run: nothing more is sent and the questions in flight are awaited, as
//! upstream does. Ctrl-C: nothing more is sent, questions in flight are recorded as
//! cancelled, and what was measured is written (exit 130).

use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use ldqa_loadgen::{Cancel, Client};
use ldqa_model::{Api, RequestRecord, RequestSpec};
use ldqa_workload::multi_round::{Launch, MultiRoundConfig, Sessions, ShareGpt, STEP_S};
use tokio::time::Instant;

use super::summary::{performance_block, QaRequest, QaRun};
use super::{log_events, log_info, warmup_prompt, MultiRoundArgs, Runs};
use super::{WARMUP_MAX_TOKENS, WARMUP_REQUESTS};
use crate::cmd::instance_counters::{self, InstanceCounters};

/// Runs the workload against `--base-url` (each user on one instance when several are
/// given); returns the description and the run, then with several instances each one's
/// share.
pub fn run(
    args: &MultiRoundArgs,
    config: &MultiRoundConfig,
    questions: Option<ShareGpt>,
) -> anyhow::Result<(String, Runs, Vec<InstanceCounters>)> {
    let endpoints = crate::cmd::base_url_endpoints(&args.base_url)?;
    let args = args.clone();
    let config = config.clone();
    crate::runtime::run(async move {
        let (clients, model, _) =
            crate::cmd::clients_for(endpoints, Api::Chat, 1, args.served_model.as_deref()).await?;
        let cancel = Cancel::new();
        crate::runtime::on_interrupt(cancel.clone(), "writing what was measured", || {});
        if !args.no_warmup {
            log_info("Warming up the engine");
            for client in &clients {
                warm_up(client).await;
            }
        }
        let sessions = Sessions::with_questions(config, questions);
        let counters = instance_counters::before(&clients[0], &args.metrics_url).await?;
        let run = drive(&clients, sessions, &args, &cancel).await;
        let counters = counters.since(&clients[0]).await;
        let description = format!("{} (model {model})", args.base_url.join(", "));
        let mut runs = vec![("server".to_string(), run)];
        if clients.len() > 1 {
            let n = clients.len();
            let shares = runs[0].1.shares(
                n,
                |_, r| (r.user_id % n as u64) as usize,
                |k| format!("server {}", k + 1),
            );
            runs.extend(shares);
        }
        Ok((description, runs, counters))
    })
}

/// Upstream's warm-up: ten short questions at once, not recorded.
async fn warm_up(client: &Client) {
    let spec = RequestSpec {
        prompt_id: 0,
        document_id: 0,
        is_miss: false,
        miss_prefix: None,
        prompt_tokens: 0,
    };
    let start = Instant::now();
    let sends = (0..WARMUP_REQUESTS).map(|i| {
        let spec = spec.clone();
        async move {
            let prompt = warmup_prompt(i);
            let body = client.conversation_body(&[("user", &prompt)], WARMUP_MAX_TOKENS);
            client.slot().send(&spec, body, start, 0, None).await
        }
    });
    futures_util::future::join_all(sends).await;
}

/// A question on its way: the user, its number, the record and the answer's text.
type Answer = (u64, u32, RequestRecord, String);
type InFlight<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Answer> + Send + 'a>>>;

/// The client's loop: steps the sessions every 0.1 s, sends what they launch, hands back
/// answers, prints upstream's block every --log-interval.
async fn drive(
    clients: &[Client],
    mut sessions: Sessions,
    args: &MultiRoundArgs,
    cancel: &Cancel,
) -> QaRun {
    let start_unix_ns = u64::try_from(ldqa_loadgen::runner::unix_now_ns()).unwrap_or(u64::MAX);
    let start = Instant::now();
    let mut run = QaRun {
        requests: Vec::new(),
        start_unix_ns,
        duration_ns: 0,
        interrupted: false,
    };
    let mut in_flight: InFlight<'_> = FuturesUnordered::new();
    // (user, question, sent) of each question in flight, for Ctrl-C's records.
    let mut sent: Vec<(u64, u32, u64)> = Vec::new();
    let mut events = Vec::new();
    let mut tick = 0u64;
    let mut last_log_s = 0.0;
    let color = std::io::stdout().is_terminal();
    loop {
        let next_tick = start + Duration::from_secs_f64(tick as f64 * STEP_S);
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(answer) = in_flight.next() => {
                sent.retain(|s| (s.0, s.1) != (answer.0, answer.1));
                on_answer(&mut sessions, &mut run, answer, args.verbose);
            }
            () = tokio::time::sleep_until(next_tick) => {
                // The tick's own time, not the clock's reading a few µs later: the
                // sessions then decide exactly as in virtual time (`--predict`).
                let now_s = tick as f64 * STEP_S;
                if args.time.is_some_and(|t| now_s > t) {
                    break;
                }
                for launch in sessions.step(now_s, &mut events) {
                    let sent_ns = start.elapsed().as_nanos() as u64;
                    sent.push((launch.user_id, launch.question_no, sent_ns));
                    // A user's conversation stays on one instance.
                    let client = &clients[(launch.user_id % clients.len() as u64) as usize];
                    in_flight.push(Box::pin(ask(client, launch, start, run.requests.len())));
                }
                log_events(&mut events);
                if now_s - last_log_s > args.log_interval {
                    let block = performance_block(&run, last_log_s, now_s, sessions.waiting(), args.qps, color);
                    if crate::stdout::write(&block).is_err() {
                        // A closed stdout: keep measuring, the files are still written.
                    }
                    last_log_s = now_s;
                }
                tick += 1;
            }
        }
    }
    if cancel.is_cancelled() {
        run.interrupted = true;
        drop(in_flight);
        let now = start.elapsed().as_nanos() as u64;
        for (user_id, question_no, sent_ns) in sent {
            let mut record = RequestRecord::new(run.requests.len(), user_id as usize, false);
            record.sent_ns = sent_ns;
            record.end_ns = now;
            record.failure = Some(ldqa_model::Failure::new(
                ldqa_model::FailureKind::Cancelled,
                "interrupted",
            ));
            run.requests.push(QaRequest {
                user_id,
                question_no,
                record,
            });
        }
    } else {
        if !in_flight.is_empty() {
            log_info(&format!("Waiting for {} tasks to finish", in_flight.len()));
        }
        while let Some(answer) = in_flight.next().await {
            on_answer(&mut sessions, &mut run, answer, args.verbose);
        }
    }
    run.requests.sort_by_key(|r| r.record.sent_ns);
    run.duration_ns = run
        .requests
        .iter()
        .map(|r| r.record.end_ns)
        .max()
        .unwrap_or(0);
    run
}

/// Sends one question on its own slot and reads the answer.
async fn ask(client: &Client, launch: Launch, start: Instant, prompt_id: usize) -> Answer {
    let messages: Vec<(&'static str, &str)> = launch
        .messages
        .iter()
        .map(|m| (m.role.as_str(), m.content.as_str()))
        .collect();
    let body = client.conversation_body(&messages, launch.max_tokens);
    let spec = RequestSpec {
        prompt_id,
        document_id: launch.user_id as usize,
        is_miss: false,
        miss_prefix: None,
        prompt_tokens: 0,
    };
    let mut slot = client.slot();
    let mut text = String::new();
    let queued_ns = start.elapsed().as_nanos() as u64;
    let record = match slot.set_header("x-user-id", &launch.user_id.to_string()) {
        Ok(()) => {
            slot.send(&spec, body, start, queued_ns, Some(&mut text))
                .await
        }
        Err(e) => {
            let mut r = RequestRecord::new(prompt_id, spec.document_id, false);
            r.failure = Some(ldqa_model::Failure::new(
                ldqa_model::FailureKind::Connect,
                e.to_string(),
            ));
            r
        }
    };
    (launch.user_id, launch.question_no, record, text)
}

fn on_answer(sessions: &mut Sessions, run: &mut QaRun, answer: Answer, verbose: bool) {
    let (user_id, question_no, record, text) = answer;
    match &record.failure {
        None => {
            if verbose {
                let u = record.usage.unwrap_or_default();
                log_info(&format!(
                    "User {user_id} finished one request. Prompt tokens: {}, generation tokens: {}",
                    u.prompt_tokens.unwrap_or(0),
                    u.completion_tokens.unwrap_or(0)
                ));
            }
            sessions.answered(user_id, text);
        }
        Some(f) => {
            super::log_warning(&format!(
                "User {user_id}'s question #{question_no} failed ({}): the user leaves",
                f.message
            ));
            sessions.failed(user_id);
        }
    }
    run.requests.push(QaRequest {
        user_id,
        question_no,
        record,
    });
}
