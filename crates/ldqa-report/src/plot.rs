//! Per-request timelines of a round, as PNG or SVG (chosen by the file extension).
//!
//! Like upstream's `--visualize` (LMCache `long_doc_qa.py` at 3129b019, `plot_bars`): one
//! horizontal bar per request, y = prompt id, x = seconds from the round start. The
//! prefill part (sent → first token) is dark blue for planned hits ("Loading") and dark
//! orange for misses ("Compute"); the decode part (first token → end) is sky blue or pink.
//! Failed requests are drawn in red from send to end ("Failed").
//!
//! Text uses DejaVu Sans embedded in the binary (`dejavu` crate) through plotters'
//! `ab_glyph` feature: no system fonts or C libraries are needed.

use std::path::Path;
use std::sync::Once;

use ldqa_model::{ns_to_s, RoundRecord};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::timeline::{round_bars, Bar, BarKind};
use crate::ReportError;

/// Size of the image, in pixels (upstream: `figsize=(12, 6)` at 100 dpi).
pub const PLOT_SIZE_PX: (u32, u32) = (1200, 600);

const LOADING: RGBColor = RGBColor(0, 0, 139); // matplotlib "darkblue"
const COMPUTE: RGBColor = RGBColor(255, 140, 0); // "darkorange"
const DECODE_HIT: RGBColor = RGBColor(135, 206, 235); // "skyblue"
const DECODE_MISS: RGBColor = RGBColor(255, 192, 203); // "pink"
const FAILED: RGBColor = RGBColor(220, 20, 60); // "crimson"

static FONTS: Once = Once::new();

/// Registers the embedded fonts with plotters (once per process).
pub(crate) fn register_fonts() {
    FONTS.call_once(|| {
        // The bytes are a valid TTF shipped by the dejavu crate; failure would be a build defect.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws the timeline of `round` to `path`: SVG when the extension is `.svg`, PNG otherwise.
pub fn plot_round_timeline(
    round: &RoundRecord,
    title: &str,
    path: &Path,
) -> Result<(), ReportError> {
    register_fonts();
    let err = |message: String| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    };
    let is_svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if is_svg {
        let root = SVGBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
        draw(&root, round, title).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    } else {
        let root = BitMapBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
        draw(&root, round, title).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    }
}

/// The legend label and colour of each kind of bar, in legend order (upstream's labels).
const SERIES: [(BarKind, &str, RGBColor); 5] = [
    (BarKind::PrefillHit, "Loading", LOADING),
    (BarKind::PrefillMiss, "Compute", COMPUTE),
    (BarKind::DecodeHit, "Decoding after loading", DECODE_HIT),
    (BarKind::DecodeMiss, "Decoding after compute", DECODE_MISS),
    (BarKind::Failed, "Failed", FAILED),
];

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    round: &RoundRecord,
    title: &str,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let end_ns = round
        .requests
        .iter()
        .map(|r| r.end_ns)
        .max()
        .unwrap_or(0)
        .max(round.duration_ns);
    let x_max = (ns_to_s(end_ns) * 1.03).max(1e-3);
    let max_id = round
        .requests
        .iter()
        .map(|r| r.prompt_id)
        .max()
        .unwrap_or(0) as f64;

    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26).into_font().style(FontStyle::Bold))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, -0.7f64..max_id + 0.7)
        .map_err(e)?;
    let int_label = |v: &f64| {
        let r = v.round();
        if (v - r).abs() < 1e-6 && r >= 0.0 {
            format!("{r:.0}")
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("Time (s)")
        .y_desc("Prompt ID")
        .disable_y_mesh()
        .y_labels(((max_id as usize) + 1).min(25))
        .y_label_formatter(&int_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 19))
        .draw()
        .map_err(e)?;

    let half = 0.4;
    let bars: Vec<Bar> = round_bars(&round.requests).collect();
    let of_kind = |kind| bars.iter().filter(move |b| b.kind == kind);
    for (kind, label, color) in SERIES {
        if of_kind(kind).next().is_none() {
            continue;
        }
        chart
            .draw_series(of_kind(kind).map(|b| {
                let y = b.prompt_id as f64;
                Rectangle::new([(b.from_s, y - half), (b.to_s, y + half)], color.filled())
            }))
            .map_err(e)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], color.filled()));
    }
    // Mark failures at their end so that even a zero-length failure is visible.
    chart
        .draw_series(
            of_kind(BarKind::Failed)
                .map(|b| Cross::new((b.to_s, b.prompt_id as f64), 6, FAILED.stroke_width(2))),
        )
        .map_err(e)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rich_round;
    use ldqa_model::RoundKind;

    #[test]
    fn png_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("query_round.png");
        plot_round_timeline(&rich_round(RoundKind::Query), "Query Round", &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 1000, "{} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    /// A round the size of the tutorial's (51 prompts): labels must stay readable.
    #[test]
    fn many_requests() {
        let mut round = rich_round(RoundKind::Query);
        let template = round.requests.clone();
        round.requests = (0..51)
            .map(|i| {
                let mut r = template[i % template.len()].clone();
                let shift = (i / template.len()) as u64 * 1_900_000_000;
                r.prompt_id = i;
                r.sent_ns += shift;
                r.queued_ns += shift;
                r.first_token_ns = r.first_token_ns.map(|t| t + shift);
                r.last_token_ns = r.last_token_ns.map(|t| t + shift);
                r.end_ns += shift;
                r
            })
            .collect();
        round.duration_ns = round.requests.iter().map(|r| r.end_ns).max().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.png");
        plot_round_timeline(&round, "Query Round", &path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }

    #[test]
    fn svg_by_extension_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warmup_round.svg");
        plot_round_timeline(&rich_round(RoundKind::Warmup), "Warmup Round", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        for text in ["Warmup Round", "Time (s)", "Prompt ID", "Compute", "Failed"] {
            assert!(svg.contains(text), "missing {text}");
        }
        // The warmup round has only misses: no "Loading" legend entry.
        assert!(!svg.contains(">Loading<"));
    }

    #[test]
    fn empty_round_still_draws() {
        let round = RoundRecord {
            kind: RoundKind::Query,
            started_unix_ns: 0,
            duration_ns: 0,
            interrupted: true,
            requests: vec![],
            evidence: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        plot_round_timeline(&round, "Empty", &path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("Empty"));
    }
}
