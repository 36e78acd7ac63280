//! `/metrics`: Prometheus text with vLLM's and LMCache's metric names.
//!
//! Names as vLLM V1 exports them (`vllm/v1/metrics/loggers.py`): gauges
//! `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`
//! (and its older name `vllm:gpu_cache_usage_perc`); counters (`_total` added by
//! prometheus_client) `vllm:prefix_cache_queries_total`, `vllm:prefix_cache_hits_total`,
//! `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`, `vllm:num_preemptions_total`;
//! histogram `vllm:time_to_first_token_seconds` (vLLM's buckets). LMCache
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

/// vLLM's TTFT buckets (seconds).
const TTFT_BUCKETS_S: [f64; 21] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0,
];
/// Emission lag buckets (seconds): fine below a millisecond.
pub const LAG_BUCKETS_S: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1,
];

/// A histogram with fixed buckets, updated lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds_ns: Vec<u64>,
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds_s: &[f64]) -> Self {
        Histogram {
            bounds_ns: bounds_s.iter().map(|b| (b * 1e9).round() as u64).collect(),
            counts: bounds_s.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Adds one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(i) = self.bounds_ns.iter().position(|&b| ns <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Observations at or below each bound, cumulative: `(bound_ns, count)`.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut acc = 0;
        self.bounds_ns
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
            let le = b as f64 / 1e9;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {c}");
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {n}");
        let sum_s = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum_s}");
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
    /// Lateness of token events leaving the server (wall time after their due time).
    pub emission_lag: Histogram,
    /// Jitter: how much the lateness changed between consecutive tokens of one stream
    /// (|lag(k) − lag(k−1)|, the interarrival jitter of RFC 3550 §6.4.1 without smoothing).
    pub emission_jitter: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            gauges: Mutex::new(Gauges::default()),
            prompt_tokens: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            injected: Default::default(),
            ttft: Histogram::new(&TTFT_BUCKETS_S),
            emission_lag: Histogram::new(&LAG_BUCKETS_S),
            emission_jitter: Histogram::new(&LAG_BUCKETS_S),
        }
    }
}

impl Metrics {
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
                "vllm:request_success_total",
                "Count of successfully processed requests.",
                s.finished,
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
        let h = Histogram::new(&[0.001, 0.01]);
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
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
