//! Two results side by side ([`Comparison`]), and the A/B result file ([`AbResult`]) that
//! `ldqa ab` writes: the baseline's and LMCache's runs, the comparison, the verdict.
//!
//! Gains read "B over A": for a time, `A / B` (above 1 when B is faster).

use std::fmt::Write as _;
use std::path::Path;

use ldqa_metrics::{Gains, MeanInterval, RoundSummary};
use ldqa_model::RoundKind;
use serde::{Deserialize, Serialize};

use crate::versioned::from_versioned_json;
use crate::{pyfmt, ReportError, RunResult};

/// The schema version of [`AbResult`].
pub const AB_SCHEMA_VERSION: u32 = 1;

/// What a row measures, for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowUnit {
    /// Seconds; smaller is better; the gain is `a / b`.
    Seconds,
    /// A count (failed requests); no gain.
    Count,
}

/// One line of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// What is compared, e.g. `query mean TTFT`.
    pub metric: String,
    /// Whether the values are seconds or a count.
    pub unit: RowUnit,
    /// Value of A (seconds or count); `None` when A did not measure it.
    pub a: Option<f64>,
    /// Value of B.
    pub b: Option<f64>,
    /// `a / b` for times (B over A); `None` for counts or when not measurable.
    pub gain: Option<f64>,
    /// 95 % interval of the gain over repeats, when there were at least two.
    pub gain_ci95: Option<MeanInterval>,
}

/// Two runs side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Name of the first run (A), e.g. `baseline`.
    pub label_a: String,
    /// Name of the second run (B), e.g. `lmcache`.
    pub label_b: String,
    /// One row per compared metric.
    pub rows: Vec<ComparisonRow>,
}

fn summary(r: &RunResult, kind: RoundKind) -> Option<&RoundSummary> {
    r.round(kind).map(|x| &x.summary)
}

/// The metrics compared, in order: name, and how to read it from a result (seconds or count).
type Metric = (&'static str, RowUnit, fn(&RunResult) -> Option<f64>);

const METRICS: [Metric; 8] = [
    ("warmup mean TTFT", RowUnit::Seconds, |r| {
        summary(r, RoundKind::Warmup)?
            .ttft
            .as_ref()
            .map(|s| s.mean_s())
    }),
    ("warmup p90 TTFT", RowUnit::Seconds, |r| {
        summary(r, RoundKind::Warmup)?
            .ttft
            .as_ref()
            .map(|s| s.p90_s())
    }),
    ("query mean TTFT", RowUnit::Seconds, |r| {
        summary(r, RoundKind::Query)?
            .ttft
            .as_ref()
            .map(|s| s.mean_s())
    }),
    ("query p90 TTFT", RowUnit::Seconds, |r| {
        summary(r, RoundKind::Query)?
            .ttft
            .as_ref()
            .map(|s| s.p90_s())
    }),
    ("warmup round time", RowUnit::Seconds, |r| {
        Some(summary(r, RoundKind::Warmup)?.round_time_s())
    }),
    ("query round time", RowUnit::Seconds, |r| {
        Some(summary(r, RoundKind::Query)?.round_time_s())
    }),
    ("warmup failed requests", RowUnit::Count, |r| {
        Some(summary(r, RoundKind::Warmup)?.failed_count as f64)
    }),
    ("query failed requests", RowUnit::Count, |r| {
        Some(summary(r, RoundKind::Query)?.failed_count as f64)
    }),
];

fn gain_of(unit: RowUnit, a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (unit, a, b) {
        (RowUnit::Seconds, Some(a), Some(b)) if b > 0.0 => Some(a / b),
        (RowUnit::Seconds, Some(a), Some(_)) if a > 0.0 => Some(f64::INFINITY),
        _ => None,
    }
}

impl Comparison {
    /// Compares two runs (single measurements).
    pub fn between(a: &RunResult, b: &RunResult, label_a: &str, label_b: &str) -> Comparison {
        Self::over_repeats(&[a], &[b], label_a, label_b)
    }

    /// Compares repeated runs: values are means over repeats; gains carry a 95 % interval
    /// (Student t over the per-repeat gains, pairing A's i-th run with B's i-th) when both
    /// sides have at least two repeats.
    pub fn over_repeats(
        a: &[&RunResult],
        b: &[&RunResult],
        label_a: &str,
        label_b: &str,
    ) -> Comparison {
        let mean = |runs: &[&RunResult], f: fn(&RunResult) -> Option<f64>| {
            let v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let rows = METRICS
            .iter()
            .map(|&(metric, unit, f)| {
                let (va, vb) = (mean(a, f), mean(b, f));
                let per_repeat: Vec<f64> = a
                    .iter()
                    .zip(b)
                    .filter_map(|(x, y)| gain_of(unit, f(x), f(y)))
                    .collect();
                ComparisonRow {
                    metric: metric.to_string(),
                    unit,
                    a: va,
                    b: vb,
                    gain: gain_of(unit, va, vb),
                    gain_ci95: ldqa_metrics::mean_ci95(&per_repeat),
                }
            })
            .collect();
        Comparison {
            label_a: label_a.to_string(),
            label_b: label_b.to_string(),
            rows,
        }
    }

    /// The row named `metric`.
    pub fn row(&self, metric: &str) -> Option<&ComparisonRow> {
        self.rows.iter().find(|r| r.metric == metric)
    }

    fn cells(&self) -> Vec<[String; 4]> {
        self.rows
            .iter()
            .map(|r| {
                // One unit per row, so that the two sides read alike: ms when both are
                // under a second (finding 16).
                let largest = r.a.unwrap_or(0.0).max(r.b.unwrap_or(0.0));
                let v = |x: Option<f64>| match (x, r.unit) {
                    (None, _) => "-".to_string(),
                    (Some(x), RowUnit::Seconds) if largest < 1.0 => format!("{:.1} ms", x * 1e3),
                    (Some(x), RowUnit::Seconds) => format!("{x:.3} s"),
                    (Some(x), RowUnit::Count) => format!("{x:.0}"),
                };
                let gain = match (r.gain, &r.gain_ci95) {
                    (None, _) => "-".to_string(),
                    (Some(g), None) => gain_str(g),
                    (Some(g), Some(ci)) => format!(
                        "{} (95% CI {}–{}, n={})",
                        gain_str(g),
                        pyfmt::fixed(ci.low, 2),
                        pyfmt::fixed(ci.high, 2),
                        ci.n
                    ),
                };
                [r.metric.clone(), v(r.a), v(r.b), gain]
            })
            .collect()
    }

    fn header(&self) -> [String; 4] {
        [
            "metric".to_string(),
            self.label_a.clone(),
            self.label_b.clone(),
            format!("gain ({} over {})", self.label_b, self.label_a),
        ]
    }

    /// A plain-text table with aligned columns.
    pub fn to_text(&self) -> String {
        let mut rows = vec![self.header()];
        rows.extend(self.cells());
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let w = [width(0), width(1), width(2)];
        let mut out = String::new();
        for (n, r) in rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<w0$}  {:>w1$}  {:>w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            );
            if n == 0 {
                let total = w[0] + w[1] + w[2] + 6 + r[3].chars().count();
                let _ = writeln!(out, "{}", "-".repeat(total));
            }
        }
        out
    }

    /// A GitHub-flavoured markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let h = self.header();
        let _ = writeln!(out, "| {} | {} | {} | {} |", h[0], h[1], h[2], h[3]);
        out.push_str("|---|---:|---:|---:|\n");
        for c in self.cells() {
            let _ = writeln!(out, "| {} | {} | {} | {} |", c[0], c[1], c[2], c[3]);
        }
        out
    }
}

