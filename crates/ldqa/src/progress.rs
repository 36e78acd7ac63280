//! Progress while a round runs, on stderr: a bar on a terminal; on anything else (CI logs,
//! `nohup`, a pipe) plain lines: one when a round starts, one when it ends, and a
//! heartbeat at least every 10 s in between, so a long run never looks hung
//! (usability findings 15 and 28).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ldqa_model::RoundKind;

/// The longest silence on a non-terminal stderr while a round runs.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// An updating bar (stderr is a terminal).
    Bar,
    /// Lines at round start and end, and a heartbeat.
    Lines,
}

impl ProgressMode {
    /// A bar on a terminal, unless `lines_anyway` (responses stream to the same terminal).
    pub fn for_stderr(lines_anyway: bool) -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() && !lines_anyway {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        }
    }
}

/// Counters of the round in progress.
#[derive(Default)]
struct Counters {
    len: AtomicU64,
    done: AtomicU64,
    in_flight: AtomicU64,
    failed: AtomicU64,
    ttft_sum_ns: AtomicU64,
    ttft_n: AtomicU64,
}

impl Counters {
    fn reset(&self, len: u64) {
        for c in [
            &self.done,
            &self.in_flight,
            &self.failed,
            &self.ttft_sum_ns,
            &self.ttft_n,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.len.store(len, Ordering::Relaxed);
    }

    fn mean_ttft(&self) -> String {
        let n = self.ttft_n.load(Ordering::Relaxed);
        if n == 0 {
            return "-".to_string();
        }
        let s = self.ttft_sum_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e9;
        format!("{s:.3}s")
    }

    fn status(&self) -> String {
        format!(
            "in flight {} · failed {} · mean TTFT {}",
            self.in_flight.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.mean_ttft()
        )
    }
}

/// The round being shown in [`ProgressMode::Lines`].
struct LineRound {
    title: &'static str,
    started: Instant,
    last_line: Instant,
}

/// Shared with the heartbeat thread.
struct Lines {
    counters: Counters,
    round: Mutex<Option<LineRound>>,
    stop: AtomicBool,
}

impl Lines {
    fn line(&self, round: &mut LineRound, what: &str) {
        let c = &self.counters;
        eprintln!(
            "{} round {what}: {}/{} done, {} ({:.0}s)",
            round.title,
            c.done.load(Ordering::Relaxed),
            c.len.load(Ordering::Relaxed),
            c.status(),
            round.started.elapsed().as_secs_f64()
        );
        round.last_line = Instant::now();
    }

    fn heartbeat_if_due(&self) {
        let mut round = self.round.lock().expect("invariant: lock not poisoned");
        if let Some(r) = round
            .as_mut()
            .filter(|r| r.last_line.elapsed() >= HEARTBEAT)
        {
            self.line(r, "running");
        }
    }
}

/// Progress of one run: a bar or lines.
pub struct Progress {
    display: Display,
}

enum Display {
    Bar {
        bar: ProgressBar,
        counters: Counters,
    },
    Lines(Arc<Lines>),
}

impl Progress {
    /// Starts showing progress in `mode` (lines start a heartbeat thread).
    pub fn new(mode: ProgressMode) -> Self {
        let display = match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
                // Styled before the first draw: no unstyled frame flashes by.
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>10} [{bar:30}] {pos}/{len} ({elapsed}) {wide_msg}",
                    )
                    .expect("invariant: valid template")
                    .progress_chars("=> "),
                );
                Display::Bar {
                    bar,
                    counters: Counters::default(),
                }
            }
            ProgressMode::Lines => {
                let lines = Arc::new(Lines {
                    counters: Counters::default(),
                    round: Mutex::new(None),
                    stop: AtomicBool::new(false),
                });
                let beat = Arc::clone(&lines);
                std::thread::spawn(move || {
                    while !beat.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(250));
                        beat.heartbeat_if_due();
                    }
                });
                Display::Lines(lines)
            }
        };
        Progress { display }
    }

    fn counters(&self) -> &Counters {
        match &self.display {
            Display::Bar { counters, .. } => counters,
            Display::Lines(lines) => &lines.counters,
        }
    }

    /// A new round of `len` requests.
    pub fn start_round(&self, kind: RoundKind, len: usize) {
        self.counters().reset(len as u64);
        match &self.display {
            Display::Bar { bar, .. } => {
                bar.reset();
                bar.set_length(len as u64);
                bar.set_prefix(kind.title());
                bar.set_message("");
            }
            Display::Lines(lines) => {
                let now = Instant::now();
                let r = LineRound {
                    title: kind.title(),
                    started: now,
                    last_line: now,
                };
                let s = if len == 1 { "" } else { "s" };
                eprintln!("{} round started: {len} request{s}", r.title);
                *lines.round.lock().expect("invariant: lock not poisoned") = Some(r);
            }
        }
    }

    /// A request was sent.
    pub fn on_sent(&self) {
        self.counters().in_flight.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }

    /// A request ended, with its TTFT when it succeeded.
    pub fn on_finished(&self, success: bool, ttft_ns: Option<u64>) {
        let c = self.counters();
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
        c.done.fetch_add(1, Ordering::Relaxed);
        match (success, ttft_ns) {
            (true, Some(t)) => {
                c.ttft_sum_ns.fetch_add(t, Ordering::Relaxed);
                c.ttft_n.fetch_add(1, Ordering::Relaxed);
            }
            (false, _) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        match &self.display {
            Display::Bar { bar, .. } => {
                bar.inc(1);
                self.redraw();
            }
            Display::Lines(lines) => {
                let all_done = c.done.load(Ordering::Relaxed) >= c.len.load(Ordering::Relaxed);
                let mut round = lines.round.lock().expect("invariant: lock not poisoned");
                if let (true, Some(r)) = (all_done, round.as_mut()) {
                    lines.line(r, "finished");
                    *round = None;
                }
            }
        }
    }

    fn redraw(&self) {
        if let Display::Bar { bar, counters } = &self.display {
            bar.set_message(counters.status());
        }
    }

    /// Clears the bar or stops the heartbeat (before results are printed).
    pub fn finish(&self) {
        match &self.display {
            Display::Bar { bar, .. } => bar.finish_and_clear(),
            Display::Lines(lines) => lines.stop.store(true, Ordering::Relaxed),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Display::Lines(lines) = &self.display {
            lines.stop.store(true, Ordering::Relaxed);
        }
    }
}
