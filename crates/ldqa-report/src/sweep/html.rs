//! The sweep as one self-contained HTML page: the description, each curve's verdict, the
//! plot (inline SVG, the same drawing as `sweep.png`) and each curve's table.

use std::fmt::Write as _;

use ldqa_metrics::{ArmPoint, SweepPoint};

use super::{SweepMetric, SweepReport};
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
    body.push_str("<h2>Plots</h2>\n<div>\n");
    for metric in SweepMetric::ALL {
        match super::plot::sweep_svg(report, metric) {
            Ok(svg) => body.push_str(&svg.replacen("<svg ", "<svg class=\"plot\" ", 1)),
            Err(e) => {
                let _ = write!(body, "<p class=\"problem\">A plot failed: {}</p>", esc(&e));
            }
        }
    }
    body.push_str("</div>\n");
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
            let each = match c.instances {
                1 => String::new(),
                n => format!("Each of {n} instances: "),
            };
            let _ = writeln!(
                body,
                "<p class=\"note\">{each}GPU prefix cache: {} tokens = {} documents of {} tokens; LMCache CPU tier: {} tokens = {} documents.</p>",
                c.gpu_kv_tokens, c.gpu_documents(), c.tokens_per_document, c.cpu_tier_tokens, c.cpu_documents()
            );
        }
        body.push_str(&points_table(report, &curve.points));
        body.push_str(&instances_table(&curve.points));
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
        (
            report.axis.flag.as_str(),
            "<th rowspan=\"2\">documents</th>",
        )
    };
    let arm_headers = "<th>warmup TTFT mean / p90 (s)</th><th>query TTFT mean / p90 (s)</th><th>warmup / query round (s)</th><th>query over warmup TTFT</th>";
    let _ = writeln!(
        t,
        "<div class=\"scroll\"><table class=\"sweep\"><tr><th rowspan=\"2\">{}</th>{docs_header}<th rowspan=\"2\">tokens</th><th colspan=\"4\">vLLM</th><th colspan=\"4\">vLLM + LMCache</th><th rowspan=\"2\">LMCache over vLLM, query TTFT</th><th rowspan=\"2\">… query round</th><th rowspan=\"2\">query prompt tokens from</th></tr>\n<tr>{arm_headers}{arm_headers}</tr>",
        esc(x_header)
    );
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
            arm_cells(p.vllm),
            arm_cells(p.lmcache),
            gain(p.ttft_gain()),
            gain(p.round_gain()),
            esc(&super::token_sources(p))
        );
    }
    t.push_str("</table></div>\n");
    t
}

/// On several instances, each one's share of every round at every point, as the client
/// saw it (nothing on one).
fn instances_table(points: &[SweepPoint]) -> String {
    if points.iter().all(|p| p.instance_shares.is_empty()) {
        return String::new();
    }
    let mut t = String::from(
        "<details><summary>Per instance</summary><div class=\"scroll\"><table class=\"sweep\">\
         <tr><th>point</th><th>engine</th><th>round</th><th>instance</th><th>requests</th>\
         <th>failed (shed)</th><th>TTFT mean (s)</th><th>cached prompt tokens</th></tr>\n",
    );
    for p in points {
        for s in &p.instance_shares {
            let cached = s.cached_tokens as f64 / s.prompt_tokens.max(1) as f64 * 100.0;
            let _ = writeln!(
                t,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{:.3}</td><td>{cached:.0} %</td></tr>",
                esc(&p.x.to_string()),
                esc(&s.arm),
                esc(&s.round),
                esc(&s.instance),
                s.requests,
                s.failed,
                s.shed,
                s.mean_ttft_s
            );
        }
    }
    t.push_str("</table></div></details>\n");
    t
}

/// One arm's four cells; dashes when it was not measured.
fn arm_cells(arm: Option<ArmPoint>) -> String {
    let Some(a) = arm else {
        return "<td>-</td>".repeat(4);
    };
    format!(
        "<td>{:.3} / {:.3}</td><td>{:.3} / {:.3}</td><td>{:.2} / {:.2}</td><td>{:.2}×</td>",
        a.warmup.mean_ttft_s,
        a.warmup.p90_ttft_s,
        a.query.mean_ttft_s,
        a.query.p90_ttft_s,
        a.warmup.round_time_s,
        a.query.round_time_s,
        a.query_gain()
    )
}