/// `2.50×`, `inf×`.
pub fn gain_str(g: f64) -> String {
    if g.is_infinite() {
        "inf×".to_string()
    } else {
        format!("{}×", pyfmt::fixed(g, 2))
    }
}

/// What happened to one engine in an A/B run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineOutcome {
    /// `baseline` or `lmcache`.
    pub engine: String,
    /// The command that started the server (`None` when an external URL was measured).
    pub command: Option<String>,
    /// Where it was reached, e.g. `http://127.0.0.1:8000/v1`.
    pub url: Option<String>,
    /// One result per finished repeat, in order.
    pub runs: Vec<RunResult>,
    /// What went wrong, when it did (server died, never ready, …); `None` when all repeats finished.
    pub error: Option<String>,
}

/// The file `ldqa ab` writes (`ab_result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbResult {
    /// Always [`AB_SCHEMA_VERSION`].
    pub ab_schema_version: u32,
    /// The resolved configuration of the A/B run.
    pub config: serde_json::Value,
    /// The baseline engine's runs (A).
    pub baseline: EngineOutcome,
    /// The LMCache engine's runs (B).
    pub lmcache: EngineOutcome,
    /// Baseline (A) vs LMCache (B), when both finished at least one repeat.
    pub comparison: Option<Comparison>,
    /// LMCache's query round over the baseline's query round (the gates' input).
    pub gains: Option<Gains>,
    /// Whether the documents' KV cache was larger than the GPU cache (`None`: unknown).
    pub working_set_exceeds_gpu_cache: Option<bool>,
    /// The verdict, in words.
    pub verdict: String,
}

impl AbResult {
    /// Parses an A/B result, checking `ab_schema_version`.
    pub fn from_json_str(text: &str) -> Result<AbResult, ReportError> {
        from_versioned_json(text, "ab_schema_version", AB_SCHEMA_VERSION)
    }

    /// Writes pretty JSON with a final newline.
    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        crate::write_atomically(path, text.as_bytes())
            .map_err(|e| ReportError::io("write", path, e))
    }
}

/// A saved result of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyResult {
    /// `ldqa run --save-result` output (`schema_version`).
    Run(Box<RunResult>),
    /// `ldqa ab`'s `ab_result.json` (`ab_schema_version`).
    Ab(Box<AbResult>),
}

