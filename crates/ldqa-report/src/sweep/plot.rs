//! The sweep's pictures: query-round mean TTFT (and round time) along the swept axis, vLLM
//! and vLLM + LMCache,
//! one pair of lines per curve, with the GPU cache's and the CPU tier's capacities marked
//! when the axis is the working set. A named axis (GPUs, models) is drawn at even steps.

use std::path::Path;

use ldqa_metrics::{ArmPoint, AxisValue, SweepPoint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::SweepReport;
use crate::ReportError;

const VLLM: RGBColor = RGBColor(255, 140, 0);
const LMCACHE: RGBColor = RGBColor(0, 0, 139);
/// One colour per curve of a grid (matplotlib's tab10, first six).
const CURVES: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// What a sweep plot shows on its y axis, for both arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepMetric {
    /// The query round's mean time to first token.
    QueryTtft,
    /// The query round's duration.
    QueryRoundTime,
}

impl SweepMetric {
    /// Both, in the order the page shows them.
    pub const ALL: [SweepMetric; 2] = [SweepMetric::QueryTtft, SweepMetric::QueryRoundTime];

    fn value(self, arm: &ArmPoint) -> f64 {
        match self {
            SweepMetric::QueryTtft => arm.query.mean_ttft_s,
            SweepMetric::QueryRoundTime => arm.query.round_time_s,
        }
    }

    fn title(self) -> &'static str {
        match self {
            SweepMetric::QueryTtft => "Query-round mean TTFT",
            SweepMetric::QueryRoundTime => "Query round time",
        }
    }

    fn y_desc(self) -> &'static str {
        match self {
            SweepMetric::QueryTtft => "Query mean TTFT (s)",
            SweepMetric::QueryRoundTime => "Query round time (s)",
        }
    }

    /// The PNG's file name: `sweep.png` for TTFT, `sweep-round-time.png`.
    pub fn file_name(self) -> &'static str {
        match self {
            SweepMetric::QueryTtft => "sweep.png",
            SweepMetric::QueryRoundTime => "sweep-round-time.png",
        }
    }
}

/// Draws `metric` along the sweep to `path` (PNG; SVG when it ends in `.svg`).
pub fn plot_sweep(
    report: &SweepReport,
    metric: SweepMetric,
    path: &Path,
) -> Result<(), ReportError> {
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
        draw_sweep(&root, report, metric).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_sweep(&root, report, metric).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    }
}

/// The sweep as an `<svg>` element, for the HTML page.
pub(super) fn sweep_svg(report: &SweepReport, metric: SweepMetric) -> Result<String, String> {
    crate::plot::register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, crate::PLOT_SIZE_PX).into_drawing_area();
        draw_sweep(&root, report, metric)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Where each point goes along x: its value, or its rank for a named axis.
struct XScale {
    names: Vec<String>,
    /// Every value is a whole number (documents, instances): no ticks between them.
    whole: bool,
}

