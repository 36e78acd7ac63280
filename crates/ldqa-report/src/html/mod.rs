//! One self-contained HTML page per result: tables and inline SVG plots, no scripts, no
//! network (no CDN, no web fonts, no external links).
//!
//! A run's page carries every row of the terminal summary ([`crate::facts`]: TTFT, TPOT, ITL
//! and latency statistics, tokens, cached tokens, throughput, where prompt tokens came from,
//! the server's cache counters), the gains, the plots ([`charts`]) and the configuration,
//! each under its own heading. An A/B page puts the two engines side by side, with the same
//! axes for the same plot so that they can be compared by eye.

mod charts;

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use ldqa_metrics::RoundSummary;
use ldqa_model::{RoundKind, RoundRecord};

use crate::compare::{AbResult, EngineOutcome};
use crate::facts::{facts, failure_kinds, stat_rows, STAT_COLUMNS};
use crate::svg::esc;
use crate::RunResult;
use charts::{timeline, ttft_cdf, ttft_per_request, Scale};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1280px;color:#222;padding:0 16px;line-height:1.4}\
h1{font-size:24px}h2{font-size:19px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:16px;margin-bottom:4px}h4{font-size:14px;margin-bottom:4px}\
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th:first-child,td:first-child,td.l{text-align:left}th{background:#f3f3f3}\
table.facts th{font-weight:normal;white-space:nowrap;vertical-align:top}table.facts td{text-align:left}\
table.sweep td{white-space:nowrap}.scroll{overflow-x:auto}\
.meta{color:#555}.note{color:#555;font-size:13px}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}\
.sides{display:grid;grid-template-columns:1fr 1fr;gap:20px}.sides>section{min-width:0}\
.sides .grid,.sides .rounds{grid-template-columns:1fr}\
.rounds{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:0 24px}.rounds>div{min-width:0}\
@media (max-width:1100px){.sides,.grid,.rounds{grid-template-columns:1fr}}\
svg.plot{width:100%;height:auto;border:1px solid #eee}\
.verdict{font-size:16px;padding:10px 14px;background:#f5f8ff;border-left:4px solid #1f77b4}\
.problem{padding:8px 12px;background:#fff3f3;border-left:4px solid #d62728}\
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}code{font-size:12px}";

/// What the hit/miss split means, said once on every page that shows it (finding 24).
const PLANNED_NOTE: &str = "Hits and misses are the workload's plan: a document's first \
send is a planned miss, its repeats planned hits. What the server really had cached is in the \
cached tokens and server rows.";

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

fn md_table_to_html(md: &str) -> String {
    // The markdown tables of `markdown::rounds_table`, as HTML (cells are plain text).
    let mut out = String::new();
    let mut in_table = false;
    for line in md.lines() {
        if !line.starts_with('|') {
            if in_table {
                out.push_str("</table>\n");
                in_table = false;
            }
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let tag = if in_table { "td" } else { "th" };
        if !in_table {
            out.push_str("<table>\n");
            in_table = true;
        }
        out.push_str("<tr>");
        for c in cells {
            let _ = write!(out, "<{tag}>{}</{tag}>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out
}

/// `Wed, 02 Dec 2026 15:33:09 GMT`.
fn run_date(created_unix_s: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(created_unix_s))
}

/// When, what and where: date, model, target, tool, host, percentile method.
fn meta(out: &mut String, run: &RunResult) {
    let env = &run.environment;
    let host = env
        .hostname
        .as_deref()
        .map_or(String::new(), |h| format!(" on {}", esc(h)));
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} · model <code>{}</code> · target <code>{}</code> · {} {}{host} \
         ({} CPUs, {} {}) · percentiles: {}</p>",
        esc(&run_date(run.created_unix_s)),
        esc(env.model.as_deref().unwrap_or("-")),
        esc(env.target_url.as_deref().unwrap_or("simulator")),
        esc(&run.tool.name),
        esc(&run.tool.version),
        env.cpus,
        esc(&env.os),
        esc(&env.arch),
        esc(&run.quantile_method)
    );
}

/// A round as the terminal shows it: outcome, failures, statistics, then the facts.
fn round_section(out: &mut String, s: &RoundSummary, h: u8) {
    let _ = writeln!(out, "<h{h}>{} round</h{h}>", s.kind.title());
    let plural = if s.prompt_count == 1 { "" } else { "s" };
    let mut outcome = format!(
        "{} request{plural}: {} ok, {} failed{}",
        s.prompt_count,
        s.successful_count,
        s.failed_count,
        failure_kinds(s)
    );
    if s.interrupted {
        outcome.push_str(" (interrupted: the records hold what finished)");
    }
    let _ = writeln!(out, "<p>{}</p>", esc(&outcome));
    if !s.error_samples.is_empty() {
        out.push_str("<ul class=\"problem\">\n");
        for e in &s.error_samples {
            let line = format!("prompt {} {}: {}", e.prompt_id, e.kind, e.message);
            let _ = writeln!(out, "<li>{}</li>", esc(&line));
        }
        out.push_str("</ul>\n");
    }
    stats_table(out, s);
    out.push_str("<table class=\"facts\">\n");
    for f in facts(s) {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(f.label),
            esc(&f.value)
        );
    }
    out.push_str("</table>\n");
}

fn stats_table(out: &mut String, s: &RoundSummary) {
    out.push_str("<table class=\"stats\">\n<tr><th></th>");
    for head in STAT_COLUMNS {
        let _ = write!(out, "<th>{head}</th>");
    }
    out.push_str("</tr>\n");
    for row in stat_rows(s) {
        let _ = write!(out, "<tr><td>{}</td>", esc(&row.label()));
        match row.cells() {
            Some(cells) => cells.iter().for_each(|c| {
                let _ = write!(out, "<td>{c}</td>");
            }),
            None => out.push_str("<td>0</td><td colspan=\"6\">-</td>"),
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn gains(out: &mut String, run: &RunResult) {
    let Some(g) = &run.gains else { return };
    let f = |x: Option<f64>| x.map_or("not measurable".to_string(), crate::compare::gain_str);
    let _ = writeln!(
        out,
        "<p>Gains (query over warmup): TTFT <b>{}</b>, latency per prompt <b>{}</b></p>",
        f(g.ttft_gain),
        f(g.latency_gain)
    );
}

/// The rounds and the gains of one run, round headings at level `h`.
fn results(out: &mut String, run: &RunResult, h: u8) {
    meta(out, run);
    out.push_str("<div class=\"rounds\">\n");
    for round in &run.rounds {
        out.push_str("<div>\n");
        round_section(out, &round.summary, h);
        out.push_str("</div>\n");
    }
    out.push_str("</div>\n");
    gains(out, run);
    if run.rounds.iter().any(|r| r.summary.hit_count > 0) {
        let _ = writeln!(out, "<p class=\"note\">{PLANNED_NOTE}</p>");
    }
}

/// The plots of one run in three groups, each under a heading at level `h`.
fn plots(out: &mut String, run: &RunResult, scale: &Scale, label: &str, h: u8) {
    let records: Vec<RoundRecord> = run.rounds.iter().map(|r| r.to_record()).collect();
    if records.is_empty() {
        return;
    }
    let _ = writeln!(out, "<h{h}>TTFT per request</h{h}>\n<div class=\"grid\">");
    for r in &records {
        out.push_str(&ttft_per_request(r, scale, label));
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "</div>\n<h{h}>TTFT distribution</h{h}>\n<div class=\"grid\">"
    );
    let series: Vec<(String, &RoundRecord)> = records
        .iter()
        .map(|r| (r.kind.title().to_string(), r))
        .collect();
    let title = format!("{label}TTFT distribution (CDF)");
    out.push_str(&ttft_cdf(&series, &title, scale.ttft_max_s));
    let _ = writeln!(
        out,
        "\n</div>\n<h{h}>Request timelines</h{h}>\n<div class=\"grid\">"
    );
    for r in &records {
        out.push_str(&timeline(r, scale, label));
        out.push('\n');
    }
    out.push_str("</div>\n");
}

/// The configuration as tables: scalars first, then one table per nested object.
fn configuration(out: &mut String, config: &serde_json::Value) {
    out.push_str("<h2>Configuration</h2>\n");
    let Some(map) = config.as_object() else {
        let text = serde_json::to_string_pretty(config).unwrap_or_default();
        let _ = writeln!(out, "<pre>{}</pre>", esc(&text));
        return;
    };
    let (objects, scalars): (Vec<_>, Vec<_>) = map.iter().partition(|(_, v)| v.is_object());
    config_table(out, scalars.into_iter(), "");
    for (key, value) in objects {
        let _ = writeln!(out, "<h3>{}</h3>", esc(key));
        let inner = value.as_object().expect("partitioned on is_object");
        config_table(out, inner.iter(), "");
    }
}

/// Rows `key → value`; nested objects flatten to `outer.inner` keys.
fn config_table<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
    prefix: &str,
) {
    let mut rows = String::new();
    config_rows(&mut rows, entries, prefix);
    if !rows.is_empty() {
        let _ = writeln!(out, "<table class=\"facts\">\n{rows}</table>");
    }
}

fn config_rows<'a>(
    rows: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
    prefix: &str,
) {
    for (key, value) in entries {
        let key = format!("{prefix}{key}");
        match value {
            serde_json::Value::Object(inner) => config_rows(rows, inner.iter(), &format!("{key}.")),
            serde_json::Value::String(s) => {
                let _ = writeln!(rows, "<tr><th>{}</th><td>{}</td></tr>", esc(&key), esc(s));
            }
            serde_json::Value::Null => {
                let _ = writeln!(rows, "<tr><th>{}</th><td>not set</td></tr>", esc(&key));
            }
            other => {
                let _ = writeln!(
                    rows,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    esc(&key),
                    esc(&other.to_string())
                );
            }
        }
    }
}

/// The one title of a run's report, whichever command writes it: `ldqa run: Long Doc QA
/// results`, `ldqa predict: …` (finding 36: `--visualize` and `ldqa report` disagreed).
pub fn run_title(run: &RunResult) -> String {
    let command = run.config["command"].as_str().unwrap_or("run");
    format!("ldqa {command}: Long Doc QA results")
}

/// The HTML page of one run: results, plots, configuration.
pub fn run_html(run: &RunResult, title: &str) -> String {
    let scale = Scale::of(&[run]);
    let mut body = format!("<h1>{}</h1>\n<h2>Results</h2>\n", esc(title));
    results(&mut body, run, 3);
    body.push_str("<h2>Plots</h2>\n");
    plots(&mut body, run, &scale, "", 3);
    configuration(&mut body, &run.config);
    page(title, &body)
}

fn engine_section(out: &mut String, e: &EngineOutcome, scale: &Scale) {
    let _ = writeln!(out, "<section>\n<h2>{}</h2>", esc(&e.engine));
    if let Some(c) = &e.command {
        let _ = writeln!(out, "<p>server: <code>{}</code></p>", esc(c));
    }
    if let Some(err) = &e.error {
        let _ = writeln!(out, "<p class=\"problem\">{}</p>", esc(err));
    }
    if e.runs.is_empty() {
        out.push_str("<p>No finished run.</p>\n");
    }
    let trials = e.runs.len() > 1;
    let h = if trials { 4 } else { 3 };
    for (i, run) in e.runs.iter().enumerate() {
        if trials {
            let _ = writeln!(out, "<h3>Trial {}</h3>", i + 1);
        }
        results(out, run, h);
        plots(out, run, scale, &format!("{}: ", e.engine), h);
    }
    out.push_str("</section>\n");
}

/// The HTML page of an A/B result: verdict, comparison, query CDFs of both engines, then
/// the engines side by side, then the configuration.
pub fn ab_html(ab: &AbResult) -> String {
    let title = "ldqa ab: baseline vs LMCache";
    let runs: Vec<&RunResult> = ab.baseline.runs.iter().chain(&ab.lmcache.runs).collect();
    let scale = Scale::of(&runs);
    let mut body = format!("<h1>{title}</h1>\n");
    let _ = writeln!(body, "<p class=\"verdict\">{}</p>", esc(&ab.verdict));
    // The verdict often says it already, in the same words (finding 36): once is enough.
    let said = ab.verdict.contains("the GPU cache");
    if let (Some(x), false) = (ab.working_set_exceeds_gpu_cache, said) {
        let _ = writeln!(
            body,
            "<p>The documents' KV cache {} the GPU cache.</p>",
            if x { "exceeds" } else { "fits in" }
        );
    }
    if let Some(c) = &ab.comparison {
        body.push_str("<h2>Comparison</h2>\n");
        body.push_str(&md_table_to_html(&c.to_markdown()));
    }
    let mut series = Vec::new();
    for e in [&ab.baseline, &ab.lmcache] {
        if let Some(run) = e.runs.first() {
            for kind in [RoundKind::Warmup, RoundKind::Query] {
                if let Some(r) = run.round(kind) {
                    series.push((format!("{} {}", e.engine, kind.as_str()), r.to_record()));
                }
            }
        }
    }
    if !series.is_empty() {
        let refs: Vec<(String, &RoundRecord)> =
            series.iter().map(|(n, r)| (n.clone(), r)).collect();
        body.push_str("<h2>TTFT distribution, both engines</h2>\n<div class=\"grid\">\n");
        body.push_str(&ttft_cdf(
            &refs,
            "TTFT distribution (CDF), both engines",
            scale.ttft_max_s,
        ));
        body.push_str("\n</div>\n");
    }
    body.push_str("<div class=\"sides\">\n");
    engine_section(&mut body, &ab.baseline, &scale);
    engine_section(&mut body, &ab.lmcache, &scale);
    body.push_str("</div>\n");
    configuration(&mut body, &ab.config);
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rich_round;

    fn rich() -> RunResult {
        crate::testutil::rich_run("<m>")
    }

    /// The `data-points` of every plot.
    pub(crate) fn plot_points(html: &str) -> Vec<usize> {
        html.split("<svg class=\"plot\" data-points=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
            .collect()
    }

    #[test]
    fn run_page_has_every_plot_with_data_and_no_external_reference() {
        let html = run_html(&rich(), "ldqa run");
        // 2 × TTFT per request, 1 CDF, 2 timelines.
        let points = plot_points(&html);
        assert_eq!(points.len(), 5, "{points:?}");
        assert!(points.iter().all(|&n| n > 0), "{points:?}");
        // 6 successful requests per round → 6 points; CDF: 1 + 2·6 per round.
        assert_eq!(points[0], 6);
        assert_eq!(points[2], 2 * 13);
        // Timeline: 6 × (prefill + decode) + 2 failed + 6 that waited for a slot (queued).
        let queued = rich_round(RoundKind::Query)
            .requests
            .iter()
            .filter(|r| r.sent_ns > r.queued_ns)
            .count();
        assert_eq!(queued, 6);
        assert_eq!(points[3], 14 + queued);
        assert!(html.contains("&lt;m&gt;"), "model name is escaped");
        for bad in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
            assert!(!html.contains(bad), "found {bad}");
        }
        // Only the SVG namespace mentions a URL.
        assert_eq!(
            html.matches("http://").count(),
            html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count() + 1
        );
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    }

    /// Finding 24: the page carries every row of the terminal summary, the run date and
    /// the configuration, each under a heading.
    #[test]
    fn run_page_carries_the_terminal_summary() {
        let run = rich();
        let html = run_html(&run, "ldqa run");
        for h in [
            "<h2>Results</h2>",
            "<h2>Plots</h2>",
            "<h2>Configuration</h2>",
        ] {
            assert!(html.contains(h), "missing {h}");
        }
        for h in [
            "Warmup round",
            "Query round",
            "TTFT per request",
            "Request timelines",
        ] {
            assert!(html.contains(&format!("<h3>{h}</h3>")), "missing {h}");
        }
        let mut seen = 0;
        for round in &run.rounds {
            for f in facts(&round.summary) {
                assert!(
                    html.contains(&esc(&f.value)),
                    "missing {}: {}",
                    f.label,
                    f.value
                );
                seen += 1;
            }
            for row in stat_rows(&round.summary) {
                assert!(html.contains(&esc(&row.label())), "missing {}", row.label());
                for c in row.cells().unwrap() {
                    assert!(html.contains(&format!("<td>{c}</td>")), "missing {c}");
                }
            }
        }
        // round time, tokens, throughput, sources, server; + cached tokens in the query round.
        assert_eq!(seen, 11);
        for word in [
            "TPOT (ms)",
            "ITL max (ms)",
            "cached tokens",
            "prompt tokens by source",
        ] {
            assert!(html.contains(word), "missing {word}");
        }
        assert!(html.contains(&run_date(run.created_unix_s)));
        assert!(html.contains("Gains (query over warmup)"));
    }

    /// Finding 24: hits and misses are said to be planned, wherever they appear.
    #[test]
    fn hits_are_labelled_planned() {
        let html = run_html(&rich(), "ldqa run");
        assert!(html.contains("TTFT planned hit (ms)"));
        assert!(html.contains(">prefill, planned hit<"), "timeline legend");
        assert!(html.contains(">planned miss (hollow)<"), "TTFT legend");
        assert!(html.contains(PLANNED_NOTE));
        for stale in ["TTFT (hits)", ">prefill, hit<", ">decode after hit<"] {
            assert!(!html.contains(stale), "found {stale}");
        }
    }

    #[test]
    fn run_date_is_utc() {
        assert_eq!(run_date(1_796_225_589), "Wed, 02 Dec 2026 15:33:09 GMT");
    }

    #[test]
    fn configuration_is_a_table_per_section() {
        let config = serde_json::json!({
            "command": "run", "num_documents": 51,
            "engine": {"gpu": "h100", "knobs": {"block_size": 16}},
        });
        let mut out = String::new();
        configuration(&mut out, &config);
        assert!(
            out.contains("<tr><th>command</th><td>run</td></tr>"),
            "{out}"
        );
        assert!(
            out.contains("<tr><th>num_documents</th><td>51</td></tr>"),
            "{out}"
        );
        assert!(out.contains("<h3>engine</h3>"), "{out}");
        assert!(
            out.contains("<tr><th>knobs.block_size</th><td>16</td></tr>"),
            "{out}"
        );
    }
}
