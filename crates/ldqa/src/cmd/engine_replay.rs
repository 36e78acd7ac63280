//! One engine's replay summed up ([`EngineReplay`]: requests, TTFT statistics, where the
//! prompt tokens came from), from records folded one at a time as requests end
//! ([`Tally`]), so a simulated trace keeps a few numbers per request, not its records.

use ldqa_metrics::Stats;
use ldqa_model::RequestRecord;
use serde::Serialize;

/// One engine's replay (simulated or measured), summed up.
#[derive(Debug, Serialize)]
pub(crate) struct EngineReplay {
    pub(crate) engine: String,
    pub(crate) requests: usize,
    pub(crate) failed: usize,
    /// Of the failed, those a server shed (HTTP 429 or 503), as routers do near saturation.
    pub(crate) shed: usize,
    pub(crate) mean_ttft_s: f64,
    pub(crate) p50_ttft_s: f64,
    pub(crate) p90_ttft_s: f64,
    pub(crate) p99_ttft_s: f64,
    pub(crate) mean_latency_s: f64,
    /// From the first send to the last end, seconds.
    pub(crate) makespan_s: f64,
    pub(crate) prompt_tokens: u64,
    /// Prompt tokens served from a cache, whichever tier.
    pub(crate) cached_tokens: u64,
    /// The split by tier, when the engine says it (the simulator; not a server's usage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gpu_hit_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_hit_tokens: Option<u64>,
    pub(crate) computed_tokens: u64,
    pub(crate) hit_rate: f64,
    /// Each request's cached tokens, in the trace's order (none for a failed request).
    pub(crate) cached_tokens_per_request: Vec<Option<u64>>,
    /// Open loop: how late requests were sent after they were due (a client that cannot
    /// keep the schedule), 99th percentile and largest, seconds; none in the simulator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) send_lag_p99_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) send_lag_max_s: Option<f64>,
    /// Behind a router: the same summary for each instance, in order (`  #1`, `  #2`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) instances: Vec<EngineReplay>,
    /// Behind a router: the busiest instance's requests over the mean (1: even).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) load_imbalance: Option<f64>,
}

impl EngineReplay {
    /// Requests replayed.
    pub(crate) fn requests(&self) -> usize {
        self.requests
    }

    /// Mean TTFT of the successful requests, seconds (NaN when none).
    pub(crate) fn mean_ttft_s(&self) -> f64 {
        self.mean_ttft_s
    }

    /// 90th percentile TTFT, seconds.
    pub(crate) fn p90_ttft_s(&self) -> f64 {
        self.p90_ttft_s
    }

    /// Requests that failed.
    pub(crate) fn failed(&self) -> usize {
        self.failed
    }

    /// Prompt tokens served from a cache.
    pub(crate) fn cached_tokens(&self) -> u64 {
        self.cached_tokens
    }

    /// Cached over prompt tokens.
    pub(crate) fn hit_rate(&self) -> f64 {
        self.hit_rate
    }

    /// Prompt tokens from LMCache's CPU tier, when the engine says.
    pub(crate) fn cpu_hit_tokens(&self) -> Option<u64> {
        self.cpu_hit_tokens
    }

    /// The summary of `records` (one per request, in order) over `duration_ns`.
    pub(crate) fn of(engine: &str, records: &[RequestRecord], duration_ns: u64) -> EngineReplay {
        let mut tally = Tally::default();
        for (i, r) in records.iter().enumerate() {
            tally.add(i, r);
        }
        tally.finish(engine, duration_ns)
    }

    /// The lines under a table for this engine: how uneven its instances' shares were,
    /// and the requests a server shed (HTTP 429/503), which routers produce near
    /// saturation and which count next to latency.
    pub(crate) fn notes(&self) -> String {
        let mut out = String::new();
        if let Some(x) = self.load_imbalance {
            out.push_str(&format!(
                "{}: the busiest instance took {x:.2}× the mean number of requests\n",
                self.engine
            ));
        }
        for e in std::iter::once(self).chain(&self.instances) {
            if e.shed > 0 {
                out.push_str(&format!(
                    "{}: {} of its {} failed requests were shed (HTTP 429 or 503)\n",
                    e.engine.trim(),
                    e.shed,
                    e.failed
                ));
            }
        }
        out
    }

    /// Sets the per-instance summaries (`instances`, in order) and the load imbalance.
    pub(crate) fn with_instances(mut self, instances: Vec<EngineReplay>) -> EngineReplay {
        let busiest = instances.iter().map(|i| i.requests).max();
        let mean = self.requests as f64 / instances.len().max(1) as f64;
        self.load_imbalance = busiest.map(|b| b as f64 / mean.max(f64::MIN_POSITIVE));
        self.instances = instances;
        self
    }
}

