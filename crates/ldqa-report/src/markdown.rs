//! Markdown reports: a run's rounds as tables, and an A/B result with its comparison.

use std::fmt::Write as _;

use ldqa_metrics::{RoundSummary, Stats};

use crate::compare::{gain_str, AbResult, Comparison, EngineOutcome};
use crate::{pyfmt, RunResult};

fn secs(x: f64) -> String {
    format!("{}s", pyfmt::fixed(x, 3))
}

fn stat_cells(s: Option<&Stats>) -> String {
    match s {
        None => "- | - | - | - | - | -".to_string(),
        Some(s) => [
            s.mean_s(),
            s.p50_s(),
            s.p90_s(),
            s.p99_s(),
            s.min_s(),
            s.max_s(),
        ]
        .map(secs)
        .join(" | "),
    }
}

/// The per-round table: counts, round time, TTFT statistics (all, hits, misses), latency.
pub fn rounds_table(rounds: &[&RoundSummary]) -> String {
    let mut out = String::new();
    out.push_str(
        "| round | what | n | mean | p50 | p90 | p99 | min | max |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in rounds {
        let name = s.kind.as_str();
        for (what, st) in [
            ("TTFT", s.ttft.as_ref()),
            ("TTFT (planned hits)", s.ttft_hit.as_ref()),
            ("TTFT (planned misses)", s.ttft_miss.as_ref()),
            ("TTFT from enqueue", s.ttft_queued.as_ref()),
            ("latency", s.latency.as_ref()),
        ] {
            let Some(st) = st else { continue };
            let _ = writeln!(
                out,
                "| {name} | {what} | {} | {} |",
                st.n,
                stat_cells(Some(st))
            );
        }
    }
    out.push('\n');
    out.push_str(
        "| round | prompts | succeeded | failed | round time | per prompt |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for s in rounds {
        let failures: Vec<String> = s
            .failures_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let failed = if failures.is_empty() {
            s.failed_count.to_string()
        } else {
            format!("{} ({})", s.failed_count, failures.join(", "))
        };
        let per = s
            .round_time_per_prompt_ns
            .map_or("-".to_string(), |ns| secs(ns / 1e9));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {failed} | {} | {per} |",
            s.kind.as_str(),
            s.prompt_count,
            s.successful_count,
            secs(s.round_time_s()),
        );
    }
    out
}

/// A run as markdown: title, target, rounds, gains.
pub fn run_markdown(result: &RunResult, title: &str) -> String {
    let mut out = format!("# {title}\n\n");
    run_body(&mut out, result, "##");
    out
}

fn run_body(out: &mut String, result: &RunResult, h: &str) {
    let env = &result.environment;
    let _ = writeln!(
        out,
        "- model: {}\n- target: {}\n- tool: {} {}\n- quantiles: {}\n",
        env.model.as_deref().unwrap_or("-"),
        env.target_url.as_deref().unwrap_or("simulator"),
        result.tool.name,
        result.tool.version,
        result.quantile_method,
    );
    let _ = writeln!(out, "{h} Rounds\n");
    let rounds: Vec<&RoundSummary> = result.rounds.iter().map(|r| &r.summary).collect();
    out.push_str(&rounds_table(&rounds));
    if let Some(g) = &result.gains {
        let _ = writeln!(
            out,
            "\nTTFT gain (warmup over query): {}; latency gain: {}",
            g.ttft_gain.map_or("not measurable".into(), gain_str),
            g.latency_gain.map_or("not measurable".into(), gain_str),
        );
    }
}

fn engine_md(out: &mut String, e: &EngineOutcome) {
    let _ = writeln!(out, "## {}\n", e.engine);
    if let Some(c) = &e.command {
        let _ = writeln!(out, "Server command: `{c}`\n");
    }
    if let Some(err) = &e.error {
        let _ = writeln!(out, "**Problem:** {err}\n");
    }
    for (i, run) in e.runs.iter().enumerate() {
        if e.runs.len() > 1 {
            let _ = writeln!(out, "### Trial {}\n", i + 1);
        }
        run_body(out, run, "###");
        out.push('\n');
    }
    if e.runs.is_empty() {
        out.push_str("No finished run.\n\n");
    }
}

/// An A/B result as markdown: verdict, comparison, then each engine.
pub fn ab_markdown(ab: &AbResult) -> String {
    let mut out = String::from("# ldqa ab: baseline vs LMCache\n\n");
    let _ = writeln!(out, "**Verdict:** {}\n", ab.verdict);
    if let Some(c) = &ab.comparison {
        out.push_str("## Comparison\n\n");
        out.push_str(&c.to_markdown());
        out.push('\n');
    }
    if let Some(x) = ab.working_set_exceeds_gpu_cache {
        let _ = writeln!(
            out,
            "Working set {} the GPU cache.\n",
            if x { "exceeds" } else { "fits in" }
        );
    }
    engine_md(&mut out, &ab.baseline);
    engine_md(&mut out, &ab.lmcache);
    out
}

/// Two runs compared, as markdown.
pub fn compare_markdown(c: &Comparison) -> String {
    format!("# {} vs {}\n\n{}", c.label_a, c.label_b, c.to_markdown())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rich() -> RunResult {
        crate::testutil::rich_run("m")
    }

    #[test]
    fn run_markdown_snapshot() {
        insta::assert_snapshot!("run_markdown", run_markdown(&rich(), "ldqa run"));
    }
}