impl XScale {
    fn of(report: &SweepReport) -> XScale {
        let mut names: Vec<String> = Vec::new();
        if report
            .points
            .iter()
            .any(|p| matches!(p.x, AxisValue::Name(_)))
        {
            for p in &report.points {
                let name = p.x.to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let whole = report
            .points
            .iter()
            .all(|p| matches!(p.x, AxisValue::Whole(_)));
        XScale { names, whole }
    }

    fn x(&self, v: &AxisValue) -> f64 {
        match v {
            AxisValue::Whole(n) => *n as f64,
            AxisValue::Real(r) => *r,
            AxisValue::Name(n) => self.names.iter().position(|m| m == n).unwrap_or(0) as f64,
        }
    }

    fn label(&self, v: f64) -> String {
        if self.names.is_empty() {
            return match self.whole && v.fract().abs() > 1e-9 {
                true => String::new(),
                false => format!("{v}"),
            };
        }
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        self.names.get(i as usize).cloned().unwrap_or_default()
    }

    fn range(&self, report: &SweepReport, marks: &[f64]) -> (f64, f64) {
        if !self.names.is_empty() {
            return (-0.5, self.names.len() as f64 - 0.5);
        }
        let max = report
            .points
            .iter()
            .map(|p| self.x(&p.x))
            .chain(marks.iter().copied())
            .fold(1.0, f64::max);
        (0.0, max * 1.05)
    }
}

/// One arm of a point.
type Arm = fn(&SweepPoint) -> Option<ArmPoint>;

fn draw_sweep<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &SweepReport,
    metric: SweepMetric,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let scale = XScale::of(report);
    let marks = capacity_marks(report);
    let x_range = scale.range(report, &marks.iter().map(|m| m.0).collect::<Vec<_>>());
    let y_max = report
        .points
        .iter()
        .flat_map(|p| [p.vllm, p.lmcache])
        .flatten()
        .map(|a| metric.value(&a))
        .filter(|v| v.is_finite())
        .fold(1e-3, f64::max)
        * 1.15;
    let x_desc = if report.axis.is_working_set() {
        "Documents in the working set".to_string()
    } else {
        report.axis.flag.clone()
    };
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{} against {}", metric.title(), x_desc.to_lowercase()),
            ("sans-serif", 26).into_font().style(FontStyle::Bold),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.0..x_range.1, 0f64..y_max)
        .map_err(e)?;
    let label = |v: &f64| scale.label(*v);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&label)
        .y_desc(metric.y_desc())
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 19))
        .draw()
        .map_err(e)?;
    for (x, label, color) in marks {
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
    let grid = report.series_axis.is_some();
    draw_curves(&mut chart, report, &scale, metric)?;
    // Along the working set the lower right is where no point is (past the caches, every
    // query recomputes): a grid's long legend goes there.
    let legend_at = if grid && report.axis.is_working_set() {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperLeft
    };
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// The chart being drawn.
type SweepChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Each curve's two arms: lines through their points (points only along named values).
fn draw_curves<DB: DrawingBackend>(
    chart: &mut SweepChart<'_, DB>,
    report: &SweepReport,
    scale: &XScale,
    metric: SweepMetric,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let grid = report.series_axis.is_some();
    for (i, curve) in report.curves().iter().enumerate() {
        let name = report.curve_name(curve.series);
        let arms: [(&str, RGBColor, Arm, bool); 2] = [
            ("vLLM", VLLM, |p| p.vllm, true),
            ("vLLM + LMCache", LMCACHE, |p| p.lmcache, false),
        ];
        for (arm_name, arm_color, arm, dashed) in arms {
            let color = if grid {
                CURVES[i % CURVES.len()]
            } else {
                arm_color
            };
            let pts: Vec<(f64, f64)> = curve
                .points
                .iter()
                .filter_map(|p| Some((scale.x(&p.x), metric.value(&arm(p)?))))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let label = if grid {
                format!("{arm_name}, {name}")
            } else {
                arm_name.to_string()
            };
            let style = color.stroke_width(3);
            let named = !scale.names.is_empty();
            let series = if named {
                // Named values (GPUs, models) have no order: points only, no lines.
                let size = if dashed { 9 } else { 6 };
                chart
                    .draw_series(
                        pts.iter()
                            .map(|&xy| Circle::new(xy, size, color.stroke_width(3))),
                    )
                    .map_err(e)?
            } else if grid && dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 10, 6, style))
                    .map_err(e)?
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(e)?
            };
            series
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            chart
                .draw_series(pts.into_iter().map(|xy| Circle::new(xy, 4, color.filled())))
                .map_err(e)?;
        }
    }
    Ok(())
}

/// The capacities to mark: along the working set, where the GPU cache and the CPU tier
/// are full; in a grid, once per distinct value, named after the curves that have it.
fn capacity_marks(report: &SweepReport) -> Vec<(f64, String, RGBColor)> {
    if !report.axis.is_working_set() {
        return Vec::new();
    }
    let curves = report.curves();
    let mut marks: Vec<(f64, String, RGBColor)> = Vec::new();
    type Documents = fn(&ldqa_metrics::Capacities) -> u64;
    let kinds: [(&str, Documents, RGBColor); 2] = [
        (
            "GPU prefix cache full",
            |c| c.gpu_documents(),
            RGBColor(120, 120, 120),
        ),
        (
            "LMCache CPU tier full",
            |c| c.cpu_documents(),
            RGBColor(180, 180, 180),
        ),
    ];
    for (what, docs, color) in kinds {
        let mut values: Vec<(u64, Vec<String>)> = Vec::new();
        for curve in &curves {
            let Some(c) = curve.points.first().map(|p| p.capacities) else {
                continue;
            };
            let name = report.curve_name(curve.series);
            match values.iter_mut().find(|(d, _)| *d == docs(&c)) {
                Some((_, names)) => names.push(name),
                None => values.push((docs(&c), vec![name])),
            }
        }
        let shared = values.len() == 1;
        for (d, names) in values {
            let label = if shared {
                what.to_string()
            } else {
                format!("{what} ({})", names.join(", "))
            };
            marks.push((d as f64, label, color));
        }
    }
    marks
}
