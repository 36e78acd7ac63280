//! Reading a server's Prometheus `/metrics` text, and the per-round deltas users need
//! to see *why* a round was fast or slow.
//!
//! Hand-written on purpose: we need only "sum every sample of a metric over its label
//! sets", and the exposition format's sample line is simple
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::collections::BTreeMap;

use ldqa_model::ServerEvidence;

/// Metric name → sum of its samples over all label sets.
pub type Snapshot = BTreeMap<String, f64>;

/// Metric families worth a delta, by prefix: vLLM's and LMCache's counters.
const INTERESTING_PREFIXES: [&str; 2] = ["vllm:", "lmcache:"];

/// Parses exposition text. Unparseable lines are skipped: a scrape is evidence, not a contract.
///
/// Only samples whose sum means something are kept: histogram buckets (`_bucket`, one per
/// bound, cumulative), summary quantiles and `_created` timestamps (Python's
/// prometheus_client adds one per counter and histogram, seconds since the epoch) are left
/// out; a histogram's `_sum` and `_count` stay.
pub fn parse(text: &str) -> Snapshot {
    let mut out = Snapshot::new();
    let mut summaries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(family) = summary_family(line) {
            summaries.push(family.to_owned());
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = split_name(line) else {
            continue;
        };
        let not_a_count = name.ends_with("_bucket")
            || name.ends_with("_created")
            || summaries.iter().any(|f| f == name);
        if not_a_count {
            continue;
        }
        let Some(value) = rest.split_whitespace().next().and_then(parse_value) else {
            continue;
        };
        *out.entry(name.to_owned()).or_insert(0.0) += value;
    }
    out
}

/// `# TYPE name summary` → `name`, whose unsuffixed samples are quantiles.
fn summary_family(line: &str) -> Option<&str> {
    let mut words = line.strip_prefix('#')?.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("TYPE"), Some(name), Some("summary")) => Some(name),
        _ => None,
    }
}

/// Splits `name{labels} value ts` into the name and what follows the labels.
fn split_name(line: &str) -> Option<(&str, &str)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        // Skip to the closing brace, honouring quoted label values with escapes.
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, c) in labels.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '}' if !in_quotes => return Some((name, &labels[i + 1..])),
                _ => {}
            }
        }
        None
    } else {
        Some((name, rest))
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `after − before` for the vLLM and LMCache metrics present in `after`.
///
/// Gauges (running requests, cache usage) are included as their change; the summary
/// chooses which names it reports.
pub fn delta(before: &Snapshot, after: &Snapshot) -> ServerEvidence {
    let deltas = after
        .iter()
        .filter(|(name, v)| {
            INTERESTING_PREFIXES.iter().any(|p| name.starts_with(p)) && v.is_finite()
        })
        .map(|(name, v)| (name.clone(), v - before.get(name).copied().unwrap_or(0.0)))
        .collect();
    ServerEvidence {
        deltas,
        instances: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 510051.0
vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:num_requests_running{engine="0",model_name="m"} 4.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 56.0
lmcache:num_hit_tokens_total{model_name="m",worker_id="0"} 1000
lmcache:num_hit_tokens_total{model_name="m",worker_id="1"} 24
weird{label="a}b \"q\" c"} 2.5 1700000000000
process_cpu_seconds_total 12.5
broken line
"#;

    #[test]
    fn sums_over_label_sets_and_skips_junk() {
        let s = parse(VLLM);
        assert_eq!(s["vllm:prefix_cache_queries_total"], 510051.0);
        assert_eq!(s["lmcache:num_hit_tokens_total"], 1024.0);
        assert_eq!(s["weird"], 2.5);
        assert!(!s.contains_key("broken"));
    }

    /// What vLLM's Python prometheus_client writes: a `_created` timestamp beside each
    /// counter and histogram, cumulative buckets, and (here) a summary's quantiles. None of
    /// them is a count; summed, they made deltas of billions of "tokens" (issue 12).
    #[test]
    fn leaves_out_buckets_timestamps_and_quantiles() {
        let text = r#"# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0"} 2010.0
vllm:prefix_cache_queries_created{engine="0"} 1.7964e+09
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1"} 1.0
vllm:time_to_first_token_seconds_bucket{le="+Inf"} 2.0
vllm:time_to_first_token_seconds_count 2.0
vllm:time_to_first_token_seconds_sum 0.25
vllm:time_to_first_token_seconds_created 1.7964e+09
# TYPE rpc_latency summary
rpc_latency{quantile="0.5"} 0.1
rpc_latency{quantile="0.9"} 0.3
rpc_latency_sum 4.0
rpc_latency_count 20
"#;
        let s = parse(text);
        assert_eq!(s["vllm:prefix_cache_queries_total"], 2010.0);
        assert_eq!(s["vllm:time_to_first_token_seconds_count"], 2.0);
        assert_eq!(s["vllm:time_to_first_token_seconds_sum"], 0.25);
        assert_eq!(s["rpc_latency_count"], 20.0);
        for gone in [
            "vllm:prefix_cache_queries_created",
            "vllm:time_to_first_token_seconds_bucket",
            "vllm:time_to_first_token_seconds_created",
            "rpc_latency",
        ] {
            assert!(!s.contains_key(gone), "{gone}: {s:?}");
        }
    }

    #[test]
    fn delta_keeps_engine_metrics_only() {
        let before = parse("vllm:prefix_cache_hits_total 10\nprocess_cpu_seconds_total 1\n");
        let after = parse("vllm:prefix_cache_hits_total 250\nlmcache:num_stored_tokens_total 512\nprocess_cpu_seconds_total 9\n");
        let d = delta(&before, &after);
        assert_eq!(d.deltas.get("vllm:prefix_cache_hits_total"), Some(&240.0));
        assert_eq!(
            d.deltas.get("lmcache:num_stored_tokens_total"),
            Some(&512.0)
        );
        assert!(!d.deltas.contains_key("process_cpu_seconds_total"));
    }
}
