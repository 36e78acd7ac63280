//! The lines LMCache's `long_doc_qa.py` prints, byte for byte, so that scripts that grep
//! them keep working: the result block, the gain lines and gate messages, and the
//! `--json-output` line.
//!
//! Sources: LMCache `benchmarks/long_doc_qa/long_doc_qa.py` at 0482cd9f (result block with
//! colours, gains, gates) and at 3129b019 (the "successful prompt count" lines, mean TTFT
//! over successful requests only, `--json-output`).

use std::fmt::Write as _;

use ldqa_metrics::{GainKind, Gains, GateFailure, RoundSummary};

use crate::pyfmt;

const CSI: &str = "\x1b[";
const RESET: &str = "\x1b[0m";

/// Upstream's colour codes (SGR parameters).
const HEADER: &str = "36;1";
const TTFT: &str = "32";
const TIME: &str = "33";
const COUNT: &str = "35";
const SUCCESS: &str = "34";

fn line(out: &mut String, color: bool, sgr: &str, text: &str) {
    if color {
        let _ = writeln!(out, "{CSI}{sgr}m{text}{RESET}");
    } else {
        let _ = writeln!(out, "{text}");
    }
}

/// The LMCache result block (header, then four lines per round), each line ending in `\n`.
///
/// The block starts with an empty line, as upstream's `print("\n=== BENCHMARK RESULTS ===")`.
/// A round with no successful request prints `nan` for its mean TTFT, as pandas would.
pub fn upstream_block(warmup: &RoundSummary, query: &RoundSummary, color: bool) -> String {
    let mut out = String::new();
    line(&mut out, color, HEADER, "\n=== BENCHMARK RESULTS ===");
    for (title, s) in [("Warmup", warmup), ("Query", query)] {
        let ttft = pyfmt::fixed(s.mean_ttft_s_or_nan(), 3);
        let time = pyfmt::fixed(s.round_time_s(), 3);
        line(
            &mut out,
            color,
            TTFT,
            &format!("{title} round mean TTFT: {ttft}s"),
        );
        line(
            &mut out,
            color,
            TIME,
            &format!("{title} round time: {time}s"),
        );
        line(
            &mut out,
            color,
            COUNT,
            &format!("{title} round prompt count: {}", s.prompt_count),
        );
        line(
            &mut out,
            color,
            SUCCESS,
            &format!(
                "{title} round successful prompt count: {}",
                s.successful_count
            ),
        );
    }
    out
}

fn gain_str(g: Option<f64>) -> String {
    pyfmt::fixed(g.unwrap_or(f64::NAN), 2)
}

/// Upstream's `Actual TTFT gain: 3.51×` / `Actual latency gain: 1.71×` lines, printed (as
/// upstream) only for the gains whose gate was asked for. Each line ends in `\n`.
pub fn gain_lines(
    gains: &Gains,
    expected_ttft_gain: Option<f64>,
    expected_latency_gain: Option<f64>,
    color: bool,
) -> String {
    let mut out = String::new();
    if expected_ttft_gain.is_some() {
        line(
            &mut out,
            color,
            SUCCESS,
            &format!("Actual TTFT gain: {}×", gain_str(gains.ttft_gain)),
        );
    }
    if expected_latency_gain.is_some() {
        line(
            &mut out,
            color,
            SUCCESS,
            &format!("Actual latency gain: {}×", gain_str(gains.latency_gain)),
        );
    }
    out
}

/// Upstream's gate message for one failed gate, e.g. `ERROR: TTFT gain 1.00× < expected 2.00×`
/// (no trailing newline). A gain that could not be measured reads
/// `ERROR: TTFT gain not measurable (no successful request in a round) < expected 2.00×`.
pub fn gate_message(f: &GateFailure) -> String {
    let (name, why) = match f.kind {
        GainKind::Ttft => ("TTFT", "no successful request in a round"),
        GainKind::Latency => ("latency", "an empty round"),
    };
    let actual = match f.actual {
        Some(a) => format!("{}×", pyfmt::fixed(a, 2)),
        None => format!("not measurable ({why})"),
    };
    format!(
        "ERROR: {name} gain {actual} < expected {}×",
        pyfmt::fixed(f.expected, 2)
    )
}

/// The gate messages for every failed gate, TTFT first (upstream stops at the first).
pub fn gate_messages(
    gains: &Gains,
    expected_ttft_gain: Option<f64>,
    expected_latency_gain: Option<f64>,
) -> Vec<String> {
    gains
        .check(expected_ttft_gain, expected_latency_gain)
        .iter()
        .map(gate_message)
        .collect()
}

