//! `ldqa replay TRACE --base-url URL`: a recorded trace (Mooncake or Qwen Bailian) sent to a
//! running server on its recorded schedule. Each prompt is synthesised as token ids
//! (`/v1/completions` with a token-id prompt: exact lengths, no tokenizer) so that equal
//! block ids are equal token blocks: the server's prefix cache sees exactly the trace's
//! sharing. The same summary as `predict --trace`, from the server's usage, plus how late
//! the client sent (a client that cannot keep the schedule says so); `replay.json`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ldqa_loadgen::schedule::{run_scheduled, RequestBodies, ScheduledRequest};
use ldqa_loadgen::NoObserver;
use ldqa_loadgen::{Cancel, Client, Endpoint};
use ldqa_model::{Api, RequestRecord, RequestSpec, RoundKind};
use ldqa_sim::prompt::{fnv1a, mix, FNV_OFFSET};
use ldqa_trace::{Trace, TraceFormat, TraceRequest};

use super::engine_replay::{shares, EngineReplay};
use super::predict_trace::{table, TracePrediction, TraceSelection};
use crate::exit::ExitStatus;

/// Arguments of `ldqa replay`.
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
pub struct ReplayArgs {
    /// A trace: JSONL, one request per line, Mooncake's or Bailian's fields.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,

    /// The server's OpenAI API root, e.g. http://localhost:8000/v1 (a router's, or one
    /// instance's). Given several times, requests go to them in turn (client-side round
    /// robin) and the table gains a line per instance.
    #[arg(long, value_name = "URL", required = true, action = clap::ArgAction::Append)]
    pub base_url: Vec<String>,

    /// An instance's Prometheus endpoint (e.g. http://localhost:8001/metrics), once per
    /// instance behind the router: each one's requests and prefix-cache hits over the
    /// replay are read before and after, printed under the table and checked against what
    /// the client saw.
    #[arg(long, value_name = "URL", action = clap::ArgAction::Append)]
    pub metrics_url: Vec<String>,

    /// Model name to send (default: the first the server lists).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// mooncake or bailian (default: told from the first line).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<TraceFormat>,

    #[command(flatten)]
    pub selection: TraceSelection,

    /// At most this many requests in flight (connections); one due while all are busy is
    /// sent late, and the lag is reported.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_concurrency: usize,

    /// Token ids are drawn from 1000 up to this (the model's vocabulary size).
    #[arg(long, default_value_t = 32_000, value_name = "N")]
    pub vocab_size: u32,

    /// Folder for replay.json.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub output_dir: PathBuf,
}

/// Token ids for a trace's prompts: block `id`'s tokens are a function of `id` alone, so
/// equal ids are equal blocks, and two blocks of different ids differ from their first
/// token (but for one chance in the vocabulary).
struct TraceTokens<'a> {
    requests: Vec<&'a TraceRequest>,
    block_tokens: u64,
    vocab_size: u32,
}

impl RequestBodies for TraceTokens<'_> {
    fn body(&self, client: &Client, index: usize, request: &ScheduledRequest) -> Vec<u8> {
        let mut ids = Vec::new();
        self.write_tokens(index, &mut ids);
        client.token_body(&ids, request.max_tokens)
    }
}

impl TraceTokens<'_> {
    /// The token ids of request `index` into `buf`, replacing what it held.
    fn write_tokens(&self, index: usize, buf: &mut Vec<u32>) {
        buf.clear();
        let Some(r) = self.requests.get(index) else {
            return;
        };
        let span = u64::from(self.vocab_size.saturating_sub(FIRST_TOKEN).max(1));
        for (j, &id) in r.hash_ids.iter().enumerate() {
            let start = j as u64 * self.block_tokens;
            let len = self.block_tokens.min(r.input_length.saturating_sub(start));
            let seed = fnv1a(&id.to_le_bytes(), FNV_OFFSET);
            buf.extend((0..len).map(|k| FIRST_TOKEN + (mix(seed ^ mix(k)) % span) as u32));
        }
    }
}

/// The lowest token id sent (clear of special and byte tokens).
const FIRST_TOKEN: u32 = 1000;

/// The trace's requests as the scheduled runner sends them: each at its time, after the
/// request it follows in its conversation.
fn scheduled_requests(schedule: &[(&TraceRequest, u64)]) -> Vec<ScheduledRequest> {
    let followed = ldqa_trace::followed(schedule);
    schedule
        .iter()
        .zip(followed)
        .enumerate()
        .map(|(i, ((r, at), after))| ScheduledRequest {
            spec: RequestSpec {
                prompt_id: i,
                document_id: i,
                is_miss: false,
                miss_prefix: None,
                prompt_tokens: r.input_length,
            },
            send_at_ns: *at,
            max_tokens: u32::try_from(r.output_length.max(1)).unwrap_or(u32::MAX),
            after,
        })
        .collect()
}

