//! `ldqa sweep`'s outputs: the table on the terminal, `sweep.csv` (one row per point) and
//! `sweep.json` (the description, the capacities, every point and the crossovers).

use std::path::Path;

use ldqa_metrics::{ArmPoint, Crossovers, SweepPoint};
use serde::Serialize;

use crate::ReportError;

/// What the engines can hold, in tokens and in documents of the swept length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Capacities {
    /// Prompt tokens per document (the document and its chat template).
    pub tokens_per_document: u64,
    /// vLLM's GPU prefix cache.
    pub gpu_kv_tokens: u64,
    /// LMCache's CPU tier.
    pub cpu_tier_tokens: u64,
}

impl Capacities {
    /// Whole documents the GPU cache holds.
    pub fn gpu_documents(&self) -> u64 {
        self.gpu_kv_tokens / self.tokens_per_document.max(1)
    }

    /// Whole documents the CPU tier holds.
    pub fn cpu_documents(&self) -> u64 {
        self.cpu_tier_tokens / self.tokens_per_document.max(1)
    }
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// `ldqa-sweep`.
    pub schema: &'static str,
    /// 1.
    pub schema_version: u32,
    /// What was swept on what, in words (the deployment and the step costs).
    pub description: String,
    /// The workload's fixed flags, as given.
    pub workload: serde_json::Value,
    /// What the engines hold.
    pub capacities: Capacities,
    /// Every point, by document count.
    pub points: Vec<SweepPoint>,
    /// Where LMCache pays off.
    pub crossovers: Crossovers,
}

/// The CSV header.
pub const SWEEP_CSV_COLUMNS: [&str; 21] = [
    "num_documents",
    "working_set_tokens",
    "vllm_warmup_mean_ttft_s",
    "vllm_warmup_p90_ttft_s",
    "vllm_warmup_round_time_s",
    "vllm_query_mean_ttft_s",
    "vllm_query_p90_ttft_s",
    "vllm_query_round_time_s",
    "vllm_query_gpu_hit_tokens",
    "vllm_query_computed_tokens",
    "lmcache_warmup_mean_ttft_s",
    "lmcache_warmup_p90_ttft_s",
    "lmcache_warmup_round_time_s",
    "lmcache_query_mean_ttft_s",
    "lmcache_query_p90_ttft_s",
    "lmcache_query_round_time_s",
    "lmcache_query_gpu_hit_tokens",
    "lmcache_query_cpu_hit_tokens",
    "lmcache_query_computed_tokens",
    "lmcache_over_vllm_query_ttft_gain",
    "lmcache_over_vllm_query_round_gain",
];

