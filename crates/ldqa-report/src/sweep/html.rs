//! The sweep as one self-contained HTML page: the description, each curve's verdict, the
//! plot (inline SVG, the same drawing as `sweep.png`) and each curve's table.

use std::fmt::Write as _;

use ldqa_metrics::{ArmPoint, SweepPoint};

use super::SweepReport;
use crate::svg::esc;

/// The page.
pub fn sweep_html(report: &SweepReport) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>ldqa sweep</h1>\n<p class=\"meta\">{}</p>\n<h2>Verdict</h2>\n",
        esc(&report.description)
    );
    for (curve, c) in report.curves().iter().zip(&report.crossovers) {
        let name = report.curve_name(curve.series);
        let prefix = if name.is_empty() {
            String::new()
        } else {
            format!("<b>{}</b>: ", esc(&name))
        };
        let _ = writeln!(
            body,
            "<p class=\"verdict\">{prefix}{}</p>",
            esc(&c.crossovers.verdict)
        );
    }
    body.push_str("<h2>Plot</h2>\n");
    match super::plot::sweep_svg(report) {
        Ok(svg) => body.push_str(&svg.replacen("<svg ", "<svg class=\"plot\" ", 1)),
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"problem\">The plot failed: {}</p>",
                esc(&e)
            );
        }
    }
    body.push_str("\n<h2>Points</h2>\n");
    for curve in report.curves() {
        let name = report.curve_name(curve.series);
        if !name.is_empty() {
            let _ = writeln!(body, "<h3>{}</h3>", esc(&name));
        }
        if let (true, Some(c)) = (
            report.axis.is_working_set(),
            curve.points.first().map(|p| p.capacities),
        ) {
            let _ = writeln!(
                body,
                "<p class=\"note\">GPU prefix cache: {} tokens = {} documents of {} tokens; LMCache CPU tier: {} tokens = {} documents.</p>",
                c.gpu_kv_tokens, c.gpu_documents(), c.tokens_per_document, c.cpu_tier_tokens, c.cpu_documents()
            );
        }
        body.push_str(&points_table(report, &curve.points));
    }
    let _ = write!(
        body,
        "<h2>Workload</h2>\n<pre>{}</pre>\n",
        esc(&serde_json::to_string_pretty(&report.workload).unwrap_or_default())
    );
    super::super::html::page("ldqa sweep", &body)
}

fn points_table(report: &SweepReport, points: &[SweepPoint]) -> String {
    let mut t = String::new();
    let along_working_set = report.axis.is_working_set();
    let (x_header, docs_header) = if along_working_set {
        ("documents", "")
    } else {
        (report.axis.flag.as_str(), "<th>documents</th>")
    };
    let _ = writeln!(
        t,
        "<table><tr><th>{}</th>{docs_header}<th>tokens</th><th>vLLM warmup TTFT (s)</th><th>vLLM query TTFT (s)</th><th>LMCache warmup TTFT (s)</th><th>LMCache query TTFT (s)</th><th>TTFT gain</th><th>round gain</th><th>query prompt tokens from</th></tr>",
        esc(x_header)
    );
    let ttfts = |a: Option<ArmPoint>| match a {
        Some(a) => format!(
            "<td>{:.3}</td><td>{:.3}</td>",
            a.warmup.mean_ttft_s, a.query.mean_ttft_s
        ),
        None => "<td>-</td><td>-</td>".to_string(),
    };
    let gain = |g: Option<f64>| g.map_or("-".to_string(), |g| format!("{g:.2}×"));
    for p in points {
        let _ = writeln!(
            t,
            "<tr><td>{}</td>{}<td>{}</td>{}{}<td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.x.to_string()),
            if along_working_set {
                String::new()
            } else {
                format!("<td>{}</td>", p.num_documents)
            },
            p.working_set_tokens,
            ttfts(p.vllm),
            ttfts(p.lmcache),
            gain(p.ttft_gain()),
            gain(p.round_gain()),
            esc(&super::token_sources(p))
        );
    }
    t.push_str("</table>\n");
    t
}