/// The summary of all requests, with several instances one per instance inside it:
/// request `i` went to instance `i % instances` (the round robin of `run_scheduled`), named
/// `server 1`, `server 2`, … in `--base-url` order.
fn per_instance(
    records: &[RequestRecord],
    duration_ns: u64,
    instances: usize,
) -> Vec<EngineReplay> {
    let all = EngineReplay::of("server", records, duration_ns);
    if instances < 2 {
        return vec![all];
    }
    let each = shares(
        records,
        instances,
        |_, r| r.prompt_id % instances,
        |k| format!("server {}", k + 1),
    );
    vec![all.with_instances(each)]
}

impl ReplayArgs {
    fn validate(&self) -> anyhow::Result<()> {
        self.selection.validate()?;
        for url in &self.metrics_url {
            Endpoint::new(url, None).with_context(|| format!("--metrics-url {url}"))?;
        }
        anyhow::ensure!(
            self.max_concurrency >= 1,
            "--max-concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.vocab_size > FIRST_TOKEN,
            "--vocab-size must be above {FIRST_TOKEN}"
        );
        Ok(())
    }
}

/// Entry point of `ldqa replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<ExitStatus> {
    args.validate()?;
    let trace = Trace::read(&args.trace, args.format)
        .with_context(|| format!("trace {}", args.trace.display()))?;
    let endpoints = super::base_url_endpoints(&args.base_url)?;
    let format = trace.format;
    let args2 = args.clone();
    let (record, model, counters) = crate::runtime::run(async move {
        let args = args2;
        let (clients, model, time_scale) =
            super::clients_for(endpoints, Api::Completions, 1, args.model.as_deref()).await?;
        let sel = &args.selection;
        let schedule = trace.schedule(sel.speedup, sel.max_requests, sel.time_window);
        // An `ldqa serve --time-scale` runs its own clock: the arrivals are its times.
        let mut requests = scheduled_requests(&schedule);
        for r in &mut requests {
            r.send_at_ns = (r.send_at_ns as f64 / time_scale).round() as u64;
        }
        let tokens = TraceTokens {
            requests: schedule.iter().map(|(r, _)| *r).collect(),
            block_tokens: trace.block_tokens(),
            vocab_size: args.vocab_size,
        };
        eprintln!(
            "Replaying {} requests of {} on {} (model {}), arrivals ×{}",
            requests.len(),
            args.trace.display(),
            args.base_url.join(", "),
            model,
            args.selection.speedup
        );
        let counters = super::instance_counters::before(&clients[0], &args.metrics_url).await?;
        let cancel = Cancel::new();
        crate::runtime::on_interrupt(cancel.clone(), "writing what was measured", || {});
        let mut round = run_scheduled(
            &clients,
            RoundKind::Query,
            &requests,
            &tokens,
            args.max_concurrency,
            &NoObserver,
            &cancel,
        )
        .await;
        let counters = counters.since(&clients[0]).await;
        if time_scale != 1.0 {
            round.scale_time(time_scale);
            eprintln!(
                "note: times are the server's simulated seconds (it ran {time_scale}× faster than the wall clock)"
            );
        }
        Ok((round, model, counters))
    })?;
    let prediction = TracePrediction {
        schema: "ldqa-trace-replay",
        schema_version: 1,
        trace: args.trace.display().to_string(),
        format,
        description: format!("Measured: {} (model {model})", args.base_url.join(", ")),
        speedup: args.selection.speedup,
        engines: per_instance(&record.requests, record.duration_ns, args.base_url.len()),
        instance_counters: counters,
    };
    let dir = &args.output_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("replay.json");
    let json = serde_json::to_string_pretty(&prediction)? + "\n";
    ldqa_report::write_atomically(&path, json.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let all = &prediction.engines[0];
    let answered = all.requests() - all.failed();
    let lines = super::instance_counters::lines(
        &prediction.instance_counters,
        answered,
        all.cached_tokens(),
    );
    crate::stdout::write(&(table(&prediction) + &lines))?;
    eprintln!("wrote {}", path.display());
    if record.interrupted {
        return Ok(ExitStatus::Interrupted);
    }
    Ok(ExitStatus::Success)
}
