//! The per-request timeline, classified once for its two drawings: the PNG/SVG plot
//! ([`plot`](crate::plot), upstream's `--visualize` look) and the HTML report's inline SVG
//! ([`html`](crate::html)). Each drawing only chooses colours and labels per [`BarKind`].

use ldqa_metrics::is_upstream_success;
use ldqa_model::{ns_to_s, RequestRecord};

/// What a bar shows: hit or miss × prefill or decode, or a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarKind {
    /// Sent → first token of a planned hit (upstream's "Loading").
    PrefillHit,
    /// Sent → first token of a miss (upstream's "Compute").
    PrefillMiss,
    /// First token → end, after a hit.
    DecodeHit,
    /// First token → end, after a miss.
    DecodeMiss,
    /// Sent → end of a request that is not an upstream success.
    Failed,
}

/// One horizontal bar of the timeline, in seconds from the round start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bar {
    pub kind: BarKind,
    pub prompt_id: usize,
    pub from_s: f64,
    pub to_s: f64,
}

/// The bars of one request: prefill then decode for an upstream success (the same rule
/// as upstream's statistics), one failed bar from send to end otherwise.
pub(crate) fn request_bars(r: &RequestRecord) -> impl Iterator<Item = Bar> {
    let bar = |kind, from_s, to_s| Bar {
        kind,
        prompt_id: r.prompt_id,
        from_s,
        to_s,
    };
    let (sent, end) = (ns_to_s(r.sent_ns), ns_to_s(r.end_ns.max(r.sent_ns)));
    let bars = match r.first_token_ns.filter(|_| is_upstream_success(r)) {
        Some(first) => {
            let first = ns_to_s(first);
            let (prefill, decode) = if r.is_miss {
                (BarKind::PrefillMiss, BarKind::DecodeMiss)
            } else {
                (BarKind::PrefillHit, BarKind::DecodeHit)
            };
            [
                Some(bar(prefill, sent, first)),
                Some(bar(decode, first, end)),
            ]
        }
        None => [Some(bar(BarKind::Failed, sent, end)), None],
    };
    bars.into_iter().flatten()
}

/// The bars of every request, request by request.
pub(crate) fn round_bars(requests: &[RequestRecord]) -> impl Iterator<Item = Bar> + '_ {
    requests.iter().flat_map(request_bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rich_round;
    use ldqa_model::RoundKind;

    #[test]
    fn bars_split_prefill_and_decode() {
        let bars: Vec<Bar> = round_bars(&rich_round(RoundKind::Query).requests).collect();
        let count = |kind| bars.iter().filter(|b| b.kind == kind).count();
        assert_eq!(count(BarKind::PrefillHit), 4);
        assert_eq!(count(BarKind::DecodeHit), 4);
        assert_eq!(count(BarKind::PrefillMiss), 2);
        assert_eq!(count(BarKind::DecodeMiss), 2);
        assert_eq!(count(BarKind::Failed), 2);
        let first = |kind| *bars.iter().find(|b| b.kind == kind).unwrap();
        assert_eq!(
            (
                first(BarKind::PrefillHit).from_s,
                first(BarKind::PrefillHit).to_s
            ),
            (0.0, 0.06)
        );
        assert_eq!(
            (
                first(BarKind::DecodeHit).from_s,
                first(BarKind::DecodeHit).to_s
            ),
            (0.06, 0.261)
        );
    }

    #[test]
    fn a_request_without_content_is_one_failed_bar() {
        let mut r = RequestRecord::new(3, 3, false);
        r.sent_ns = 1_000_000_000;
        r.end_ns = 2_500_000_000;
        let bars: Vec<Bar> = request_bars(&r).collect();
        assert_eq!(
            bars,
            [Bar {
                kind: BarKind::Failed,
                prompt_id: 3,
                from_s: 1.0,
                to_s: 2.5
            }]
        );
    }
}
