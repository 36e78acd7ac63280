//! What a round's summary says, as rows, for every report that shows it: the terminal
//! summary ([`crate::human`]) and the HTML page ([`crate::html`]) print the same rows in
//! their own layout, so that the page can never carry less than the terminal.

use ldqa_metrics::{RoundSummary, Stats};

/// How a statistics row shows its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    Seconds,
    Millis,
}

impl TimeUnit {
    /// `ns` in this unit, with the digits that suit it.
    pub(crate) fn show(self, ns: f64) -> String {
        match self {
            TimeUnit::Seconds => format!("{:.3}", ns / 1e9),
            TimeUnit::Millis => format!("{:.2}", ns / 1e6),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
        }
    }
}

/// One row of timing statistics (`TTFT from send`, `TPOT`, …).
pub(crate) struct StatRow<'a> {
    /// The quantity, e.g. `TTFT from send`.
    pub name: &'static str,
    /// The unit its values are shown in.
    pub unit: TimeUnit,
    /// `None` when no request gave a value.
    pub stats: Option<&'a Stats>,
}

impl StatRow<'_> {
    /// `TTFT from send (ms)`.
    pub(crate) fn label(&self) -> String {
        format!("{} ({})", self.name, self.unit.suffix())
    }

    /// n, mean, p50, p90, p99, min, max, as shown.
    pub(crate) fn cells(&self) -> Option<[String; 7]> {
        let s = self.stats?;
        let v = |ns: f64| self.unit.show(ns);
        Some([
            s.n.to_string(),
            v(s.mean_ns),
            v(s.p50_ns),
            v(s.p90_ns),
            v(s.p99_ns),
            v(s.min_ns as f64),
            v(s.max_ns as f64),
        ])
    }
}

/// The column heads of [`StatRow::cells`].
pub(crate) const STAT_COLUMNS: [&str; 7] = ["n", "mean", "p50", "p90", "p99", "min", "max"];

/// A time row in seconds switches to milliseconds when every value is under a second
/// (finding 16: `0.001` rows said nothing).
fn time_row<'a>(name: &'static str, stats: Option<&'a Stats>, unit: TimeUnit) -> StatRow<'a> {
    let unit = match (unit, stats) {
        (TimeUnit::Seconds, Some(s)) if (s.max_ns as f64) < 1e9 => TimeUnit::Millis,
        _ => unit,
    };
    StatRow { name, unit, stats }
}

/// The statistics rows of a round, in print order. The hit/miss split is the *planned*
/// one (a document's first send is a miss, its repeats hits): whether the server's cache
/// really hit is in the cached-tokens and server rows (finding 24).
pub(crate) fn stat_rows(s: &RoundSummary) -> Vec<StatRow<'_>> {
    use TimeUnit::{Millis, Seconds};
    let mut rows = vec![
        time_row("TTFT from send", s.ttft.as_ref(), Seconds),
        time_row("TTFT from queue", s.ttft_queued.as_ref(), Seconds),
    ];
    if s.hit_count > 0 && s.miss_count > 0 {
        rows.push(time_row("TTFT planned hit", s.ttft_hit.as_ref(), Seconds));
        rows.push(time_row("TTFT planned miss", s.ttft_miss.as_ref(), Seconds));
    }
    rows.extend([
        time_row("TPOT", s.tpot.as_ref(), Millis),
        time_row("ITL mean", s.itl_mean.as_ref(), Millis),
        time_row("ITL max", s.itl_max.as_ref(), Millis),
        time_row("latency", s.latency.as_ref(), Seconds),
    ]);
    rows
}

