//! What `ldqa run` leaves behind: stdout (upstream's block, then ours), files, exit status.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ldqa_metrics::RoundSummary;
use ldqa_model::{RoundKind, RoundRecord};
use ldqa_report::{Environment, RecordLog, RoundResult, RunResult, ToolInfo};

use crate::exit::ExitStatus;

/// Output locations, created before the run so a bad path fails before any request.
pub struct Outputs {
    dir: PathBuf,
    save_result: Option<PathBuf>,
}

impl Outputs {
    pub fn prepare(dir: &Path, save_result: Option<&Path>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --output-dir {}", dir.display()))?;
        if let Some(parent) = save_result
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("creating the folder of --save-result {}", parent.display())
            })?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            save_result: save_result.map(Path::to_owned),
        })
    }

    /// `records.jsonl`: every request appended as it ends (survives a crash).
    pub fn record_log(&self) -> anyhow::Result<RecordLog> {
        let path = self.dir.join("records.jsonl");
        RecordLog::create(&path).with_context(|| format!("creating {}", path.display()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Gates asked for on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gates {
    pub expected_ttft_gain: Option<f64>,
    pub expected_latency_gain: Option<f64>,
}

/// A line printed after the summary: something to act on, or only something to know
/// (finding 31: "times are simulated seconds" is information, not a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Something went wrong or is misleading: `warning: …`.
    Warning(String),
    /// Worth knowing when reading the numbers: `note: …`.
    Note(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Warning(text) => write!(f, "warning: {text}"),
            Notice::Note(text) => write!(f, "note: {text}"),
        }
    }
}

/// Everything derived from a run, ready to print and write.
pub struct Report {
    result: RunResult,
    notices: Vec<Notice>,
    gates: Gates,
    interrupted: bool,
    color: bool,
}

/// A warmup round that hit the server's cache means the server was not cold, so the
/// query round's gain is understated (usability finding 14). A cold warmup hits only the
/// chat template's shared header (29 of ~10,000 tokens of a seed document).
fn warm_server_warning(result: &RunResult) -> Option<Notice> {
    let server = result.round(RoundKind::Warmup)?.summary.server.as_ref()?;
    let rate = server
        .prefix_cache_hit_rate
        .into_iter()
        .chain(server.external_cache_hit_rate)
        .chain(server.lmcache_hit_rate)
        .fold(0.0, f64::max);
    (rate > WARM_HIT_RATE).then(|| {
        Notice::Warning(format!(
            "the warmup round hit the server's cache {:.1} %: the server was not cold, so the \
             gains are understated (restart it, or POST /reset_prefix_cache to a vLLM server)",
            rate * 100.0
        ))
    })
}

/// A warmup hit rate above this is a server that was not cold.
const WARM_HIT_RATE: f64 = 0.2;

impl Report {
    /// Summarizes the measured rounds (the untimed pre-warmup is left out).
    pub fn new(
        config: serde_json::Value,
        environment: Environment,
        rounds: &[RoundRecord],
        notices: Vec<Notice>,
        gates: Gates,
        interrupted: bool,
    ) -> Self {
        let tool = ToolInfo::new("ldqa", env!("CARGO_PKG_VERSION"));
        let result = RunResult::new(tool, config, environment, rounds);
        let mut notices = notices;
        notices.extend(warm_server_warning(&result));
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self {
            result,
            notices,
            gates,
            interrupted,
            color,
        }
    }

    /// The result, for a caller that goes on with it (`ab` compares the engines' results).
    pub fn into_result(self) -> RunResult {
        self.result
    }

    fn summary(&self, kind: RoundKind) -> Option<&RoundSummary> {
        self.result.round(kind).map(|r| &r.summary)
    }

    /// CSV per round, the JSON result; with `visualize`, the PNG timelines and `report.html`.
    pub fn write_files(&self, outputs: &Outputs, visualize: bool) -> anyhow::Result<()> {
        for round in &self.result.rounds {
            let record = round.to_record();
            let path = outputs.path(&format!("{}_round.csv", round.kind.as_str()));
            ldqa_report::write_round_csv_path(&path, &record)
                .with_context(|| format!("writing {}", path.display()))?;
            if visualize {
                let path = outputs.path(&format!("{}_round.png", round.kind.as_str()));
                let title = format!("{} round", round.kind.title());
                ldqa_report::plot_round_timeline(&record, &title, &path)
                    .with_context(|| format!("drawing {}", path.display()))?;
            }
        }
        if visualize {
            let path = outputs.path("report.html");
            let html = ldqa_report::run_html(&self.result, &ldqa_report::run_title(&self.result));
            ldqa_report::write_atomically(&path, html.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &outputs.save_result {
            ldqa_report::write_json(path, &self.result)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes upstream's block, our summary, warnings, and the JSON line last to stdout; a
    /// closed stdout is a [`crate::stdout::StdoutClosed`] error.
    pub fn write_stdout(&self, json_output: bool) -> anyhow::Result<()> {
        crate::stdout::write(&self.text(json_output))
    }

    /// What [`Report::write_stdout`] writes: upstream's block, our summary, warnings, and
    /// the JSON line last.
    pub fn text(&self, json_output: bool) -> String {
        let mut out = String::new();
        let both = self
            .summary(RoundKind::Warmup)
            .zip(self.summary(RoundKind::Query));
        if let Some((w, q)) = both {
            out.push_str(&ldqa_report::upstream_block(w, q, self.color));
            out.push_str(&ldqa_report::gain_lines(
                self.result
                    .gains
                    .as_ref()
                    .expect("invariant: gains exist with both rounds"),
                self.gates.expected_ttft_gain,
                self.gates.expected_latency_gain,
                self.color,
            ));
        }
        out.push('\n');
        let summaries: Vec<&RoundSummary> = self.result.rounds.iter().map(|r| &r.summary).collect();
        out.push_str(&ldqa_report::human_summary(
            &summaries,
            self.result.gains.as_ref(),
            self.color,
        ));
        for n in &self.notices {
            out.push_str(&format!("{n}\n"));
        }
        if let (true, Some(line)) = (json_output, self.json_line()) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Upstream's one-line JSON summary (`--json-output`), when both rounds ran.
    pub fn json_line(&self) -> Option<String> {
        let w = self.summary(RoundKind::Warmup)?;
        let q = self.summary(RoundKind::Query)?;
        Some(ldqa_report::json_line(w, q))
    }

    /// The exit status: 130 interrupted, 2 when a round had no successful request, 1 when a
    /// gate failed, else 0. Pure: [`Report::eprint_failures`] says why.
    pub fn exit_status(&self) -> ExitStatus {
        if self.interrupted {
            ExitStatus::Interrupted
        } else if self.failed_rounds().next().is_some() {
            ExitStatus::Error
        } else if !self.gate_failures().is_empty() {
            ExitStatus::GateFailed
        } else {
            ExitStatus::Success
        }
    }

    /// What decided a non-zero [`Report::exit_status`] (other than Ctrl-C), one line each:
    /// rounds where every request failed, with their first errors; otherwise failed gates.
    pub fn failure_messages(&self) -> Vec<String> {
        if self.interrupted {
            return Vec::new();
        }
        let mut lines = Vec::new();
        for round in self.failed_rounds() {
            lines.push(format!(
                "error: every request of the {} round failed; first errors:",
                round.kind.as_str()
            ));
            for e in &round.summary.error_samples {
                lines.push(format!(
                    "  prompt {}: {}: {}",
                    e.prompt_id, e.kind, e.message
                ));
            }
        }
        if lines.is_empty() {
            lines = self.gate_failures();
        }
        lines
    }

    /// Prints [`Report::failure_messages`] on stderr.
    pub fn eprint_failures(&self) {
        for line in self.failure_messages() {
            eprintln!("{line}");
        }
    }

    fn failed_rounds(&self) -> impl Iterator<Item = &RoundResult> {
        self.result
            .rounds
            .iter()
            .filter(|r| r.summary.prompt_count > 0 && r.summary.successful_count == 0)
    }

    fn gate_failures(&self) -> Vec<String> {
        self.result.gains.as_ref().map_or_else(Vec::new, |gains| {
            ldqa_report::gate_messages(
                gains,
                self.gates.expected_ttft_gain,
                self.gates.expected_latency_gain,
            )
        })
    }
}