/// Records folded one at a time, in any order: the sums, and per request only its TTFT,
/// latency, send lag and cached tokens (what the summary's percentiles and its
/// per-request list need).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    requests: usize,
    failed: usize,
    shed: usize,
    ttfts: Vec<u64>,
    latency_ns: u128,
    ok: usize,
    lags: Vec<u64>,
    first_sent_ns: Option<u64>,
    last_end_ns: u64,
    prefix_unknown: bool,
    gpu: u64,
    cpu: u64,
    cached: u64,
    prompt: u64,
    /// (position in the replay, cached tokens of a successful request).
    cached_per_request: Vec<(usize, Option<u64>)>,
}

impl Tally {
    /// Folds in request `index`'s record.
    pub(crate) fn add(&mut self, index: usize, r: &RequestRecord) {
        self.requests += 1;
        self.lags.push(r.sent_ns.saturating_sub(r.queued_ns));
        self.first_sent_ns = Some(self.first_sent_ns.map_or(r.sent_ns, |f| f.min(r.sent_ns)));
        self.last_end_ns = self.last_end_ns.max(r.end_ns);
        if let Some(failure) = &r.failure {
            self.failed += 1;
            self.shed += usize::from(matches!(failure.http_status, Some(429 | 503)));
            self.cached_per_request.push((index, None));
            return;
        }
        self.ok += 1;
        self.ttfts.extend(r.ttft_ns());
        self.latency_ns += u128::from(r.end_ns.saturating_sub(r.sent_ns));
        match r.prefix {
            Some(p) => {
                self.gpu += p.gpu_hit_tokens;
                self.cpu += p.cpu_hit_tokens;
            }
            None => self.prefix_unknown = true,
        }
        let u = r.usage.unwrap_or_default();
        self.cached += u.cached_tokens.unwrap_or(0);
        self.prompt += u.prompt_tokens.unwrap_or(0);
        self.cached_per_request.push((index, u.cached_tokens));
    }

    /// From the first send to the last end, ns (one instance's share of a run).
    pub(crate) fn span_ns(&self) -> u64 {
        self.last_end_ns
            .saturating_sub(self.first_sent_ns.unwrap_or(self.last_end_ns))
    }

    /// The summary, named `engine`, over `duration_ns`.
    pub(crate) fn finish(mut self, engine: &str, duration_ns: u64) -> EngineReplay {
        let stats = Stats::from_ns(&self.ttfts);
        let stat = |f: fn(&Stats) -> f64| stats.as_ref().map_or(f64::NAN, f);
        let split_known = !self.prefix_unknown;
        // A measured run's lag: the simulator sends every request when it is free to go.
        let lag_stats = Stats::from_ns(&self.lags).filter(|_| !split_known);
        self.cached_per_request.sort_unstable_by_key(|&(i, _)| i);
        EngineReplay {
            engine: engine.to_string(),
            requests: self.requests,
            failed: self.failed,
            shed: self.shed,
            mean_ttft_s: stat(Stats::mean_s),
            p50_ttft_s: stat(Stats::p50_s),
            p90_ttft_s: stat(Stats::p90_s),
            p99_ttft_s: stat(Stats::p99_s),
            mean_latency_s: self.latency_ns as f64 / self.ok.max(1) as f64 / 1e9,
            makespan_s: duration_ns as f64 / 1e9,
            prompt_tokens: self.prompt,
            cached_tokens: self.cached,
            gpu_hit_tokens: split_known.then_some(self.gpu),
            cpu_hit_tokens: split_known.then_some(self.cpu),
            computed_tokens: self.prompt.saturating_sub(self.cached),
            hit_rate: self.cached as f64 / self.prompt.max(1) as f64,
            cached_tokens_per_request: self
                .cached_per_request
                .into_iter()
                .map(|(_, c)| c)
                .collect(),
            send_lag_p99_s: lag_stats.as_ref().map(Stats::p99_s),
            send_lag_max_s: lag_stats.as_ref().map(|s| s.max_ns as f64 / 1e9),
            instances: Vec::new(),
            load_imbalance: None,
        }
    }
}

/// Each of `n` instances' share of `records` (request `i` went to `instance_of(i, record)`),
/// summed up as `name(k)`, each over its own span.
pub(crate) fn shares(
    records: &[RequestRecord],
    n: usize,
    instance_of: impl Fn(usize, &RequestRecord) -> usize,
    name: impl Fn(usize) -> String,
) -> Vec<EngineReplay> {
    let mut tallies: Vec<Tally> = (0..n).map(|_| Tally::default()).collect();
    for (i, r) in records.iter().enumerate() {
        if let Some(t) = tallies.get_mut(instance_of(i, r)) {
            t.add(i, r);
        }
    }
    finish_shares(tallies, name)
}

/// Each instance's tally summed up as `name(k)`, over its own span.
pub(crate) fn finish_shares(
    tallies: Vec<Tally>,
    name: impl Fn(usize) -> String,
) -> Vec<EngineReplay> {
    tallies
        .into_iter()
        .enumerate()
        .map(|(k, t)| {
            let span = t.span_ns();
            t.finish(&name(k), span)
        })
        .collect()
}
