//! `ldqa sweep`'s outputs: the table on the terminal, `sweep.csv` (one row per point),
//! `sweep.json` (the description, every point and the crossovers of every curve), the plot
//! ([`plot`]) and the HTML page ([`html`]).
//!
//! A sweep runs along one axis (the plot's x, usually the working set); a second axis, when
//! swept as a grid, gives one curve per value ([`Curve`]).

mod html;
mod plot;

use std::path::Path;

use ldqa_metrics::{ArmPoint, AxisValue, Crossovers, SweepPoint, SweptAxis};
use serde::{Deserialize, Serialize};

use crate::ReportError;
pub use html::sweep_html;
pub use plot::{plot_sweep, SweepMetric};

/// The schema name of `sweep.json`.
pub const SWEEP_SCHEMA: &str = "ldqa-sweep";
/// Its version: 2 added the axes, per-point capacities and one verdict per curve.
pub const SWEEP_SCHEMA_VERSION: u32 = 2;

/// A whole sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    /// [`SWEEP_SCHEMA`].
    pub schema: String,
    /// [`SWEEP_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What was swept on what, in words (the deployment and the step costs).
    pub description: String,
    /// The workload's fixed flags, as given.
    pub workload: serde_json::Value,
    /// The axis every curve runs along (the plot's x).
    pub axis: SweptAxis,
    /// The second axis of a grid: one curve per value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_axis: Option<SweptAxis>,
    /// Every point, curve after curve, each in the order of the axis's values.
    pub points: Vec<SweepPoint>,
    /// Where LMCache pays off, one entry per curve.
    pub crossovers: Vec<CurveCrossovers>,
}

/// The crossovers of one curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveCrossovers {
    /// The second axis's value for this curve (none without a grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<AxisValue>,
    /// What was found along it.
    #[serde(flatten)]
    pub crossovers: Crossovers,
}

/// The points of one value of the second axis (all points without one).
pub struct Curve<'a> {
    /// The second axis's value.
    pub series: Option<&'a AxisValue>,
    /// Its points, in the order of the axis's values.
    pub points: Vec<SweepPoint>,
}

impl SweepReport {
    /// A report of `points` along `axis` (and `series_axis`), with each curve's crossovers.
    pub fn new(
        description: String,
        workload: serde_json::Value,
        axis: SweptAxis,
        series_axis: Option<SweptAxis>,
        points: Vec<SweepPoint>,
    ) -> SweepReport {
        let mut report = SweepReport {
            schema: SWEEP_SCHEMA.into(),
            schema_version: SWEEP_SCHEMA_VERSION,
            description,
            workload,
            axis,
            series_axis,
            points,
            crossovers: Vec::new(),
        };
        report.crossovers = report
            .curves()
            .iter()
            .map(|c| CurveCrossovers {
                series: c.series.cloned(),
                crossovers: Crossovers::find(&c.points, &report.axis),
            })
            .collect();
        report
    }