/// Upstream's `--json-output` line (without a newline), with Python's `json.dumps` spacing:
/// `{"query_ttft_per_prompt": 0.753, "query_round_time_per_prompt": 0.48, "warmup_round_time_per_prompt": 0.49}`.
///
/// `query_ttft_per_prompt` is the query round's mean TTFT in seconds (`NaN` when nothing
/// succeeded, as `json.dumps` writes it); the others are round time / prompt count in
/// seconds (`NaN` for an empty round, where upstream would divide by zero).
pub fn json_line(warmup: &RoundSummary, query: &RoundSummary) -> String {
    let per_prompt = |s: &RoundSummary| {
        if s.prompt_count == 0 {
            f64::NAN
        } else {
            // Same order of operations as upstream: duration in seconds, then / len.
            s.round_time_s() / s.prompt_count as f64
        }
    };
    format!(
        "{{\"query_ttft_per_prompt\": {}, \"query_round_time_per_prompt\": {}, \"warmup_round_time_per_prompt\": {}}}",
        pyfmt::json_float(query.mean_ttft_s_or_nan()),
        pyfmt::json_float(per_prompt(query)),
        pyfmt::json_float(per_prompt(warmup)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{round, summary};
    use ldqa_model::RoundKind;

    #[test]
    fn block_matches_the_tutorial() {
        let w = summary(&round(
            RoundKind::Warmup,
            &[751_000_000; 51],
            24_915_000_000,
        ));
        let q = summary(&round(RoundKind::Query, &[753_000_000; 51], 24_628_000_000));
        let expected = "\n=== BENCHMARK RESULTS ===\n\
Warmup round mean TTFT: 0.751s\n\
Warmup round time: 24.915s\n\
Warmup round prompt count: 51\n\
Warmup round successful prompt count: 51\n\
Query round mean TTFT: 0.753s\n\
Query round time: 24.628s\n\
Query round prompt count: 51\n\
Query round successful prompt count: 51\n";
        assert_eq!(upstream_block(&w, &q, false), expected);
    }

    #[test]
    fn colours_and_nan() {
        let w = summary(&round(RoundKind::Warmup, &[], 1_000_000_000));
        let q = summary(&round(RoundKind::Query, &[500_000_000], 1_000_000_000));
        let out = upstream_block(&w, &q, true);
        let lines: Vec<&str> = out.split('\n').collect();
        assert_eq!(lines[0], "\x1b[36;1m");
        assert_eq!(lines[1], "=== BENCHMARK RESULTS ===\x1b[0m");
        assert_eq!(lines[2], "\x1b[32mWarmup round mean TTFT: nans\x1b[0m");
        assert_eq!(lines[3], "\x1b[33mWarmup round time: 1.000s\x1b[0m");
        assert_eq!(lines[4], "\x1b[35mWarmup round prompt count: 0\x1b[0m");
        assert_eq!(
            lines[5],
            "\x1b[34mWarmup round successful prompt count: 0\x1b[0m"
        );
        assert_eq!(lines[6], "\x1b[32mQuery round mean TTFT: 0.500s\x1b[0m");
    }

    #[test]
    fn gains_and_gates() {
        let g = Gains {
            ttft_gain: Some(3.5149),
            latency_gain: Some(1.0),
        };
        assert_eq!(
            gain_lines(&g, Some(2.0), Some(2.0), false),
            "Actual TTFT gain: 3.51×\nActual latency gain: 1.00×\n"
        );
        assert_eq!(gain_lines(&g, None, None, false), "");
        assert_eq!(
            gain_lines(&g, Some(2.0), None, true),
            "\x1b[34mActual TTFT gain: 3.51×\x1b[0m\n"
        );
        assert_eq!(
            gate_messages(&g, Some(2.0), Some(2.0)),
            vec!["ERROR: latency gain 1.00× < expected 2.00×"]
        );
        let none = Gains {
            ttft_gain: None,
            latency_gain: Some(f64::INFINITY),
        };
        assert_eq!(
            gain_lines(&none, Some(1.0), Some(1.0), false),
            "Actual TTFT gain: nan×\nActual latency gain: inf×\n"
        );
        assert_eq!(
            gate_messages(&none, Some(1.0), Some(1.0)),
            vec!["ERROR: TTFT gain not measurable (no successful request in a round) < expected 1.00×"]
        );
    }

    #[test]
    fn json_line_like_json_dumps() {
        let w = summary(&round(RoundKind::Warmup, &[1; 4], 2_000_000_000));
        let q = summary(&round(RoundKind::Query, &[250_000_000; 8], 2_000_000_000));
        assert_eq!(
            json_line(&w, &q),
            r#"{"query_ttft_per_prompt": 0.25, "query_round_time_per_prompt": 0.25, "warmup_round_time_per_prompt": 0.5}"#
        );
        let empty = summary(&round(RoundKind::Query, &[], 0));
        assert_eq!(
            json_line(&w, &empty),
            r#"{"query_ttft_per_prompt": NaN, "query_round_time_per_prompt": NaN, "warmup_round_time_per_prompt": 0.5}"#
        );
    }
}
