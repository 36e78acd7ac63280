//! `ldqa calibrate`: measure a running OpenAI-compatible server through its API and fit
//! the simulator's step costs to it ([`ldqa_sim::profile`]), so that `ldqa predict
//! --profile FILE` predicts other workloads on that server.
//!
//! It empties the server's prefix cache first (unless `--keep-prefix-cache`). For each
//! prompt length it runs a small Long Doc QA workload, one request at a time: three fresh
//! documents (upstream's "hi" documents of two lengths share all but their ends, so a
//! longer one hits a shorter one's blocks), the same three again (a cached prefix), each
//! generating `--output-len` tokens (the time per output token). Then four short prompts
//! at once, decoding [`BATCH_OUTPUT_TOKENS`] tokens side by side (the cost of a sequence
//! in a batch), and four long ones, cached, the same way (the cost of a decoding token's
//! context, which requests decoding alone show only faintly). The server's own usage says
//! how many prompt tokens it counted and how many hit its cache; the scheduler says how
//! those tokens were split into steps.
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

    /// Leave the server's prefix cache as it is. By default it is emptied first
    /// (`POST /reset_prefix_cache`, vLLM's with VLLM_SERVER_DEV_MODE=1, and `ldqa serve`'s):
    /// prompts it already holds would be measured as cached, and without prefills of
    /// several lengths the fit cannot tell a token's cost from its attention's.
    #[arg(long)]
    pub keep_prefix_cache: bool,
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
        if !args.keep_prefix_cache {
            match client.reset_prefix_cache().await {
                Ok(()) => eprintln!("calibrate: emptied the server's prefix cache"),
                Err(e) => eprintln!(
                    "calibrate: could not empty the server's prefix cache ({e}); prompts it already holds are measured as cached"
                ),
            }
        }
        let mut measured = Measured::default();
        for &length in &args.prompt_lengths {
            let what = format!("{length}-token documents, one at a time");
            measured
                .until_enough(&what, || measure(&client, &args, length))
                .await?;
        }
        for batch in [Batch::Short, Batch::Long] {
            let what = batch.describe();
            measured
                .until_enough(&what, || measure_batch(&client, &args, batch))
                .await?;
        }
        measured.check_enough()?;
        let points = measured.points;
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
            frontend_request_ns: frontend.request_ns,
            frontend_prompt_token_ns: frontend.prompt_token_ns,
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

/// The measurements kept so far, and how many were left out (their tokens arrived in
/// bursts).
#[derive(Default)]
struct Measured {
    points: Vec<(Observation, f64)>,
    expected: usize,
    left_out: usize,
}

/// What one run of a measurement gave: the points kept, and how many it aimed for.
struct Attempt {
    points: Vec<(Observation, f64)>,
    expected: usize,
}

impl Measured {
    /// Runs `attempt` until at least half of its measurements are kept, at most
    /// [`ATTEMPTS`] times, keeping every measurement of every try. A repeat sends the same
    /// prompts, now cached: the server's usage says so and the fit uses them as such.
    async fn until_enough<F, Fut>(&mut self, what: &str, mut attempt: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Attempt>>,
    {
        for n in 1..=ATTEMPTS {
            eprintln!("calibrate: {what}");
            let a = attempt().await?;
            let lost = a.expected.saturating_sub(a.points.len());
            self.expected += a.expected;
            self.left_out += lost;
            self.points.extend(a.points);
            if lost * 2 <= a.expected {
                break;
            }
            if n < ATTEMPTS {
                eprintln!(
                    "calibrate: {lost} of {} measurements arrived in bursts; measuring again",
                    a.expected
                );
            }
        }
        Ok(())
    }

    /// Fails when too many requests arrived in bursts to fit anything; says how many did.
    fn check_enough(&self) -> anyhow::Result<()> {
        if self.left_out > 0 {
            eprintln!(
                "calibrate: {} of {} measurements left out: their tokens arrived in bursts (the server or this machine was busy)",
                self.left_out, self.expected
            );
        }
        if self.left_out * 2 > self.expected {
            bail!(
                "more than half of the requests arrived in bursts: the server or this machine is too busy to calibrate; run it again when they are idle"
            );
        }
        Ok(())
    }
}

/// Tokens closer together than this were not generated a step apart: no engine's decode
/// step, sampling and streaming take under 0.1 ms.
const MIN_STEP_NS: u64 = 100_000;
/// Times a measurement is repeated while more than half its requests arrived in bursts.
const ATTEMPTS: usize = 3;
/// Requests decoding together in the batch measurement.
const BATCH: u64 = 4;
/// Their output length (long: most steps are the four decoding side by side).
const BATCH_OUTPUT_TOKENS: u32 = 64;

/// The two batch measurements.
#[derive(Debug, Clone, Copy)]
enum Batch {
    /// Short prompts, both rounds: their prefills are a small part of the time.
    Short,
    /// Long prompts, the query round only (their prefixes cached by the warmup round, so
    /// that the steps are decodes): each step reads four long contexts.
    Long,
}

impl Batch {
    fn prompt_tokens(self) -> usize {
        match self {
            Batch::Short => 100,
            Batch::Long => 3000,
        }
    }

