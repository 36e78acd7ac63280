//! One self-contained HTML page per result: tables and inline SVG plots, no scripts, no
//! network (no CDN, no web fonts, no external links).
//!
//! Plots: TTFT per request for each round (hits filled, misses hollow), the TTFT CDF of every
//! round, and a request timeline per round (queued, prefill, decode; hits and misses in
//! different colours, failures in red). An A/B result puts the two engines side by side,
//! with the same axes for the same plot so that they can be compared by eye.

use std::fmt::Write as _;

use ldqa_metrics::{is_upstream_success, RoundSummary};
use ldqa_model::{ns_to_s, RequestRecord, RoundKind, RoundRecord};

use crate::compare::{AbResult, EngineOutcome};
use crate::svg::{self, esc, Chart};
use crate::timeline::{request_bars, Bar, BarKind};
use crate::{markdown, RunResult};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1280px;color:#222;padding:0 16px}\
h1{font-size:24px}h2{font-size:19px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:16px}\
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th:first-child,td:first-child,td.l{text-align:left}th{background:#f3f3f3}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}\
.sides{display:grid;grid-template-columns:1fr 1fr;gap:20px}.sides>section{min-width:0}\
.sides .grid{grid-template-columns:1fr}\
svg.plot{width:100%;height:auto;border:1px solid #eee}\
.verdict{font-size:16px;padding:10px 14px;background:#f5f8ff;border-left:4px solid #1f77b4}\
.problem{padding:8px 12px;background:#fff3f3;border-left:4px solid #d62728}\
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}code{font-size:12px}";

/// Shared axes for the plots of several runs (A/B), so their scales match.
#[derive(Debug, Clone, Copy, Default)]
struct Scale {
    ttft_max_s: f64,
    prompts: usize,
    round_end_s: f64,
}

impl Scale {
    fn of(runs: &[&RunResult]) -> Scale {
        let mut s = Scale::default();
        for run in runs {
            for round in &run.rounds {
                s.prompts = s.prompts.max(round.records.len());
                let end = round.records.iter().map(|r| r.end_ns).max().unwrap_or(0);
                s.round_end_s = s.round_end_s.max(ns_to_s(end.max(round.duration_ns)));
                for r in round.records.iter().filter(|r| is_upstream_success(r)) {
                    s.ttft_max_s = s.ttft_max_s.max(ns_to_s(r.ttft_ns().unwrap_or(0)));
                }
            }
        }
        s
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// Per-request TTFT of one round: x = position in the round, y = TTFT.
fn ttft_per_request(round: &RoundRecord, scale: &Scale, label: &str) -> String {
    let title = format!("{label}{} round: TTFT per request", round.kind.title());
    let mut c = Chart::new(
        &title,
        "request (order sent)",
        (-0.5, scale.prompts.max(1) as f64 - 0.5),
        "TTFT (s)",
        // Headroom for the legend above the points.
        (0.0, scale.ttft_max_s * 1.3),
    )
    .integer_x();
    let mut order: Vec<_> = round.requests.iter().collect();
    order.sort_by_key(|r| (r.sent_ns, r.prompt_id));
    let (mut hits, mut misses) = (false, false);
    for (i, r) in order.iter().enumerate() {
        if let Some(t) = r.ttft_ns().filter(|_| is_upstream_success(r)) {
            let tip = format!(
                "prompt {} (document {}), {}: TTFT {:.3}s",
                r.prompt_id,
                r.document_id,
                if r.is_miss { "miss" } else { "hit" },
                ns_to_s(t)
            );
            let color = if r.is_miss { svg::ORANGE } else { svg::BLUE };
            c.point(i as f64, ns_to_s(t), color, r.is_miss, &tip);
            hits |= !r.is_miss;
            misses |= r.is_miss;
        }
    }
    if hits {
        c.legend("planned hit", svg::BLUE);
    }
    if misses {
        c.legend("planned miss (hollow)", svg::ORANGE);
    }
    c.finish()
}

const SERIES: [&str; 5] = [svg::BLUE, svg::ORANGE, svg::GREEN, svg::RED, svg::PURPLE];

/// Empirical CDFs of TTFT, one step line per (name, round).
fn ttft_cdf(series: &[(String, &RoundRecord)], title: &str, x_max_s: f64) -> String {
    let mut c = Chart::new(
        title,
        "TTFT (s)",
        (0.0, x_max_s * 1.05),
        "fraction of requests",
        (0.0, 1.0),
    );
    c.legend_low();
    for (i, (name, round)) in series.iter().enumerate() {
        let mut t: Vec<f64> = round
            .requests
            .iter()
            .filter(|r| is_upstream_success(r))
            .filter_map(|r| r.ttft_ns().map(ns_to_s))
            .collect();
        if t.is_empty() {
            continue;
        }
        t.sort_by(f64::total_cmp);
        let n = t.len() as f64;
        let mut pts = vec![(0.0, 0.0)];
        for (k, &x) in t.iter().enumerate() {
            pts.push((x, k as f64 / n));
            pts.push((x, (k + 1) as f64 / n));
        }
        let color = SERIES[i % SERIES.len()];
        c.line(&pts, color);
        c.legend(&format!("{name} (n={})", t.len()), color);
    }
    c.finish()
}

/// The colour and legend entry of each kind of timeline bar, in legend order.
const TIMELINE_SERIES: [(BarKind, &str, &str); 5] = [
    (BarKind::PrefillHit, "prefill, hit", svg::BLUE),
    (BarKind::DecodeHit, "decode after hit", svg::SKY),
    (BarKind::PrefillMiss, "prefill, miss", svg::ORANGE),
    (BarKind::DecodeMiss, "decode after miss", svg::PINK),
    (BarKind::Failed, "failed", svg::RED),
];

/// The request timeline: one bar per request, queued (grey), prefill (blue hit / orange
/// miss), decode (sky / pink), failed (red).
fn timeline(round: &RoundRecord, scale: &Scale, label: &str) -> String {
    let title = format!("{label}{} round: request timeline", round.kind.title());
    let max_id = scale.prompts.max(1) as f64;
    let mut c = Chart::new(
        &title,
        "time since round start (s)",
        (0.0, scale.round_end_s * 1.02),
        "prompt id",
        (-0.7, max_id - 0.3),
    );
    let mut any_queue = false;
    let mut seen = Vec::new();
    for r in &round.requests {
        any_queue |= queued_bar(&mut c, r);
        for bar in request_bars(r) {
            let (_, _, color) = TIMELINE_SERIES
                .into_iter()
                .find(|&(kind, _, _)| kind == bar.kind)
                .expect("invariant: every kind has a series");
            let y = bar.prompt_id as f64;
            c.hbar(bar.from_s, bar.to_s, y, 0.4, color, &bar_tip(r, &bar));
            seen.push(bar.kind);
        }
    }
    if any_queue {
        c.legend("queued (client)", svg::GREY);
    }
    for (kind, name, color) in TIMELINE_SERIES {
        if seen.contains(&kind) {
            c.legend(name, color);
        }
    }
    c.finish()
}

/// Draws the client-side wait (queued → sent) of `r`, if it waited; says whether it did.
fn queued_bar(c: &mut Chart, r: &RequestRecord) -> bool {
    let (queued, sent) = (ns_to_s(r.queued_ns), ns_to_s(r.sent_ns));
    if sent <= queued {
        return false;
    }
    let tip = format!("prompt {}: queued {:.3}s", r.prompt_id, sent - queued);
    c.hbar(queued, sent, r.prompt_id as f64, 0.4, svg::GREY, &tip);
    true
}

/// The tooltip of one timeline bar.
fn bar_tip(r: &RequestRecord, bar: &Bar) -> String {
    let (id, secs) = (r.prompt_id, bar.to_s - bar.from_s);
    let kind = if r.is_miss { "miss" } else { "hit" };
    match bar.kind {
        BarKind::PrefillHit | BarKind::PrefillMiss => {
            format!("prompt {id} ({kind}): prefill {secs:.3}s")
        }
        BarKind::DecodeHit | BarKind::DecodeMiss => {
            format!("prompt {id} ({kind}): decode {secs:.3}s")
        }
        BarKind::Failed => {
            let why = r
                .failure
                .as_ref()
                .map_or("no content".to_string(), |f| f.kind.to_string());
            format!("prompt {id}: failed ({why})")
        }
    }
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

fn run_section(out: &mut String, run: &RunResult, scale: &Scale, label: &str) {
    let env = &run.environment;
    let _ = writeln!(
        out,
        "<p>model <code>{}</code> · target <code>{}</code> · {} {} · quantiles: {}</p>",
        esc(env.model.as_deref().unwrap_or("-")),
        esc(env.target_url.as_deref().unwrap_or("simulator")),
        esc(&run.tool.name),
        esc(&run.tool.version),
        esc(&run.quantile_method)
    );
    let summaries: Vec<&RoundSummary> = run.rounds.iter().map(|r| &r.summary).collect();
    out.push_str(&md_table_to_html(&markdown::rounds_table(&summaries)));
    if let Some(g) = &run.gains {
        let f = |x: Option<f64>| x.map_or("not measurable".to_string(), crate::compare::gain_str);
        let _ = writeln!(
            out,
            "<p>TTFT gain (warmup over query): <b>{}</b>; latency gain: <b>{}</b></p>",
            f(g.ttft_gain),
            f(g.latency_gain)
        );
    }
    out.push_str("<div class=\"grid\">\n");
    let records: Vec<RoundRecord> = run.rounds.iter().map(|r| r.to_record()).collect();
    for r in &records {
        out.push_str(&ttft_per_request(r, scale, label));
        out.push('\n');
    }
    let series: Vec<(String, &RoundRecord)> = records
        .iter()
        .map(|r| (r.kind.title().to_string(), r))
        .collect();
    if !series.is_empty() {
        out.push_str(&ttft_cdf(
            &series,
            &format!("{label}TTFT distribution (CDF)"),
            scale.ttft_max_s,
        ));
        out.push('\n');
    }
    for r in &records {
        out.push_str(&timeline(r, scale, label));
        out.push('\n');
    }
    out.push_str("</div>\n");
}

/// The one title of a run's report, whichever command writes it: `ldqa run: Long Doc QA
/// results`, `ldqa predict: …` (finding 36: `--visualize` and `ldqa report` disagreed).
pub fn run_title(run: &RunResult) -> String {
    let command = run.config["command"].as_str().unwrap_or("run");
    format!("ldqa {command}: Long Doc QA results")
}

/// The HTML page of one run.
pub fn run_html(run: &RunResult, title: &str) -> String {
    let scale = Scale::of(&[run]);
    let mut body = format!("<h1>{}</h1>\n", esc(title));
    run_section(&mut body, run, &scale, "");
    body.push_str("<h2>Configuration</h2>\n<pre>");
    body.push_str(&esc(
        &serde_json::to_string_pretty(&run.config).unwrap_or_default()
    ));
    body.push_str("</pre>\n");
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
    for (i, run) in e.runs.iter().enumerate() {
        if e.runs.len() > 1 {
            let _ = writeln!(out, "<h3>repeat {}</h3>", i + 1);
        }
        run_section(out, run, scale, &format!("{}: ", e.engine));
    }
    out.push_str("</section>\n");
}

/// The HTML page of an A/B result: verdict, comparison, query CDFs of both engines, then
/// the engines side by side.
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
        body.push_str("<div class=\"grid\">\n");
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
    body.push_str("</div>\n<h2>Configuration</h2>\n<pre>");
    body.push_str(&esc(
        &serde_json::to_string_pretty(&ab.config).unwrap_or_default()
    ));
    body.push_str("</pre>\n");
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
}
