//! A tiny hand-written SVG chart (axes, ticks, points, lines, bars, legend) for the HTML
//! report: no fonts to embed, no JavaScript, text drawn by the browser.
//!
//! Every chart is `<svg class="plot" data-points="N">`, N being the number of data marks
//! drawn, so tests can check that no plot is empty.

use std::fmt::Write as _;

/// Colours (matplotlib's "tab10" first four, then grey and crimson).
pub const BLUE: &str = "#1f77b4";
/// Second series; misses' prefill in timelines (matplotlib's `tab:orange`).
pub const ORANGE: &str = "#ff7f0e";
/// Third series (matplotlib's `tab:green`).
pub const GREEN: &str = "#2ca02c";
/// Failed requests (matplotlib's `tab:red`).
pub const RED: &str = "#d62728";
/// Fourth series (matplotlib's `tab:purple`).
pub const PURPLE: &str = "#9467bd";
/// Client-side queueing in timelines.
pub const GREY: &str = "#c7c7c7";
/// Decode after a hit in timelines (`skyblue`).
pub const SKY: &str = "#87ceeb";
/// Decode after a miss in timelines (`pink`).
pub const PINK: &str = "#ffc0cb";

const W: f64 = 600.0;
const H: f64 = 340.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 48.0;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Round tick values covering `[min, max]`, about `n` of them (1, 2 or 5 times a power of ten).
pub fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    let span = (max - min).max(1e-12);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let m = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * mag >= raw)
        .unwrap_or(10.0);
    // k·m·10^e computed as k·m / 10^-e for negative e, so that 3 × 0.2 prints as 0.6.
    let inv = (1.0 / mag).round();
    let at = |k: f64| {
        if mag < 1.0 {
            k * m / inv
        } else {
            k * m * mag
        }
    };
    let step = m * mag;
    let mut k = (min / step).ceil();
    let mut out = Vec::new();
    while at(k) <= max + step * 1e-9 && out.len() < 50 {
        let v = at(k);
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

fn tick_label(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// One chart being drawn.
pub struct Chart {
    /// The x axis counts things (requests): ticks on whole numbers only.
    integer_x: bool,
    title: String,
    x_label: String,
    y_label: String,
    x: (f64, f64),
    y: (f64, f64),
    body: String,
    legend: Vec<(String, &'static str)>,
    legend_low: bool,
    points: usize,
}

impl Chart {
    /// A chart with data ranges `x` and `y` (widened when empty).
    /// Ticks of the x axis: whole numbers only when it counts things (finding 41: 4 requests
    /// were labelled -0.5, 0, 0.5, …).
    fn x_ticks(&self) -> Vec<f64> {
        let ticks = nice_ticks(self.x.0, self.x.1, 8);
        if !self.integer_x {
            return ticks;
        }
        let whole: Vec<f64> = ticks.into_iter().filter(|t| t.fract() == 0.0).collect();
        if whole.len() >= 2 {
            return whole;
        }
        let (lo, hi) = (self.x.0.ceil() as i64, self.x.1.floor() as i64);
        (lo..=hi).map(|i| i as f64).collect()
    }

    /// Marks the x axis as counting things: ticks on whole numbers only.
    pub fn integer_x(mut self) -> Self {
        self.integer_x = true;
        self
    }

    /// A chart of `title` over `x` and `y`, with axis labels.
    pub fn new(title: &str, x_label: &str, x: (f64, f64), y_label: &str, y: (f64, f64)) -> Self {
        let fix = |(a, b): (f64, f64)| {
            if !(a.is_finite() && b.is_finite()) {
                (0.0, 1.0)
            } else if b - a <= 0.0 {
                (a, a + 1.0)
            } else {
                (a, b)
            }
        };
        Chart {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x: fix(x),
            y: fix(y),
            body: String::new(),
            legend: Vec::new(),
            legend_low: false,
            points: 0,
            integer_x: false,
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (W - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (H - TOP - BOTTOM)
    }

    /// A point; `hollow` draws a ring (e.g. a cache miss); `tip` is the hover text.
    pub fn point(&mut self, x: f64, y: f64, color: &str, hollow: bool, tip: &str) {
        let (cx, cy) = (self.px(x), self.py(y));
        let fill = if hollow { "white" } else { color };
        let _ = write!(
            self.body,
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{fill}\" stroke=\"{color}\" stroke-width=\"1.5\"><title>{}</title></circle>",
            esc(tip)
        );
        self.points += 1;
    }

    /// A polyline through `pts` (counted as that many data points).
    pub fn line(&mut self, pts: &[(f64, f64)], color: &str) {
        if pts.is_empty() {
            return;
        }
        let coords: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let _ = write!(
            self.body,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            coords.join(" ")
        );
        self.points += pts.len();
    }

    /// A horizontal bar from `x0` to `x1` at height `y` (± `half` in data units).
    pub fn hbar(&mut self, x0: f64, x1: f64, y: f64, half: f64, color: &str, tip: &str) {
        let (a, b) = (self.px(x0), self.px(x1.max(x0)));
        let (t, bt) = (self.py(y + half), self.py(y - half));
        let _ = write!(
            self.body,
            "<rect x=\"{a:.1}\" y=\"{t:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}</title></rect>",
            (b - a).max(0.8),
            (bt - t).max(0.8),
            esc(tip)
        );
        self.points += 1;
    }

    /// Adds a legend entry.
    pub fn legend(&mut self, name: &str, color: &'static str) {
        self.legend.push((name.to_string(), color));
    }

    /// Puts the legend in the lower right corner (where a CDF leaves room).
    pub fn legend_low(&mut self) {
        self.legend_low = true;
    }

    /// Number of data marks drawn so far.
    pub fn points(&self) -> usize {
        self.points
    }

    /// The finished `<svg>` element.
    pub fn finish(self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg class=\"plot\" data-points=\"{}\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" font-family=\"sans-serif\" font-size=\"12\">",
            self.points
        );
        let _ = write!(
            s,
            "<title>{}</title><rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>",
            esc(&self.title)
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>",
            W / 2.0,
            esc(&self.title)
        );
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
        for t in self.x_ticks() {
            let px = self.px(t);
            let _ = write!(
                s,
                "<line x1=\"{px:.1}\" y1=\"{y0}\" x2=\"{px:.1}\" y2=\"{y1}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                y1 + 16.0,
                tick_label(t)
            );
        }
        for t in nice_ticks(self.y.0, self.y.1, 6) {
            let py = self.py(t);
            let _ = write!(
                s,
                "<line x1=\"{x0}\" y1=\"{py:.1}\" x2=\"{x1}\" y2=\"{py:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 - 6.0,
                py + 4.0,
                tick_label(t)
            );
        }
        let _ = write!(
            s,
            "<rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>",
            x1 - x0,
            y1 - y0
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            (x0 + x1) / 2.0,
            H - 10.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            (y0 + y1) / 2.0,
            esc(&self.y_label)
        );
        s.push_str(&self.body);
        if !self.legend.is_empty() {
            let width = self
                .legend
                .iter()
                .map(|(n, _)| n.chars().count())
                .max()
                .unwrap_or(0) as f64
                * 7.0
                + 30.0;
            let lx = x1 - width - 6.0;
            let height = self.legend.len() as f64 * 17.0 + 6.0;
            let ly = if self.legend_low {
                y1 - height - 6.0
            } else {
                y0 + 6.0
            };
            let _ = write!(
                s,
                "<rect x=\"{lx}\" y=\"{ly}\" width=\"{width}\" height=\"{height}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>"
            );
            for (i, (name, color)) in self.legend.iter().enumerate() {
                let y = ly + 12.0 + i as f64 * 17.0;
                let _ = write!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                    lx + 6.0,
                    y - 8.0,
                    lx + 26.0,
                    y + 1.0,
                    esc(name)
                );
            }
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_axes_tick_whole_numbers() {
        let c = Chart::new("t", "x", (-0.5, 3.5), "y", (0.0, 1.0)).integer_x();
        assert_eq!(c.x_ticks(), vec![0.0, 1.0, 2.0, 3.0]);
        let wide = Chart::new("t", "x", (-0.5, 99.5), "y", (0.0, 1.0)).integer_x();
        assert!(wide.x_ticks().iter().all(|t| t.fract() == 0.0));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(
            nice_ticks(0.0, 50.0, 6),
            vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
        );
        assert_eq!(tick_label(0.30000000000000004), "0.3");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn counts_marks() {
        let mut c = Chart::new("t", "x", (0.0, 1.0), "y", (0.0, 0.0));
        c.point(0.5, 0.5, BLUE, false, "p");
        c.line(&[(0.0, 0.0), (1.0, 1.0)], RED);
        c.legend("a<b", BLUE);
        let s = c.finish();
        assert!(s.starts_with("<svg class=\"plot\" data-points=\"3\""));
        assert!(s.contains("a&lt;b"));
    }
}
