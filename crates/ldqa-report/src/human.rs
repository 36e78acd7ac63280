//! The richer plain-text summary printed after upstream's block: per round, requests by
//! outcome, TTFT/TPOT/ITL/latency statistics, tokens and throughput, the hit/miss split,
//! the server's own counters, then the gains.
//!
//! Colour (anstyle) only when asked; the caller decides from the TTY and `NO_COLOR`.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use ldqa_metrics::{Gains, RoundSummary, Stats, QUANTILE_METHOD};

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default();

fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
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

/// How a statistics row shows its values.
#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

/// A row of statistics. Time rows in seconds switch to milliseconds when every value is
/// under a second (finding 16: `0.001` rows said nothing), and the label says which.
fn stats_row(out: &mut String, name: &str, stats: Option<&Stats>, unit: Unit) {
    let unit = match (unit, stats) {
        (Unit::Seconds, Some(s)) if (s.max_ns as f64) < 1e9 => Unit::Millis,
        _ => unit,
    };
    let label = match unit {
        Unit::Seconds => format!("{name} (s)"),
        Unit::Millis => format!("{name} (ms)"),
    };
    let Some(s) = stats else {
        let _ = writeln!(out, "  {label:<22}{:>5}  {:>9}", 0, "-");
        return;
    };
    let v = |ns: f64| match unit {
        Unit::Seconds => format!("{:.3}", ns / 1e9),
        Unit::Millis => format!("{:.2}", ns / 1e6),
    };
    let _ = writeln!(
        out,
        "  {label:<22}{:>5}  {:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        s.n,
        v(s.mean_ns),
        v(s.p50_ns),
        v(s.p90_ns),
        v(s.p99_ns),
        v(s.min_ns as f64),
        v(s.max_ns as f64),
    );
}

/// A duration with a unit that fits it: ms below a second, else seconds.
fn duration(ns: f64) -> String {
    if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "a flat formatter: one block per summary line, in print order"
)]
fn round_section(out: &mut String, s: &RoundSummary, color: bool) {
    let title = format!("{} round", s.kind.title());
    let ok = paint(
        color && s.successful_count > 0,
        GREEN,
        &format!("{} ok", s.successful_count),
    );
    let failed_text = format!("{} failed", s.failed_count);
    let failed = paint(color && s.failed_count > 0, RED, &failed_text);
    let _ = write!(
        out,
        "{}: {} request{}, {ok}, {failed}",
        paint(color, BOLD, &title),
        s.prompt_count,
        if s.prompt_count == 1 { "" } else { "s" }
    );
    if !s.failures_by_kind.is_empty() {
        let kinds: Vec<String> = s
            .failures_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = write!(out, " ({})", kinds.join(", "));
    }
    if s.interrupted {
        let _ = write!(out, " {}", paint(color, RED, "[interrupted]"));
    }
    out.push('\n');
    for e in &s.error_samples {
        let _ = writeln!(out, "  failed #{} {}: {}", e.prompt_id, e.kind, e.message);
    }
    if s.failed_count > s.error_samples.len() {
        let _ = writeln!(
            out,
            "  … {} more failures",
            s.failed_count - s.error_samples.len()
        );
    }
    let per_prompt = s.round_time_per_prompt_ns.map_or(String::new(), |ns| {
        format!(" ({} per prompt)", duration(ns))
    });
    let _ = writeln!(
        out,
        "  round time {}{per_prompt}",
        duration(s.round_time_ns as f64)
    );

    let _ = writeln!(
        out,
        "  {:<22}{:>5}  {:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "", "n", "mean", "p50", "p90", "p99", "min", "max"
    );
    stats_row(out, "TTFT from send", s.ttft.as_ref(), Unit::Seconds);
    stats_row(
        out,
        "TTFT from queue",
        s.ttft_queued.as_ref(),
        Unit::Seconds,
    );
    if s.hit_count > 0 && s.miss_count > 0 {
        stats_row(out, "TTFT hits", s.ttft_hit.as_ref(), Unit::Seconds);
        stats_row(out, "TTFT misses", s.ttft_miss.as_ref(), Unit::Seconds);
    }
    stats_row(out, "TPOT", s.tpot.as_ref(), Unit::Millis);
    stats_row(out, "ITL mean", s.itl_mean.as_ref(), Unit::Millis);
    stats_row(out, "ITL max", s.itl_max.as_ref(), Unit::Millis);
    stats_row(out, "latency", s.latency.as_ref(), Unit::Seconds);

    if s.usage_reported > 0 {
        let _ = writeln!(
            out,
            "  tokens: {} prompt, {} completion (usage from {} of {} requests)",
            thousands(s.prompt_tokens),
            thousands(s.completion_tokens),
            s.usage_reported,
            s.prompt_count
        );
    } else {
        let _ = writeln!(out, "  tokens: the server reported no usage");
    }
    if let Some(c) = s.cached_tokens {
        let share = if s.prompt_tokens > 0 {
            format!(
                " ({} of prompt tokens)",
                percent(c as f64 / s.prompt_tokens as f64)
            )
        } else {
            String::new()
        };
        let _ = writeln!(out, "  cached tokens: {}{share}", thousands(c));
    }
    if s.input_tokens_per_s.is_some() || s.output_tokens_per_s.is_some() {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let _ = writeln!(
            out,
            "  throughput: {} input tokens/s, {} output tokens/s",
            f(s.input_tokens_per_s),
            f(s.output_tokens_per_s)
        );
    }
    if let Some(p) = &s.prefix {
        let _ = writeln!(
            out,
            "  prompt tokens by source: {} GPU cache, {} CPU cache (LMCache), {} computed",
            thousands(p.gpu_hit_tokens),
            thousands(p.cpu_hit_tokens),
            thousands(p.computed_tokens)
        );
    }
    match &s.server {
        Some(ev) if ev.has_any() => {
            let mut parts = Vec::new();
            let hit_rate = |name: &str,
                            rate: Option<f64>,
                            hits: Option<f64>,
                            queries: Option<f64>| {
                let counts = match (hits, queries) {
                    (Some(h), Some(q)) => format!(" ({} / {} tokens)", tokens_f(h), tokens_f(q)),
                    _ => String::new(),
                };
                rate.map(|r| format!("{name} {}{counts}", percent(r)))
            };
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
            let _ = writeln!(out, "  server: {}", parts.join("; "));
        }
        Some(_) => {
            let _ = writeln!(out, "  server: no known cache counters in /metrics");
        }
        None => {}
    }
}