    /// The curves, in the order their first points appear.
    pub fn curves(&self) -> Vec<Curve<'_>> {
        let mut curves: Vec<Curve<'_>> = Vec::new();
        for p in &self.points {
            match curves.iter_mut().find(|c| c.series == p.series.as_ref()) {
                Some(c) => c.points.push(p.clone()),
                None => curves.push(Curve {
                    series: p.series.as_ref(),
                    points: vec![p.clone()],
                }),
            }
        }
        curves
    }

    /// The JSON document.
    pub fn to_json(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// A curve's name: "--gpu h200", or "" without a grid.
    pub fn curve_name(&self, series: Option<&AxisValue>) -> String {
        match (&self.series_axis, series) {
            (Some(axis), Some(v)) => format!("{} {v}", axis.flag),
            _ => String::new(),
        }
    }

    /// Writes `sweep.csv` to `path`, atomically.
    pub fn write_csv(&self, path: &Path) -> Result<(), ReportError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let axis_columns: Vec<String> = self
            .axes_besides_the_working_set()
            .iter()
            .map(|a| column_name(a))
            .collect();
        w.write_record(
            axis_columns
                .iter()
                .map(String::as_str)
                .chain(SWEEP_CSV_COLUMNS),
        )?;
        for p in &self.points {
            w.write_record(self.csv_row(p))?;
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

    /// The swept axes other than `--num-documents` (which has its own column), x first.
    fn axes_besides_the_working_set(&self) -> Vec<&SweptAxis> {
        [Some(&self.axis), self.series_axis.as_ref()]
            .into_iter()
            .flatten()
            .filter(|a| !a.is_working_set())
            .collect()
    }

    fn csv_row(&self, p: &SweepPoint) -> Vec<String> {
        let mut row: Vec<String> = [(&self.axis, Some(&p.x))]
            .into_iter()
            .chain(self.series_axis.iter().map(|a| (a, p.series.as_ref())))
            .filter(|(a, _)| !a.is_working_set())
            .map(|(_, v)| v.map_or(String::new(), ToString::to_string))
            .collect();
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let count = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        row.push(p.num_documents.to_string());
        row.push(p.working_set_tokens.to_string());
        row.push(p.capacities.gpu_kv_tokens.to_string());
        row.push(p.capacities.cpu_tier_tokens.to_string());
        row.extend(arm_cells(p.vllm.as_ref()));
        let v = p.vllm.map(|a| a.query.prefix);
        row.push(count(v.map(|q| q.gpu_hit_tokens)));
        row.push(count(v.map(|q| q.computed_tokens)));
        row.extend(arm_cells(p.lmcache.as_ref()));
        let l = p.lmcache.map(|a| a.query.prefix);
        row.push(count(l.map(|q| q.gpu_hit_tokens)));
        row.push(count(l.map(|q| q.cpu_hit_tokens)));
        row.push(count(l.map(|q| q.computed_tokens)));
        row.push(count(p.lmcache.map(|a| a.query.cached_tier_unknown_tokens)));
        row.push(opt(p.ttft_gain()));
        row.push(opt(p.round_gain()));
        row
    }

    /// The table for a terminal: per curve, its capacities, one row per point, the verdict.
    pub fn table(&self) -> String {
        let mut out = format!("{}\n", self.description);
        for (curve, verdict) in self.curves().iter().zip(&self.crossovers) {
            let name = self.curve_name(curve.series);
            if !name.is_empty() {
                out.push_str(&format!("\n── {name} ──\n"));
            }
            out.push_str(&self.curve_table(curve));
            out.push_str(&format!("\n{}\n", verdict.crossovers.verdict));
        }
        out
    }

    fn curve_table(&self, curve: &Curve<'_>) -> String {
        let mut out = String::new();
        let along_working_set = self.axis.is_working_set();
        if let (true, Some(c)) = (
            along_working_set,
            curve.points.first().map(|p| p.capacities),
        ) {
            let each = match c.instances {
                1 => String::new(),
                n => format!("Each of {n} instances: "),
            };
            out.push_str(&format!(
                "{each}GPU prefix cache: {} tokens = {} documents of {} tokens; LMCache CPU tier: {} tokens = {} documents\n",
                c.gpu_kv_tokens, c.gpu_documents(), c.tokens_per_document, c.cpu_tier_tokens, c.cpu_documents()
            ));
        }
        let x_header = if along_working_set {
            "docs".to_string()
        } else {
            self.axis.flag.trim_start_matches('-').to_string()
        };
        let width = curve
            .points
            .iter()
            .map(|p| p.x.to_string().chars().count())
            .chain([x_header.chars().count(), 6])
            .max()
            .unwrap_or(6);
        out.push_str(&format!(
            "\n{x_header:>width$} {:>11} │ {:>21} │ {:>21} │ {:>8} {:>8} │ {}\n",
            "tokens",
            "vLLM TTFT warm/query",
            "LMCache warm/query",
            "TTFT ×",
            "round ×",
            "query prompt tokens from (LMCache's, else vLLM's)"
        ));
        for p in &curve.points {
            out.push_str(&format!(
                "{:>width$} {}\n",
                p.x.to_string(),
                row_cells(p, along_working_set)
            ));
        }
        out
    }
}

/// The cells of a point's row after its x.
fn row_cells(p: &SweepPoint, along_working_set: bool) -> String {
    let c = &p.capacities;
    let n = p.num_documents as u64;
    let marker = if !along_working_set || c.instances > 1 {
        ""
    } else if n == c.gpu_documents() {
        " ← GPU cache full"
    } else if n == c.cpu_documents() {
        " ← CPU tier full"
    } else {
        ""
    };
    let ttfts = |a: Option<ArmPoint>| match a {
        Some(a) => format!(
            "{:>9.3} s {:>7.3} s",
            a.warmup.mean_ttft_s, a.query.mean_ttft_s
        ),
        None => format!("{:>21}", "not measured"),
    };
    let gain = |g: Option<f64>| g.map_or(format!("{:>8}", "-"), |g| format!("{g:>7.2}×"));
    format!(
        "{:>11} │ {} │ {} │ {} {} │ {}{marker}",
        p.working_set_tokens,
        ttfts(p.vllm),
        ttfts(p.lmcache),
        gain(p.ttft_gain()),
        gain(p.round_gain()),
        token_sources(p),
    ) + &busiest(p)
}

/// On several instances: how uneven the query round's spread was (LMCache's arm, else
/// vLLM's), the busiest instance's requests over the mean, and any requests shed.
fn busiest(p: &SweepPoint) -> String {
    let arm = match p.lmcache {
        Some(_) => "lmcache",
        None => "vllm",
    };
    let query = || {
        p.instance_shares
            .iter()
            .filter(move |s| s.arm == arm && s.round == "query")
    };
    let Some(x) = ldqa_metrics::load_imbalance(query()) else {
        return String::new();
    };
    let shed: u64 = query().map(|s| s.shed).sum();
    let shed = if shed > 0 {
        format!(", {shed} shed")
    } else {
        String::new()
    };
    format!(" │ busiest {x:.2}×{shed}")
}

/// Where the query round's prompt tokens came from (LMCache's arm, else vLLM's), in
/// percent: "GPU 3 % CPU 93 % computed 4 %", or "cached 96 % computed 4 %" when a server did
/// not say from which tier.
pub(crate) fn token_sources(p: &SweepPoint) -> String {
    let Some(q) = p.lmcache.or(p.vllm).map(|a| a.query) else {
        return String::new();
    };
    let total = q.prompt_tokens().max(1) as f64;
    let pct = |v: u64| v as f64 / total * 100.0;
    let s = &q.prefix;
    if q.cached_tier_unknown_tokens > 0 {
        return format!(
            "cached {:>3.0} % (GPU or CPU) computed {:>3.0} %",
            pct(q.cached_tokens()),
            pct(s.computed_tokens)
        );
    }
    format!(
        "GPU {:>3.0} % CPU {:>3.0} % computed {:>3.0} %",
        pct(s.gpu_hit_tokens),
        pct(s.cpu_hit_tokens),
        pct(s.computed_tokens)
    )
}

/// A CSV column for `axis`: its flag in snake case (`--gpu` → `gpu`).
fn column_name(axis: &SweptAxis) -> String {
    axis.flag.trim_start_matches('-').replace('-', "_")
}

/// The CSV columns every row has, after one per swept axis besides the working set.
pub const SWEEP_CSV_COLUMNS: [&str; 24] = [
    "num_documents",
    "working_set_tokens",
    "gpu_kv_tokens",
    "cpu_tier_tokens",
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
    "lmcache_query_cached_tier_unknown_tokens",
    "lmcache_over_vllm_query_ttft_gain",
    "lmcache_over_vllm_query_round_gain",
];

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