impl SweepReport {
    /// The JSON document.
    pub fn to_json(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// Writes `sweep.csv` to `path`, atomically.
    pub fn write_csv(&self, path: &Path) -> Result<(), ReportError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(SWEEP_CSV_COLUMNS)?;
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let count = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        for p in &self.points {
            let mut row = vec![
                p.num_documents.to_string(),
                p.working_set_tokens.to_string(),
            ];
            row.extend(arm_cells(p.vllm.as_ref()));
            let v = p.vllm.map(|a| a.query.prefix);
            row.push(count(v.map(|q| q.gpu_hit_tokens)));
            row.push(count(v.map(|q| q.computed_tokens)));
            row.extend(arm_cells(p.lmcache.as_ref()));
            let l = p.lmcache.map(|a| a.query.prefix);
            row.push(count(l.map(|q| q.gpu_hit_tokens)));
            row.push(count(l.map(|q| q.cpu_hit_tokens)));
            row.push(count(l.map(|q| q.computed_tokens)));
            row.push(opt(p.ttft_gain()));
            row.push(opt(p.round_gain()));
            w.write_record(&row)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| ReportError::Write(e.into_error()))?;
        crate::write_atomically(path, &bytes).map_err(|source| ReportError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// The table for a terminal, the capacities and the verdict.
    pub fn table(&self) -> String {
        let c = &self.capacities;
        let mut out = format!(
            "{}\nGPU prefix cache: {} tokens = {} documents of {} tokens; LMCache CPU tier: {} tokens = {} documents\n\n",
            self.description,
            c.gpu_kv_tokens,
            c.gpu_documents(),
            c.tokens_per_document,
            c.cpu_tier_tokens,
            c.cpu_documents()
        );
        out.push_str(&format!(
            "{:>6} {:>11} │ {:>21} │ {:>21} │ {:>8} {:>8} │ {}\n",
            "docs",
            "tokens",
            "vLLM TTFT warm/query",
            "LMCache warm/query",
            "TTFT ×",
            "round ×",
            "query prompt tokens from (LMCache's, else vLLM's)"
        ));
        let ttfts = |a: Option<ArmPoint>| match a {
            Some(a) => format!(
                "{:>9.3} s {:>7.3} s",
                a.warmup.mean_ttft_s, a.query.mean_ttft_s
            ),
            None => format!("{:>21}", "not measured"),
        };
        let gain = |g: Option<f64>| g.map_or(format!("{:>8}", "-"), |g| format!("{g:>7.2}×"));
        for p in &self.points {
            let marker = match p.num_documents as u64 {
                n if n == c.gpu_documents() => " ← GPU cache full",
                n if n == c.cpu_documents() => " ← CPU tier full",
                _ => "",
            };
            let q = p
                .lmcache
                .or(p.vllm)
                .map(|a| a.query.prefix)
                .unwrap_or_default();
            let total = (q.gpu_hit_tokens + q.cpu_hit_tokens + q.computed_tokens).max(1) as f64;
            let pct = |v: u64| v as f64 / total * 100.0;
            out.push_str(&format!(
                "{:>6} {:>11} │ {} │ {} │ {} {} │ GPU {:>3.0} % CPU {:>3.0} % computed {:>3.0} %{marker}\n",
                p.num_documents,
                p.working_set_tokens,
                ttfts(p.vllm),
                ttfts(p.lmcache),
                gain(p.ttft_gain()),
                gain(p.round_gain()),
                pct(q.gpu_hit_tokens),
                pct(q.cpu_hit_tokens),
                pct(q.computed_tokens),
            ));
        }
        out.push_str(&format!("\n{}\n", self.crossovers.verdict));
        out
    }
}

fn arm_cells(a: Option<&ArmPoint>) -> [String; 6] {
    let Some(a) = a else {
        return Default::default();
    };
    [
        a.warmup.mean_ttft_s.to_string(),
        a.warmup.p90_ttft_s.to_string(),
        a.warmup.round_time_s.to_string(),
        a.query.mean_ttft_s.to_string(),
        a.query.p90_ttft_s.to_string(),
        a.query.round_time_s.to_string(),
    ]
}

/// Draws query-round mean TTFT against the working set, both arms, with the GPU cache's
/// and the CPU tier's capacities marked, to `path` (PNG; SVG when it ends in `.svg`).
pub fn plot_sweep(report: &SweepReport, path: &Path) -> Result<(), ReportError> {
    use plotters::prelude::*;
    crate::plot::register_fonts();
    let err = |message: String| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    };
    let size = crate::PLOT_SIZE_PX;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw_sweep(&root, report).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_sweep(&root, report).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    }
}

/// One arm of a point.
type Arm = fn(&SweepPoint) -> Option<ArmPoint>;

fn draw_sweep<DB: plotters::prelude::DrawingBackend>(
    root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    report: &SweepReport,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let c = &report.capacities;
    let x_max = report
        .points
        .iter()
        .map(|p| p.num_documents as f64)
        .chain([c.gpu_documents() as f64, c.cpu_documents() as f64])
        .fold(1.0, f64::max)
        * 1.05;
    let y_max = report
        .points
        .iter()
        .flat_map(|p| [p.vllm, p.lmcache])
        .flatten()
        .map(|a| a.query.mean_ttft_s)
        .filter(|v| v.is_finite())
        .fold(1e-3, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Query-round mean TTFT against the working set",
            ("sans-serif", 26).into_font().style(FontStyle::Bold),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("Documents in the working set")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("Query mean TTFT (s)")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 19))
        .draw()
        .map_err(e)?;
    for (docs, label, color) in [
        (
            c.gpu_documents(),
            "GPU prefix cache full",
            RGBColor(120, 120, 120),
        ),
        (
            c.cpu_documents(),
            "LMCache CPU tier full",
            RGBColor(180, 180, 180),
        ),
    ] {
        let x = docs as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, y_max)],
                8,
                6,
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let arms: [(&str, RGBColor, Arm); 2] = [
        ("vLLM", RGBColor(255, 140, 0), |p| p.vllm),
        ("vLLM + LMCache", RGBColor(0, 0, 139), |p| p.lmcache),
    ];
    for (label, color, arm) in arms {
        let pts: Vec<(f64, f64)> = report
            .points
            .iter()
            .filter_map(|p| Some((p.num_documents as f64, arm(p)?.query.mean_ttft_s)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))
            .map_err(e)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
        chart
            .draw_series(pts.into_iter().map(|xy| Circle::new(xy, 4, color.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(e)?;
    Ok(())
}