/// Reads `ldqa run --save-result` output or `ab_result.json`, telling them apart by their
/// version key.
pub fn read_any(path: &Path) -> Result<AnyResult, ReportError> {
    let text = crate::versioned::read_result_text(path)?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    if value.get("ab_schema_version").is_some() {
        Ok(AnyResult::Ab(Box::new(AbResult::from_json_str(&text)?)))
    } else {
        Ok(AnyResult::Run(Box::new(RunResult::from_json_str(&text)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::round;
    use crate::{Environment, ToolInfo};

    const MS: u64 = 1_000_000;

    pub(crate) fn result(warmup_ms: &[u64], query_ms: &[u64]) -> RunResult {
        let ns = |v: &[u64]| v.iter().map(|x| x * MS).collect::<Vec<_>>();
        let w = round(RoundKind::Warmup, &ns(warmup_ms), 4000 * MS);
        let q = round(RoundKind::Query, &ns(query_ms), 2000 * MS);
        let env = Environment {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpus: 2,
            hostname: None,
            target_url: None,
            model: Some("m".into()),
        };
        RunResult::new(
            ToolInfo::new("ldqa", "0"),
            serde_json::json!({}),
            env,
            &[w, q],
        )
    }

    #[test]
    fn gains_are_b_over_a() {
        let a = result(&[1000, 1000], &[800, 1200]);
        let b = result(&[1100, 1100], &[100, 300]);
        let c = Comparison::between(&a, &b, "baseline", "lmcache");
        let q = c.row("query mean TTFT").unwrap();
        assert_eq!(q.a, Some(1.0));
        assert_eq!(q.b, Some(0.2));
        assert!((q.gain.unwrap() - 5.0).abs() < 1e-9);
        assert!(q.gain_ci95.is_none());
        assert_eq!(c.row("query failed requests").unwrap().gain, None);
        insta::assert_snapshot!("compare_text", c.to_text());
        insta::assert_snapshot!("compare_markdown", c.to_markdown());
    }

    /// Finding 16: a row whose times are all under a second reads in ms.
    #[test]
    fn sub_second_rows_are_in_milliseconds() {
        let a = result(&[1000, 1000], &[80, 90]);
        let b = result(&[1100, 1100], &[40, 50]);
        let text = Comparison::between(&a, &b, "baseline", "lmcache").to_text();
        let line = |m: &str| text.lines().find(|l| l.starts_with(m)).unwrap().to_string();
        assert!(
            line("query mean TTFT").contains("85.0 ms  45.0 ms"),
            "{text}"
        );
        assert!(
            line("warmup mean TTFT").contains("1.000 s  1.100 s"),
            "{text}"
        );
    }

    #[test]
    fn repeats_give_an_interval() {
        let a = [result(&[1000], &[1000]), result(&[1000], &[1000])];
        let b = [result(&[1000], &[200]), result(&[1000], &[250])];
        let ar: Vec<&RunResult> = a.iter().collect();
        let br: Vec<&RunResult> = b.iter().collect();
        let c = Comparison::over_repeats(&ar, &br, "A", "B");
        let ci = c.row("query mean TTFT").unwrap().gain_ci95.unwrap();
        assert_eq!(ci.n, 2);
        assert!((ci.mean - 4.5).abs() < 1e-9);
        assert!(ci.low < 4.0 && ci.high > 5.0);
        assert!(c.to_text().contains("95% CI"));
    }

    #[test]
    fn ab_result_round_trips_and_is_told_apart() {
        let a = result(&[1000], &[1000]);
        let ab = AbResult {
            ab_schema_version: AB_SCHEMA_VERSION,
            config: serde_json::json!({"x": 1}),
            baseline: EngineOutcome {
                engine: "baseline".into(),
                command: Some("vllm serve m".into()),
                url: None,
                runs: vec![a.clone()],
                error: None,
            },
            lmcache: EngineOutcome {
                engine: "lmcache".into(),
                command: None,
                url: None,
                runs: vec![],
                error: Some("server exited".into()),
            },
            comparison: None,
            gains: None,
            working_set_exceeds_gpu_cache: Some(true),
            verdict: "incomplete".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ab.json");
        ab.write(&p).unwrap();
        // (f64 seconds do not always survive JSON bit for bit: compare what matters.)
        let AnyResult::Ab(back) = read_any(&p).unwrap() else {
            panic!("not read as an A/B result")
        };
        assert_eq!(back.verdict, ab.verdict);
        assert_eq!(back.lmcache, ab.lmcache);
        assert_eq!(back.baseline.runs.len(), 1);
        let p2 = dir.path().join("run.json");
        crate::write_json(&p2, &a).unwrap();
        assert!(matches!(read_any(&p2).unwrap(), AnyResult::Run(_)));
        std::fs::write(&p2, "{\"ab_schema_version\": 9}").unwrap();
        assert!(matches!(
            read_any(&p2),
            Err(ReportError::UnsupportedSchema { found, .. }) if found == "9"
        ));
    }
}
