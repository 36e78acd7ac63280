//! `ldqa calibrate`: measure a running OpenAI-compatible server through its API and fit
//! the simulator's step costs to it ([`ldqa_sim::profile`]), so that `ldqa predict
//! --profile FILE` predicts other workloads on that server.
//!
//! For each prompt length it runs a small Long Doc QA workload, one request at a time:
//! three fresh documents (prefill from what the server has cached, nothing with random
//! text), the same three again (a cached prefix),
//! each generating `--output-len` tokens (the time per output token). Then four short
//! prompts at once, decoding [`BATCH_OUTPUT_TOKENS`] tokens side by side (the cost of a
//! sequence in a batch). The server's own usage says how many prompt tokens it counted and
//! how many hit its cache; the scheduler says how those tokens were split into steps.
//! Requests of the same length and hit are repeats of one observation: the fit takes their
//! median ([`ldqa_sim::profile::group`]).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use ldqa_loadgen::{
    run_protocol, Cancel, Client, ClientConfig, Endpoint, NoObserver, ProtocolOptions,
};
use ldqa_model::{Api, RequestRecord, RoundKind};
use ldqa_sim::profile::{
    fit, group, predicted_ns, FitPoint, Observation, Profile, PROFILE_VERSION,
};
use ldqa_workload::{RepeatMode, TextSource, Workload, WorkloadConfig};

use crate::exit::ExitStatus;

/// Arguments of `ldqa calibrate`.
#[derive(Debug, Clone, Args)]
#[command(allow_negative_numbers = true)]
pub struct CalibrateArgs {
    /// The server's OpenAI API base URL.
    #[arg(long, value_name = "URL")]
    pub base_url: String,

    /// Model name to send (auto: the first the server lists).
    #[arg(long, default_value = "auto", value_name = "NAME")]
    pub model: String,

    /// The model's tokenizer (tokenizer.json or its folder): prompts of exact lengths.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: PathBuf,

    /// The server's --max-num-batched-tokens: how prefills are split into steps.
    #[arg(long, value_name = "TOKENS")]
    pub max_num_batched_tokens: u64,

    /// Document lengths to measure, in tokens.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500,1500,3000,6000",
        value_name = "TOKENS,…"
    )]
    pub prompt_lengths: Vec<usize>,

    /// The documents' text: `hi` (upstream's "{i} hi hi …") or `random` (random tokens of
    /// the tokenizer, decoded). Tokenising depends on the text (a server's tokenizer
    /// caches words, and " hi" repeats), so measure with the text the workloads to predict
    /// use.
    #[arg(long, default_value = "hi", value_name = "SOURCE", value_parser = crate::cmd::run_args::parse_text_source)]
    pub text_source: TextSource,

    /// Tokens generated per request (the time per output token is measured over them).
    #[arg(long, default_value_t = 16, value_name = "TOKENS")]
    pub output_len: u32,

    /// Where to write the profile.
    #[arg(long, default_value = "profile.json", value_name = "FILE")]
    pub output: PathBuf,
}

impl CalibrateArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if self.max_num_batched_tokens == 0 {
            bail!("--max-num-batched-tokens must be at least 1");
        }
        if self.prompt_lengths.len() < 2 || self.prompt_lengths.contains(&0) {
            bail!("--prompt-lengths needs at least two lengths, each at least 1 token");
        }
        if self.output_len < 3 {
            bail!("--output-len must be at least 3 (the time per output token needs two gaps)");
        }
        Ok(())
    }
}