/// A duration with a unit that fits it: ms below a second, else seconds.
pub(crate) fn duration(ns: f64) -> String {
    if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

/// ` (http_status 1, timeout 1)`: the round's failures by kind, or nothing.
pub(crate) fn failure_kinds(s: &RoundSummary) -> String {
    if s.failures_by_kind.is_empty() {
        return String::new();
    }
    let kinds: Vec<String> = s
        .failures_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    format!(" ({})", kinds.join(", "))
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A token count that arrived as a float counter.
fn tokens_f(v: f64) -> String {
    if v.is_finite() && v >= 0.0 {
        thousands(v.round() as u64)
    } else {
        format!("{v}")
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// One labelled fact of a round: `tokens` → `6,006 prompt, 126 completion (…)`.
pub(crate) struct Fact {
    pub label: &'static str,
    pub value: String,
}

fn fact(label: &'static str, value: String) -> Fact {
    Fact { label, value }
}

/// The round's time, then what it moved: tokens, cached tokens, throughput, where the
/// prompt tokens came from (simulator), and the server's own cache counters.
pub(crate) fn facts(s: &RoundSummary) -> Vec<Fact> {
    let per_prompt = s.round_time_per_prompt_ns.map_or(String::new(), |ns| {
        format!(" ({} per prompt)", duration(ns))
    });
    let mut out = vec![fact(
        "round time",
        format!("{}{per_prompt}", duration(s.round_time_ns as f64)),
    )];
    out.push(fact("tokens", tokens(s)));
    if let Some(c) = s.cached_tokens {
        let share = if s.prompt_tokens > 0 {
            let share = percent(c as f64 / s.prompt_tokens as f64);
            format!(" ({share} of prompt tokens)")
        } else {
            String::new()
        };
        out.push(fact("cached tokens", format!("{}{share}", thousands(c))));
    }
    if s.input_tokens_per_s.is_some() || s.output_tokens_per_s.is_some() {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let value = format!(
            "{} input tokens/s, {} output tokens/s",
            f(s.input_tokens_per_s),
            f(s.output_tokens_per_s)
        );
        out.push(fact("throughput", value));
    }
    if let Some(p) = &s.prefix {
        let value = format!(
            "{} GPU cache, {} CPU cache (LMCache), {} computed",
            thousands(p.gpu_hit_tokens),
            thousands(p.cpu_hit_tokens),
            thousands(p.computed_tokens)
        );
        out.push(fact("prompt tokens by source", value));
    }
    out.extend(server(s).map(|v| fact("server", v)));
    out
}

fn tokens(s: &RoundSummary) -> String {
    if s.usage_reported == 0 {
        return "the server reported no usage".to_string();
    }
    format!(
        "{} prompt, {} completion (usage from {} of {} requests)",
        thousands(s.prompt_tokens),
        thousands(s.completion_tokens),
        s.usage_reported,
        s.prompt_count
    )
}

/// The server's cache counters over the round, when /metrics was read.
fn server(s: &RoundSummary) -> Option<String> {
    let ev = s.server.as_ref()?;
    if !ev.has_any() {
        return Some("no known cache counters in /metrics".to_string());
    }
    let hit_rate = |name: &str, rate: Option<f64>, hits: Option<f64>, queries: Option<f64>| {
        let counts = match (hits, queries) {
            (Some(h), Some(q)) => format!(" ({} / {} tokens)", tokens_f(h), tokens_f(q)),
            _ => String::new(),
        };
        rate.map(|r| format!("{name} {}{counts}", percent(r)))
    };
    let mut parts = Vec::new();
    parts.extend(hit_rate(
        "GPU prefix cache hits",
        ev.prefix_cache_hit_rate,
        ev.prefix_cache_hits_tokens,
        ev.prefix_cache_queries_tokens,
    ));
    parts.extend(hit_rate(
        "external cache hits",
        ev.external_cache_hit_rate,
        ev.external_cache_hits_tokens,
        ev.external_cache_queries_tokens,
    ));
    parts.extend(hit_rate(
        "LMCache hits",
        ev.lmcache_hit_rate,
        ev.lmcache_hit_tokens,
        ev.lmcache_requested_tokens,
    ));
    if let Some(st) = ev.lmcache_stored_tokens {
        parts.push(format!("LMCache stored {} tokens", tokens_f(st)));
    }
    if parts.is_empty() {
        parts.push("cache counters present but no queries in this round".to_string());
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_fit_their_unit() {
        assert_eq!(duration(276.8e6), "276.8 ms");
        assert_eq!(duration(2.214e9), "2.214 s");
    }
}
