//! `/metrics`: Prometheus text with vLLM's and LMCache's metric names.
//!
//! Names as vLLM V1 exports them (`vllm/v1/metrics/loggers.py`): gauges
//! `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`
//! (and its older name `vllm:gpu_cache_usage_perc`); counters (`_total` added by
//! prometheus_client) `vllm:prefix_cache_queries_total`, `vllm:prefix_cache_hits_total`,
//! `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`, `vllm:num_preemptions_total`;
//! `vllm:request_success_total{finished_reason}` (`length` for every finished request: the
//! simulated model never stops early; a request whose client went away is not counted,
//! as in vLLM, but in `ldqa:aborted_requests_total`); histograms, with vLLM
//! 0.32's buckets, `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds`,
//! `vllm:request_time_per_output_token_seconds`, `vllm:e2e_request_latency_seconds` (from
//! the request's arrival), `vllm:request_queue_time_seconds` (engine arrival to first
//! scheduled), `vllm:request_prefill_time_seconds` (first scheduled to first token),
//! `vllm:request_decode_time_seconds` (first to last token),
//! `vllm:request_inference_time_seconds` (first scheduled to last token),
//! `vllm:request_prompt_tokens` and `vllm:request_generation_tokens` (1-2-5 buckets up to
//! `max_model_len`). LMCache
//! (`lmcache/observability.py`): `lmcache:num_hit_tokens_total`,
//! `lmcache:num_stored_tokens_total`. One extra, ours: `ldqa:token_emission_lag_seconds`,
//! how late each token event left the server after its due wall time; and
//! `ldqa:injected_faults_total{kind=…}`, the faults injected by `--fault-rate`.
//!
//! Times are wall seconds (see the crate docs on `--time-scale`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ldqa_sim::{Engine, EngineStats};

use crate::faults::FaultKind;

/// vLLM's TTFT buckets (seconds; vLLM 0.32, `vllm/v1/metrics/buckets.py`).
const TTFT_BUCKETS_S: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's inter-token latency and per-request time-per-output-token buckets (seconds).
const ITL_BUCKETS_S: [f64; 19] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's request latency buckets (e2e, queue, prefill, decode, inference; seconds).
const LATENCY_BUCKETS_S: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, … up to `max` (`build_1_2_5_buckets`).
fn one_two_five_up_to(max: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut scale = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            match m.checked_mul(scale) {
                Some(v) if v <= max => out.push(v as f64),
                _ => return out,
            }
        }
        scale = match scale.checked_mul(10) {
            Some(s) => s,
            None => return out,
        };
    }
}

/// The times of one finished request (wall time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FinishedTimes {
    pub e2e: Duration,
    pub queue: Duration,
    pub prefill: Duration,
    pub decode: Duration,
    pub inference: Duration,
    pub prompt_tokens: u64,
    pub output_tokens: u32,
}
/// Emission lag buckets (seconds): fine below a millisecond.
pub const LAG_BUCKETS_S: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1,
];

