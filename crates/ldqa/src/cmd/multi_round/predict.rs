//! Multi-round QA in virtual time: the sessions step every 0.1 s of the simulated clock,
//! each question's prompt is the conversation tokenized as `ldqa serve` tokenizes it (the
//! model folder's chat template, or the documented approximation), and each answer is
//! what `ldqa serve` writes ([`ldqa_serve::openai::TOKEN_TEXT`] per token). So a
//! conversation's next question starts with every token of the previous prompt and answer,
//! and the prefix cache hits them block by block, as in vLLM.
//!
//! The one assumption against a real model: its answer, sent back as text, tokenizes to
//! the tokens it generated. A random-weight model's answers need not (docs/simulator.md).

use std::collections::HashMap;

use anyhow::Context;
use ldqa_model::{Failure, FailureKind, RequestRecord, Usage};
use ldqa_serve::openai::TOKEN_TEXT;
use ldqa_serve::tokens::PromptText;
use ldqa_serve::{ChatFormat, TokenCounter};
use ldqa_sim::cluster::Cluster;
use ldqa_sim::round::{Backend, Frontend, SingleEngine};
use ldqa_sim::{Engine, EventKind, PromptKey, ReqId, SimRequest, SimTime, TokenChain};
use ldqa_workload::multi_round::{
    Launch, Message, MultiRoundConfig, Role, Sessions, ShareGpt, STEP_S,
};

use super::summary::{QaRequest, QaRun};
use super::{log_events, log_info, warmup_prompt, MultiRoundArgs, Runs};
use super::{WARMUP_MAX_TOKENS, WARMUP_REQUESTS};
use crate::cmd::deployment_args::DEFAULT_MODEL;

/// How prompts become tokens, as the simulated server counts them.
struct Tokenizing {
    chat: ChatFormat,
    counter: TokenCounter,
    output_token: u64,
}

impl Tokenizing {
    fn request(&self, messages: &[Message], max_tokens: u32) -> anyhow::Result<SimRequest> {
        let prompt = PromptText {
            parts: messages.iter().map(|m| m.content.clone()).collect(),
            roles: messages
                .iter()
                .map(|m| m.role.as_str().to_string())
                .collect(),
            token_ids: None,
            chat: true,
            add_special_tokens: false,
            add_generation_prompt: true,
        };
        let tokens = prompt
            .tokens(&self.counter, &self.chat)
            .map_err(anyhow::Error::msg)?;
        Ok(SimRequest {
            prompt_tokens: tokens.len() as u64,
            key: PromptKey::Tokens(TokenChain::new(tokens).then_output(self.output_token)),
            max_output_tokens: max_tokens,
        })
    }
}

/// Simulates the workload for `--time` seconds on each engine `--engine` names.
pub fn run(
    args: &MultiRoundArgs,
    config: &MultiRoundConfig,
    questions: Option<&ShareGpt>,
) -> anyhow::Result<(String, Runs)> {
    let mut engine_args = args.engine.clone();
    engine_args.deployment.model = args
        .served_model
        .clone()
        .unwrap_or_else(|| DEFAULT_MODEL.to_string());
    let resolved = engine_args.resolve(args.engine_choice.kinds())?;
    let (chat, counter) =
        crate::cmd::serve::prompt_format(&engine_args.deployment.model, args.tokenizer.as_deref())?;
    let tokenizing = Tokenizing {
        output_token: counter.output_token(),
        chat,
        counter,
    };
    let time_s = args
        .time
        .context("invariant: --time given with --predict")?;
    log_info(&format!("Simulating: {}", resolved.description));
    let cluster = &args.cluster;
    let mut description = resolved.description.clone();
    if let Some(c) = cluster.describe() {
        description.push_str(&format!(" × {c}"));
    }
    let mut runs = Vec::new();
    for (kind, scenario) in &resolved.engines {
        let sessions = Sessions::with_questions(config.clone(), questions.cloned());
        let options = Simulation {
            tokenizing: &tokenizing,
            time_s,
            warmup: !args.no_warmup,
            verbose: args.verbose,
        };
        let mut engine = Engine::new(scenario.config.clone(), &scenario.efficiencies)?;
        let frontend = Frontend::from_efficiencies(&scenario.efficiencies);
        let (run, instances) = if cluster.is_single_engine() {
            simulate(
                &mut SingleEngine::new(&mut engine, frontend),
                sessions,
                &options,
            )
        } else {
            let mut many = Cluster::new(&engine, &cluster.spec(scenario, true), &frontend)?;
            simulate(&mut many, sessions, &options)
        }
        .with_context(|| format!("simulating {}", kind.as_str()))?;
        let name = kind.as_str();
        let n = cluster.instance_count();
        let shares = if n > 1 {
            run.shares(n, |i, _| instances[i] as usize, |k| format!("  #{}", k + 1))
        } else {
            Vec::new()
        };
        runs.push((name.to_string(), run));
        runs.extend(shares);
    }
    Ok((description, runs))
}

/// How the simulation runs, beyond the engine.
struct Simulation<'a> {
    tokenizing: &'a Tokenizing,
    time_s: f64,
    warmup: bool,
    verbose: bool,
}

/// A question in the engine: who asked, where it went, and its record.
struct Asked {
    id: ReqId,
    instance: u32,
    user_id: u64,
    question_no: u32,
    record: RequestRecord,
    prompt_tokens: u64,
}

