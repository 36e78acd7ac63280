//! The richer plain-text summary printed after upstream's block: per round, requests by
//! outcome, TTFT/TPOT/ITL/latency statistics, tokens and throughput, the hit/miss split,
//! the server's own counters, then the gains.
//!
//! Colour (anstyle) only when asked; the caller decides from the TTY and `NO_COLOR`.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use ldqa_metrics::{Gains, RoundSummary, QUANTILE_METHOD};

use crate::facts::{facts, failure_kinds, stat_rows, STAT_COLUMNS};

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

/// The statistics table: 78 columns wide, so that it fits an 80-column terminal.
fn stats_table(out: &mut String, s: &RoundSummary) {
    let _ = write!(out, "  {:<22}{:>5} ", "", STAT_COLUMNS[0]);
    for head in &STAT_COLUMNS[1..] {
        let _ = write!(out, "{head:>8}");
    }
    out.push('\n');
    for row in stat_rows(s) {
        let label = row.label();
        let Some(cells) = row.cells() else {
            let _ = writeln!(out, "  {label:<22}{:>5} {:>8}", 0, "-");
            continue;
        };
        let _ = write!(out, "  {label:<22}{:>5} ", cells[0]);
        for v in &cells[1..] {
            let _ = write!(out, "{v:>8}");
        }
        out.push('\n');
    }
}

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
    out.push_str(&failure_kinds(s));
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
    let mut facts = facts(s).into_iter();
    // The round time first, then the table, then what the round moved.
    if let Some(f) = facts.next() {
        let _ = writeln!(out, "  {} {}", f.label, f.value);
    }
    stats_table(out, s);
    for f in facts {
        let _ = writeln!(out, "  {}: {}", f.label, f.value);
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

    /// The table fits an 80-column terminal (it was 85 wide).
    #[test]
    fn fits_80_columns() {
        let (w, q) = rounds();
        let out = human_summary(&[&w, &q], None, false);
        for line in out
            .lines()
            .filter(|l| l.starts_with("  TTFT") || l.starts_with("    "))
        {
            assert!(
                line.chars().count() <= 80,
                "{} wide: {line}",
                line.chars().count()
            );
        }
    }

    #[test]
    fn helpers() {
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
            out.contains("  TTFT from send (s)        0        -"),
            "{out}"
        );
        assert!(out.contains("the server reported no usage"));
    }
}