/// A histogram with fixed buckets, updated lock-free. Values are kept as integers:
/// nanoseconds for a histogram of seconds, or plain counts (tokens).
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<u64>,
    /// Stored units per exported unit (1e9 for seconds kept in nanoseconds).
    scale: f64,
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram of seconds with these bucket bounds.
    fn seconds(bounds_s: &[f64]) -> Self {
        Self::scaled(bounds_s, 1e9)
    }

    /// A histogram of counts with these bucket bounds.
    fn counts(bounds: &[f64]) -> Self {
        Self::scaled(bounds, 1.0)
    }

    fn scaled(bounds: &[f64], scale: f64) -> Self {
        Histogram {
            bounds: bounds.iter().map(|b| (b * scale).round() as u64).collect(),
            scale,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Adds one duration (a histogram of seconds).
    pub fn observe(&self, d: Duration) {
        self.observe_units(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds one value in stored units.
    fn observe_units(&self, v: u64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Observations at or below each bound, cumulative: `(bound, count)`, the bound in
    /// stored units (nanoseconds for seconds).
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut acc = 0;
        self.bounds
            .iter()
            .zip(&self.counts)
            .map(|(&b, c)| {
                acc += c.load(Ordering::Relaxed);
                (b, acc)
            })
            .collect()
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.cumulative() {
            let le = b as f64 / self.scale;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {c}");
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {n}");
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.scale;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {n}");
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Gauges {
    running: usize,
    waiting: usize,
    kv_usage: f64,
    stats: EngineStats,
}

/// Everything `/metrics` shows. Written by the engine task and the streams.
#[derive(Debug)]
pub struct Metrics {
    gauges: Mutex<Gauges>,
    prompt_tokens: AtomicU64,
    aborted: AtomicU64,
    injected: [AtomicU64; FaultKind::ALL.len()],
    ttft: Histogram,
    itl: Histogram,
    tpot: Histogram,
    e2e: Histogram,
    queue: Histogram,
    prefill: Histogram,
    decode: Histogram,
    inference: Histogram,
    request_prompt_tokens: Histogram,
    request_generation_tokens: Histogram,
    /// Lateness of token events leaving the server (wall time after their due time).
    pub emission_lag: Histogram,
    /// Jitter: how much the lateness changed between consecutive tokens of one stream
    /// (|lag(k) − lag(k−1)|, the interarrival jitter of RFC 3550 §6.4.1 without smoothing).
    pub emission_jitter: Histogram,
}

impl Metrics {
    /// Empty metrics for a server whose requests are at most `max_model_len` tokens (the
    /// token-count histograms' last bucket, as vLLM's).
    pub fn new(max_model_len: u64) -> Self {
        let tokens = one_two_five_up_to(max_model_len);
        Metrics {
            gauges: Mutex::new(Gauges::default()),
            prompt_tokens: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            injected: Default::default(),
            ttft: Histogram::seconds(&TTFT_BUCKETS_S),
            itl: Histogram::seconds(&ITL_BUCKETS_S),
            tpot: Histogram::seconds(&ITL_BUCKETS_S),
            e2e: Histogram::seconds(&LATENCY_BUCKETS_S),
            queue: Histogram::seconds(&LATENCY_BUCKETS_S),
            prefill: Histogram::seconds(&LATENCY_BUCKETS_S),
            decode: Histogram::seconds(&LATENCY_BUCKETS_S),
            inference: Histogram::seconds(&LATENCY_BUCKETS_S),
            request_prompt_tokens: Histogram::counts(&tokens),
            request_generation_tokens: Histogram::counts(&tokens),
            emission_lag: Histogram::seconds(&LAG_BUCKETS_S),
            emission_jitter: Histogram::seconds(&LAG_BUCKETS_S),
        }
    }

    /// Copies the engine's gauges and counters.
    pub(crate) fn publish(&self, engine: &Engine) {
        let g = Gauges {
            running: engine.num_running(),
            waiting: engine.num_waiting(),
            kv_usage: engine.gpu_cache_usage(),
            stats: engine.stats(),
        };
        if let Ok(mut lock) = self.gauges.lock() {
            *lock = g;
        }
    }

    pub(crate) fn first_token(&self, ttft: Duration, prompt_tokens: u64) {
        self.ttft.observe(ttft);
        self.prompt_tokens
            .fetch_add(prompt_tokens, Ordering::Relaxed);
    }

    /// The time between two consecutive tokens of one request.
    pub(crate) fn inter_token(&self, d: Duration) {
        self.itl.observe(d);
    }

    /// A request that produced all its tokens.
    pub(crate) fn finished(&self, t: &FinishedTimes) {
        self.e2e.observe(t.e2e);
        self.queue.observe(t.queue);
        self.prefill.observe(t.prefill);
        self.decode.observe(t.decode);
        self.inference.observe(t.inference);
        if t.output_tokens > 1 {
            self.tpot.observe(t.decode / (t.output_tokens - 1));
        }
        self.request_prompt_tokens.observe_units(t.prompt_tokens);
        self.request_generation_tokens
            .observe_units(u64::from(t.output_tokens));
    }

    pub(crate) fn aborted(&self) {
        self.aborted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn injected(&self, kind: FaultKind) {
        self.injected[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Faults of `kind` injected so far.
    pub fn injected_faults(&self, kind: FaultKind) -> u64 {
        self.injected[kind.index()].load(Ordering::Relaxed)
    }

    /// Fraction of GPU KV blocks held by requests now (0..1).
    pub fn kv_cache_usage(&self) -> f64 {
        self.gauges.lock().map(|g| g.kv_usage).unwrap_or(0.0)
    }

    /// The exposition text. `model` labels every sample, as vLLM does.
    #[allow(
        clippy::too_many_lines,
        reason = "one uniform entry per exported metric, in exposition order"
    )]
    pub fn render(&self, model: &str) -> String {
        let g = self.gauges.lock().map(|g| *g).unwrap_or_default();
        let labels = format!("engine=\"0\",model_name=\"{}\"", escape_label(model));
        let mut out = String::with_capacity(4096);
        let mut sample = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{labels}}} {value}"
            );
        };
        sample(
            "vllm:num_requests_running",
            "gauge",
            "Number of requests in model execution batches.",
            g.running.to_string(),
        );
        sample(
            "vllm:num_requests_waiting",
            "gauge",
            "Number of requests waiting to be processed.",
            g.waiting.to_string(),
        );
        sample(
            "vllm:kv_cache_usage_perc",
            "gauge",
            "KV-cache usage. 1 means 100 percent usage.",
            g.kv_usage.to_string(),
        );
        sample(
            "vllm:gpu_cache_usage_perc",
            "gauge",
            "GPU KV-cache usage. 1 means 100 percent usage (older name).",
            g.kv_usage.to_string(),
        );
        let s = g.stats;
        let counters = [
            (
                "vllm:prefix_cache_queries_total",
                "Prefix cache queries, in terms of number of queried tokens.",
                s.prefix_cache_queries_tokens,
            ),
            (
                "vllm:prefix_cache_hits_total",
                "Prefix cache hits, in terms of number of cached tokens.",
                s.prefix_cache_hits_tokens,
            ),
            (
                "vllm:prompt_tokens_total",
                "Number of prefill tokens processed.",
                self.prompt_tokens.load(Ordering::Relaxed),
            ),
            (
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                s.generation_tokens,
            ),
            (
                "vllm:num_preemptions_total",
                "Cumulative number of preemption from the engine.",
                s.preemptions,
            ),
            (
                "lmcache:num_hit_tokens_total",
                "Tokens retrieved from LMCache's CPU tier.",
                s.lmcache_hit_tokens,
            ),
            (
                "lmcache:num_stored_tokens_total",
                "Tokens stored to LMCache's CPU tier.",
                s.lmcache_stored_tokens,
            ),
            (
                "ldqa:aborted_requests_total",
                "Requests aborted because their client went away.",
                self.aborted.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            sample(name, "counter", help, v.to_string());
        }
        let name = "vllm:request_success_total";
        let _ = writeln!(
            out,
            "# HELP {name} Count of successfully processed requests.\n# TYPE {name} counter"
        );
        let reasons = [
            ("stop", 0),
            ("length", s.finished),
            ("abort", 0),
            ("error", 0),
            ("repetition", 0),
        ];
        for (reason, n) in reasons {
            let _ = writeln!(out, "{name}{{{labels},finished_reason=\"{reason}\"}} {n}");
        }
        let name = "ldqa:injected_faults_total";
        let _ = writeln!(
            out,
            "# HELP {name} Faults injected by --fault-rate, by kind.\n# TYPE {name} counter"
        );
        for kind in FaultKind::ALL {
            let n = self.injected_faults(kind);
            let _ = writeln!(out, "{name}{{{labels},kind=\"{kind}\"}} {n}");
        }
        self.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds (wall time).",
            &labels,
        );
        let histograms = [
            (
                &self.itl,
                "vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
            ),
            (
                &self.tpot,
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
            ),
            (
                &self.e2e,
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
            ),
            (
                &self.queue,
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
            ),
            (
                &self.inference,
                "vllm:request_inference_time_seconds",
                "Histogram of time spent in RUNNING phase for request.",
            ),
            (
                &self.prefill,
                "vllm:request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.",
            ),
            (
                &self.decode,
                "vllm:request_decode_time_seconds",
                "Histogram of time spent in DECODE phase for request.",
            ),
            (
                &self.request_prompt_tokens,
                "vllm:request_prompt_tokens",
                "Number of prefill tokens processed.",
            ),
            (
                &self.request_generation_tokens,
                "vllm:request_generation_tokens",
                "Number of generation tokens processed.",
            ),
        ];
        for (h, name, help) in histograms {
            h.render(&mut out, name, help, &labels);
        }
        self.emission_lag.render(
            &mut out,
            "ldqa:token_emission_lag_seconds",
            "How late token events left the server after their due wall time.",
            &labels,
        );
        self.emission_jitter.render(
            &mut out,
            "ldqa:token_emission_jitter_seconds",
            "Change of that lateness between consecutive tokens of one stream.",
            &labels,
        );
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::seconds(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        assert_eq!(h.cumulative(), vec![(1_000_000, 1), (10_000_000, 2)]);
        assert_eq!(h.count(), 3);
        let mut out = String::new();
        h.render(&mut out, "x", "help", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3"), "{out}");
    }

    #[test]
    fn token_buckets_are_vllms() {
        // vLLM 0.32 with max_model_len 32768 (docs/real-vllm-metrics-sample.txt).
        assert_eq!(
            one_two_five_up_to(32_768),
            [1., 2., 5., 10., 20., 50., 100., 200., 500., 1e3, 2e3, 5e3, 1e4, 2e4]
        );
        let h = Histogram::counts(&one_two_five_up_to(100));
        h.observe_units(7);
        let mut out = String::new();
        h.render(&mut out, "t", "help", "a=\"b\"");
        assert!(out.contains("t_bucket{a=\"b\",le=\"10\"} 1"), "{out}");
        assert!(out.contains("t_sum{a=\"b\"} 7"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