    fn describe(self) -> String {
        let kind = match self {
            Batch::Short => "short prompts",
            Batch::Long => "long prompts, cached,",
        };
        format!("{BATCH} {kind} decoding together")
    }
}

/// One length: fresh and cached TTFTs and the time per output token of each request.
async fn measure(client: &Client, args: &CalibrateArgs, length: usize) -> anyhow::Result<Attempt> {
    let records = run_workload(client, &args.tokenizer, args.text_source, 3, length, 1).await?;
    let mut points = Vec::new();
    for r in &records {
        points.extend(observations(r, 1)?);
    }
    // Each request: a TTFT and a time per output token.
    Ok(Attempt {
        points,
        expected: 2 * records.len(),
    })
}

/// Four prompts at once: the time per output token of a batch of four (their TTFTs
/// overlap one another's prefills, so they are not used).
async fn measure_batch(
    client: &Client,
    args: &CalibrateArgs,
    batch: Batch,
) -> anyhow::Result<Attempt> {
    let batch_client = Client::new(ClientConfig {
        output_len: BATCH_OUTPUT_TOKENS,
        ..client.config().clone()
    })?;
    let records = run_workload(
        &batch_client,
        &args.tokenizer,
        args.text_source,
        BATCH as usize,
        batch.prompt_tokens(),
        BATCH as usize,
    )
    .await?;
    // The warmup round's requests come first.
    let records = match batch {
        Batch::Short => &records[..],
        Batch::Long => &records[(BATCH as usize).min(records.len())..],
    };
    let mut points = Vec::new();
    for r in records {
        points.extend(
            observations(r, BATCH)?
                .into_iter()
                .filter(|(o, _)| matches!(o, Observation::Tpot { .. })),
        );
    }
    // Each request: a time per output token.
    Ok(Attempt {
        points,
        expected: records.len(),
    })
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
    if u64::from(r.content_events) < output_tokens || r.tpot_ns().is_some_and(|t| t < MIN_STEP_NS) {
        // The server fell behind and sent several steps' tokens in one event, or in events
        // a few microseconds apart: the first came after several decode steps and the
        // gaps after it are not steps. (On the CPU vLLM whole runs of requests arrive so,
        // every token with the last: their TTFT is their whole decode.)
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
         \x20 per context {:>10.3} ns (a prefill's attention pair)\n\
         \x20            {:>10.3} ns (a decoding token's context token)\n\
         \x20 front end   {:>10.3} ms per request\n\
         \x20             {:>10.3} µs per prompt token\n\
         largest fit error {:.1} %\n",
        p.server,
        p.model,
        p.fit.len(),
        p.fit.iter().map(|f| f.samples_ns.len()).sum::<usize>(),
        c.step_ns / 1e6,
        c.sequence_ns / 1e6,
        c.token_ns / 1e3,
        c.context_ns,
        c.decode_context_ns(),
        p.frontend_request_ns / 1e6,
        p.frontend_prompt_token_ns / 1e3,
        p.max_rel_error * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_model::Usage;

    /// A request of 16 output tokens, one event each, the first at 20 ms and the last
    /// `decode_ns` later.
    fn record(decode_ns: u64) -> RequestRecord {
        let mut r = RequestRecord::new(0, 0, false);
        r.first_token_ns = Some(20_000_000);
        r.last_token_ns = Some(20_000_000 + decode_ns);
        r.end_ns = 20_000_000 + decode_ns;
        r.content_events = 16;
        r.usage = Some(Usage {
            prompt_tokens: Some(510),
            completion_tokens: Some(16),
            cached_tokens: Some(384),
        });
        r
    }

    #[test]
    fn tokens_a_step_apart_are_measurements() {
        let points = observations(&record(15 * 4_000_000), 1).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].1, 4e6);
    }

    #[test]
    fn tokens_that_arrived_together_are_left_out() {
        // Seen on the CPU vLLM: all 16 tokens within 0.2 ms, with the TTFT of the whole
        // request; in separate events, so the event count does not tell.
        assert!(observations(&record(200_000), 1).unwrap().is_empty());
    }
}