/// Entry point of `ldqa calibrate`.
pub fn run(args: CalibrateArgs) -> anyhow::Result<ExitStatus> {
    args.validate()?;
    let endpoint = Endpoint::new(&args.base_url, std::env::var("OPENAI_API_KEY").ok())?;
    crate::runtime::run(async move {
        let mut config = ClientConfig::new(
            endpoint.clone(),
            args.model.clone(),
            Api::Chat,
            args.output_len,
        );
        if args.model == "auto" {
            let listed = Client::new(config.clone())?.server_models().await?;
            config.model = listed.ids.first().cloned().with_context(|| {
                format!("{} lists no models: pass --model", endpoint.url("models"))
            })?;
        }
        let client = Client::new(config)?;
        let mut points = Vec::new();
        for &length in &args.prompt_lengths {
            eprintln!("calibrate: {length}-token documents, one at a time");
            points.extend(measure(&client, &args, length).await?);
        }
        eprintln!("calibrate: {BATCH} short prompts decoding together");
        points.extend(measure_batch(&client, &args).await?);
        check_enough(&points, &args)?;
        let chunk = args.max_num_batched_tokens;
        let groups = group(&points);
        let medians: Vec<(Observation, f64)> = groups
            .iter()
            .map(|g| (g.observation, g.median_ns()))
            .collect();
        let (cost, frontend) = fit(&medians, chunk).context("fitting the measurements")?;
        let fit_points: Vec<FitPoint> = groups
            .into_iter()
            .zip(medians)
            .map(|(g, (o, measured_ns))| FitPoint {
                what: describe(o),
                measured_ns,
                fitted_ns: predicted_ns(&cost, frontend, o, chunk),
                samples_ns: g.samples_ns,
            })
            .collect();
        let max_rel_error = fit_points
            .iter()
            .map(|p| ((p.fitted_ns - p.measured_ns) / p.measured_ns).abs())
            .fold(0.0, f64::max);
        let profile = Profile {
            profile_version: PROFILE_VERSION,
            server: endpoint.base().to_string(),
            model: client.config().model.clone(),
            created_unix_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            max_num_batched_tokens: chunk,
            cost,
            frontend_request_ns: frontend,
            fit: fit_points,
            max_rel_error,
        };
        let text = serde_json::to_string_pretty(&profile)?;
        ldqa_report::write_atomically(&args.output, (text + "\n").as_bytes())
            .with_context(|| format!("writing {}", args.output.display()))?;
        crate::stdout::write(&summary(&profile))?;
        eprintln!("wrote {}", args.output.display());
        Ok(ExitStatus::Success)
    })
}

/// Fails when too many requests arrived in bursts to fit anything; says how many did.
fn check_enough(points: &[(Observation, f64)], args: &CalibrateArgs) -> anyhow::Result<()> {
    // Each length: 6 requests, each a TTFT and a time per token; the batch: its 4 requests
    // twice (warmup and query), a time per token each.
    let expected = args.prompt_lengths.len() * 6 * 2 + 2 * BATCH as usize;
    let missing = expected.saturating_sub(points.len());
    if missing > 0 {
        eprintln!(
            "calibrate: {missing} of {expected} measurements left out: their tokens arrived in bursts (the server or this machine was busy)"
        );
    }
    if missing * 2 > expected {
        bail!(
            "more than half of the requests arrived in bursts: the server or this machine is too busy to calibrate; run it again when they are idle"
        );
    }
    Ok(())
}

/// Requests decoding together in the batch measurement.
const BATCH: u64 = 4;
/// Their prompt length (short: their prefills are a small part of the time).
const BATCH_PROMPT_TOKENS: usize = 100;
/// Their output length (long: most steps are the four decoding side by side).
const BATCH_OUTPUT_TOKENS: u32 = 64;

/// One length: fresh and cached TTFTs and the time per output token of each request.
async fn measure(
    client: &Client,
    args: &CalibrateArgs,
    length: usize,
) -> anyhow::Result<Vec<(Observation, f64)>> {
    let records = run_workload(client, &args.tokenizer, args.text_source, 3, length, 1).await?;
    let mut points = Vec::new();
    for r in &records {
        points.extend(observations(r, 1)?);
    }
    Ok(points)
}

/// Four short prompts at once: the time per output token of a batch of four (their TTFTs
/// overlap one another's prefills, so they are not used).
async fn measure_batch(
    client: &Client,
    args: &CalibrateArgs,
) -> anyhow::Result<Vec<(Observation, f64)>> {
    let batch_client = Client::new(ClientConfig {
        output_len: BATCH_OUTPUT_TOKENS,
        ..client.config().clone()
    })?;
    let records = run_workload(
        &batch_client,
        &args.tokenizer,
        args.text_source,
        BATCH as usize,
        BATCH_PROMPT_TOKENS,
        BATCH as usize,
    )
    .await?;
    let mut points = Vec::new();
    for r in &records {
        points.extend(
            observations(r, BATCH)?
                .into_iter()
                .filter(|(o, _)| matches!(o, Observation::Tpot { .. })),
        );
    }
    Ok(points)
}