fn gain_text(g: Option<f64>) -> String {
    match g {
        Some(v) if v.is_infinite() => "inf×".to_string(),
        Some(v) => format!("{v:.2}×"),
        None => "not measurable".to_string(),
    }
}

/// The human summary of `rounds` (in order), then the gains when given. Ends in `\n`.
pub fn human_summary(rounds: &[&RoundSummary], gains: Option<&Gains>, color: bool) -> String {
    let mut out = String::new();
    for s in rounds {
        out.push('\n');
        round_section(&mut out, s, color);
    }
    if let Some(g) = gains {
        let _ = writeln!(
            out,
            "\n{} TTFT {}, latency per prompt {}",
            paint(color, BOLD, "Gains (query over warmup):"),
            gain_text(g.ttft_gain),
            gain_text(g.latency_gain)
        );
    }
    let _ = writeln!(out, "Percentiles: {QUANTILE_METHOD}.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{rich_round, summary};
    use ldqa_model::RoundKind;

    fn rounds() -> (RoundSummary, RoundSummary) {
        (
            summary(&rich_round(RoundKind::Warmup)),
            summary(&rich_round(RoundKind::Query)),
        )
    }

    #[test]
    fn snapshot_plain() {
        let (w, q) = rounds();
        let g = Gains::between(&w, &q);
        insta::assert_snapshot!(human_summary(&[&w, &q], Some(&g), false));
    }

    #[test]
    fn colour_only_when_asked() {
        let (w, q) = rounds();
        let plain = human_summary(&[&w, &q], None, false);
        assert!(!plain.contains('\x1b'));
        let coloured = human_summary(&[&w, &q], None, true);
        assert!(
            coloured.contains("\x1b[1mWarmup round\x1b[0m"),
            "{coloured}"
        );
        assert!(
            coloured.contains("\x1b[1m\x1b[31m2 failed\x1b[0m"),
            "{coloured}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(gain_text(Some(f64::INFINITY)), "inf×");
        assert_eq!(gain_text(None), "not measurable");
    }

    /// Finding 31: "1 request", not "1 requests".
    #[test]
    fn one_request_is_singular() {
        let s = summary(&crate::testutil::round(
            RoundKind::Query,
            &[5_000_000],
            9_000_000,
        ));
        let out = human_summary(&[&s], None, false);
        assert!(out.contains("Query round: 1 request, 1 ok"), "{out}");
    }

    #[test]
    fn empty_round_has_placeholders() {
        let s = summary(&crate::testutil::round(RoundKind::Query, &[], 0));
        let out = human_summary(&[&s], None, false);
        assert!(
            out.contains("Query round: 0 requests, 0 ok, 0 failed"),
            "{out}"
        );
        assert!(
            out.contains("  TTFT from send (s)        0          -"),
            "{out}"
        );
        assert!(out.contains("the server reported no usage"));
    }
}