/// The run on `engine` (one engine, or a cluster behind its router, each user a
/// session), and the instance that answered each of its requests.
fn simulate(
    engine: &mut impl Backend,
    mut sessions: Sessions,
    options: &Simulation<'_>,
) -> anyhow::Result<(QaRun, Vec<u32>)> {
    let Simulation {
        tokenizing,
        time_s,
        warmup,
        verbose,
    } = *options;
    let mut events = Vec::new();
    if warmup {
        for i in 0..WARMUP_REQUESTS {
            let message = Message {
                role: Role::User,
                content: warmup_prompt(i),
            };
            let req = tokenizing.request(&[message], WARMUP_MAX_TOKENS)?;
            let now = engine.now();
            engine.send(now, req, None)?;
        }
        engine.run_to_idle(&mut events)?;
        events.clear();
    }
    let start = engine.now();
    let mut asked: HashMap<ReqId, Asked> = HashMap::new();
    let mut done: Vec<(QaRequest, u32)> = Vec::new();
    let mut session_events = Vec::new();
    let mut tick = 0u64;
    loop {
        let now_s = tick as f64 * STEP_S;
        let now = start.plus_ns((now_s * 1e9).round() as u64);
        engine.advance_to(now, &mut events)?;
        settle(
            &mut events,
            engine,
            &mut asked,
            &mut done,
            &mut sessions,
            start,
            verbose,
        );
        if now_s > time_s {
            break;
        }
        for launch in sessions.step(now_s, &mut session_events) {
            let a = submit(engine, tokenizing, launch, now, start)?;
            asked.insert(a.id, a);
        }
        // In virtual time the joins and leaves are all logged at once: only with --verbose.
        if verbose {
            log_events(&mut session_events);
        }
        session_events.clear();
        tick += 1;
    }
    // As upstream: the questions in flight at the end are answered and recorded.
    engine.run_to_idle(&mut events)?;
    settle(
        &mut events,
        engine,
        &mut asked,
        &mut done,
        &mut sessions,
        start,
        verbose,
    );
    done.sort_by_key(|(r, _)| r.record.sent_ns);
    let duration_ns = done.iter().map(|(r, _)| r.record.end_ns).max().unwrap_or(0);
    let (requests, instances) = done.into_iter().unzip();
    let run = QaRun {
        requests,
        start_unix_ns: u64::try_from(ldqa_loadgen::runner::unix_now_ns()).unwrap_or(u64::MAX),
        duration_ns,
        interrupted: false,
    };
    Ok((run, instances))
}

fn submit(
    engine: &mut impl Backend,
    tokenizing: &Tokenizing,
    launch: Launch,
    now: SimTime,
    start: SimTime,
) -> anyhow::Result<Asked> {
    let req = tokenizing.request(&launch.messages, launch.max_tokens)?;
    let prompt_tokens = req.prompt_tokens;
    // A user is a session (upstream sends its id as `x-user-id`).
    let id = engine.send(now, req, Some(launch.user_id))?;
    let mut record = RequestRecord::new(0, launch.user_id as usize, false);
    record.sent_ns = now.ns_since(start);
    record.queued_ns = record.sent_ns;
    Ok(Asked {
        id,
        instance: 0, // known when it ends (a router may still be deciding)
        user_id: launch.user_id,
        question_no: launch.question_no,
        record,
        prompt_tokens,
    })
}

/// Applies the engine's events: tokens to their records; a finished question's answer
/// (the simulated model's text) back to its user.
fn settle(
    events: &mut Vec<ldqa_sim::Event>,
    engine: &impl Backend,
    asked: &mut HashMap<ReqId, Asked>,
    done: &mut Vec<(QaRequest, u32)>,
    sessions: &mut Sessions,
    start: SimTime,
    verbose: bool,
) {
    for ev in events.drain(..) {
        let Some(a) = asked.get_mut(&ev.req) else {
            continue;
        };
        let at_ns = ev.at.ns_since(start);
        match ev.kind {
            EventKind::Token { .. } => {
                a.record.on_content(at_ns);
                continue;
            }
            EventKind::Finished {
                prefix,
                output_tokens,
                ..
            } => {
                a.record.usage = Some(Usage {
                    prompt_tokens: Some(a.prompt_tokens),
                    completion_tokens: Some(u64::from(output_tokens)),
                    cached_tokens: Some(prefix.gpu_hit_tokens + prefix.cpu_hit_tokens),
                });
                a.record.prefix = Some(prefix);
                if verbose {
                    log_info(&format!(
                        "User {} finished one request. Prompt tokens: {}, generation tokens: {output_tokens}",
                        a.user_id, a.prompt_tokens
                    ));
                }
                sessions.answered(a.user_id, TOKEN_TEXT.repeat(output_tokens as usize));
            }
            EventKind::Rejected | EventKind::Aborted => {
                a.record.failure = Some(Failure::new(
                    FailureKind::HttpStatus,
                    "the simulated engine refused the request (longer than its context or its KV cache)",
                ));
                sessions.failed(a.user_id);
            }
        }
        a.record.end_ns = at_ns;
        if let Some(p) = engine.placement(ev.req) {
            a.record.first_byte_ns = Some(p.arrival.ns_since(start));
            a.instance = p.instance;
        }
        let Some(a) = asked.remove(&ev.req) else {
            continue;
        };
        done.push((
            QaRequest {
                user_id: a.user_id,
                question_no: a.question_no,
                record: a.record,
            },
            a.instance,
        ));
    }
}