/// The warmup and query records of a Long Doc QA run of `documents` × `length` tokens.
async fn run_workload(
    client: &Client,
    tokenizer: &std::path::Path,
    text: TextSource,
    documents: usize,
    length: usize,
    in_flight: usize,
) -> anyhow::Result<Vec<RequestRecord>> {
    let config = WorkloadConfig {
        num_documents: documents,
        document_length: length,
        repeat_count: 1,
        repeat_mode: RepeatMode::Tile,
        // Random tokens are seeded by the length, so documents of different lengths share
        // no prefix. Upstream's "{i} hi hi …" of two lengths share all but their ends: the
        // server's usage says how much hit, and the fit uses it.
        text,
        shuffle_seed: length as i64,
        tokenizer: Some(tokenizer.to_path_buf()),
        ..WorkloadConfig::default()
    };
    let workload = Workload::build(&config).context("building the documents")?;
    let plan = workload.plan(in_flight, 0);
    let outcome = run_protocol(
        std::slice::from_ref(client),
        &plan,
        &workload,
        &ProtocolOptions::default(),
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    let mut records = Vec::new();
    for kind in [RoundKind::Warmup, RoundKind::Query] {
        let round = outcome
            .round(kind)
            .with_context(|| format!("the {} round did not run", kind.as_str()))?;
        records.extend(round.requests.iter().cloned());
    }
    Ok(records)
}

/// The TTFT and the time per output token of one finished request, decoding in a batch
/// of `batch`; none when its tokens did not arrive one event each (a busy server merges
/// queued outputs into one event: seen in CI, eight tokens within 16 µs).
fn observations(r: &RequestRecord, batch: u64) -> anyhow::Result<Vec<(Observation, f64)>> {
    if let Some(f) = &r.failure {
        bail!("a calibration request failed ({}): {}", f.kind, f.message);
    }
    let usage = r.usage.as_ref().context(
        "the server reported no usage (prompt and cached tokens are needed: vLLM needs \
         --enable-prompt-tokens-details)",
    )?;
    let prompt_tokens = usage.prompt_tokens.context("no usage.prompt_tokens")?;
    let cached_tokens = usage.cached_tokens.unwrap_or(0);
    let output_tokens = usage.completion_tokens.unwrap_or(0);
    let mut out = Vec::new();
    if u64::from(r.content_events) < output_tokens {
        // The server fell behind and sent several steps' tokens in one event: the first
        // event came after several decode steps and the gaps after it are not steps.
        return Ok(out);
    }
    if let Some(t) = r.ttft_ns() {
        out.push((
            Observation::Ttft {
                prompt_tokens,
                cached_tokens,
            },
            t as f64,
        ));
    }
    if let (Some(tpot), true) = (r.tpot_ns(), output_tokens >= 3) {
        out.push((
            Observation::Tpot {
                prompt_tokens,
                output_tokens,
                batch,
            },
            tpot as f64,
        ));
    }
    Ok(out)
}

fn describe(o: Observation) -> String {
    match o {
        Observation::Ttft {
            prompt_tokens,
            cached_tokens,
        } => format!("TTFT, {prompt_tokens} prompt tokens, {cached_tokens} cached"),
        Observation::Tpot {
            prompt_tokens,
            output_tokens,
            batch,
        } => format!(
            "time per output token, {output_tokens} tokens after {prompt_tokens}, {batch} decoding"
        ),
    }
}

/// What the fit found, for a human.
fn summary(p: &Profile) -> String {
    let c = &p.cost;
    format!(
        "Profile of {} ({}), {} observations (medians of {} measurements):\n\
         \x20 step        {:>10.3} ms\n\
         \x20 per sequence{:>10.3} ms\n\
         \x20 per token   {:>10.3} µs\n\
         \x20 per context {:>10.3} ns (attention pair)\n\
         \x20 front end   {:>10.3} ms per request\n\
         largest fit error {:.1} %\n",
        p.server,
        p.model,
        p.fit.len(),
        p.fit.iter().map(|f| f.samples_ns.len()).sum::<usize>(),
        c.step_ns / 1e6,
        c.sequence_ns / 1e6,
        c.token_ns / 1e3,
        c.context_ns,
        p.frontend_request_ns / 1e6,
        p.max_rel_error * 100.0
    )
}
