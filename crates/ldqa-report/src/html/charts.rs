//! The inline SVG plots of the HTML report: TTFT per request, TTFT CDFs, request
//! timelines. Hits and misses are the *planned* ones (a document's first send is a miss);
//! each point's tooltip says how many prompt tokens the server really had cached.

use ldqa_metrics::is_upstream_success;
use ldqa_model::{ns_to_s, RequestRecord, RoundRecord};

use crate::svg::{self, Chart};
use crate::timeline::{request_bars, Bar, BarKind};
use crate::RunResult;

/// Shared axes for the plots of several runs (A/B), so their scales match.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Scale {
    pub(super) ttft_max_s: f64,
    prompts: usize,
    round_end_s: f64,
}

impl Scale {
    pub(super) fn of(runs: &[&RunResult]) -> Scale {
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

/// Per-request TTFT of one round: x = position in the round, y = TTFT.
pub(super) fn ttft_per_request(round: &RoundRecord, scale: &Scale, label: &str) -> String {
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
                "prompt {} (document {}), {}{}: TTFT {:.3}s",
                r.prompt_id,
                r.document_id,
                planned(r),
                cached(r),
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
pub(super) fn ttft_cdf(series: &[(String, &RoundRecord)], title: &str, x_max_s: f64) -> String {
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
    (BarKind::PrefillHit, "prefill, planned hit", svg::BLUE),
    (BarKind::DecodeHit, "decode, planned hit", svg::SKY),
    (BarKind::PrefillMiss, "prefill, planned miss", svg::ORANGE),
    (BarKind::DecodeMiss, "decode, planned miss", svg::PINK),
    (BarKind::Failed, "failed", svg::RED),
];

/// The request timeline: one bar per request, queued (grey), prefill (blue hit / orange
/// miss), decode (sky / pink), failed (red).
pub(super) fn timeline(round: &RoundRecord, scale: &Scale, label: &str) -> String {
    let title = format!("{label}{} round: request timeline", round.kind.title());
    let max_id = scale.prompts.max(1) as f64;
    let mut c = Chart::new(
        &title,
        "time since round start (s)",
        (0.0, scale.round_end_s * 1.02),
        "prompt id",
        (-0.7, max_id - 0.3),
    );
    // Requests sent first end first: the lower right corner is where the bars are not.
    c.legend_low();
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
    let kind = planned(r);
    match bar.kind {
        BarKind::PrefillHit | BarKind::PrefillMiss => {
            format!("prompt {id} ({kind}{}): prefill {secs:.3}s", cached(r))
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

/// What the workload planned for `r`: a document's first send misses, repeats hit.
fn planned(r: &RequestRecord) -> &'static str {
    if r.is_miss {
        "planned miss"
    } else {
        "planned hit"
    }
}

/// `, 1920 tokens cached` when the server reported it (what really happened).
fn cached(r: &RequestRecord) -> String {
    r.usage
        .as_ref()
        .and_then(|u| u.cached_tokens)
        .map_or(String::new(), |c| format!(", {c} tokens cached"))
}
