//! What a multi-round QA run prints and writes, live or simulated: upstream's periodic
//! performance block and its `summary.csv`, and ldqa's own table and JSON.

use std::fmt::Write as _;

use ldqa_model::RequestRecord;
use serde::Serialize;

use crate::cmd::engine_replay::EngineReplay;

/// One question and its answer.
#[derive(Debug, Clone)]
pub struct QaRequest {
    /// Who asked.
    pub user_id: u64,
    /// The number in the question's text.
    pub question_no: u32,
    /// Times are ns from the run's start (after the warm-up).
    pub record: RequestRecord,
}

impl QaRequest {
    fn ok(&self) -> bool {
        self.record.failure.is_none()
    }

    fn ttft_s(&self) -> f64 {
        self.record.ttft_ns().map_or(f64::NAN, |t| t as f64 / 1e9)
    }

    /// From the first content to the end of the stream, seconds.
    fn generation_s(&self) -> f64 {
        let first = self.record.first_token_ns.unwrap_or(self.record.end_ns);
        self.record.end_ns.saturating_sub(first) as f64 / 1e9
    }

    fn prompt_tokens(&self) -> u64 {
        self.record.usage.and_then(|u| u.prompt_tokens).unwrap_or(0)
    }

    fn generation_tokens(&self) -> u64 {
        self.record
            .usage
            .and_then(|u| u.completion_tokens)
            .unwrap_or(0)
    }
}

/// A run: its requests in launch order, and when it started on the Unix clock.
#[derive(Debug, Clone)]
pub struct QaRun {
    pub requests: Vec<QaRequest>,
    /// The run's zero, ns since the Unix epoch (a simulated run starts "now").
    pub start_unix_ns: u64,
    /// From the start until the last answer, ns.
    pub duration_ns: u64,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

impl QaRun {
    /// Each of `n` instances' share of the run (request `i` went to `instance_of(i, r)`),
    /// named `name(k)`.
    pub fn shares(
        &self,
        n: usize,
        instance_of: impl Fn(usize, &QaRequest) -> usize,
        name: impl Fn(usize) -> String,
    ) -> Vec<(String, QaRun)> {
        (0..n)
            .map(|k| {
                let requests = self
                    .requests
                    .iter()
                    .enumerate()
                    .filter(|&(i, r)| instance_of(i, r) == k)
                    .map(|(_, r)| r.clone())
                    .collect();
                (name(k), QaRun { requests, ..*self })
            })
            .collect()
    }
}

/// Upstream's performance block over `[from_s, to_s]` (seconds from the start): requests
/// that finished in the window, the configured and actual request rates, and
/// `waiting` users. `color`: upstream's ANSI colours (on a terminal).
pub fn performance_block(
    run: &QaRun,
    from_s: f64,
    to_s: f64,
    waiting: usize,
    config_qps: f64,
    color: bool,
) -> String {
    let last_end = run
        .requests
        .iter()
        .map(|r| r.record.end_ns as f64 / 1e9)
        .fold(f64::NAN, f64::max);
    let to_s = if last_end.is_nan() {
        to_s
    } else {
        to_s.min(last_end)
    };
    let within = |ns: u64| {
        let t = ns as f64 / 1e9;
        from_s <= t && t <= to_s
    };
    let launched = run
        .requests
        .iter()
        .filter(|r| within(r.record.sent_ns))
        .count();
    let done: Vec<&QaRequest> = run
        .requests
        .iter()
        .filter(|r| r.ok() && within(r.record.end_ns))
        .collect();
    let total = to_s - from_s;
    let n = done.len() as f64;
    let mean = |f: &dyn Fn(&QaRequest) -> f64| done.iter().map(|r| f(r)).sum::<f64>() / n;
    let (y, g, r) = if color {
        ("\x1b[33m", "\x1b[32m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let start_unix = run.start_unix_ns as f64 / 1e9;
    let mut out =
        String::from("\n\n==================== Performance summary ======================\n");
    let prompt: u64 = done.iter().map(|r| r.prompt_tokens()).sum();
    let generated: u64 = done.iter().map(|r| r.generation_tokens()).sum();
    let metrics = [
        ("Config QPS", format!("{g}{config_qps:.4} reqs/s")),
        (
            "Actual QPS",
            format!("{g}{:.4} reqs/s", (launched + waiting) as f64 / total),
        ),
        ("Processing speed", format!("{g}{:.4} reqs/s", n / total)),
        ("Requests on-the-fly", waiting.to_string()),
        (
            "Input tokens per second",
            format!("{g}{:.4} tokens/s", prompt as f64 / total),
        ),
        (
            "Output tokens per second",
            format!("{g}{:.4} tokens/s", generated as f64 / total),
        ),
        (
            "Average generation throughput (per request)",
            format!(
                "{g}{:.4} tokens/req/s",
                mean(&|r| r.generation_tokens() as f64 / r.generation_s())
            ),
        ),
        (
            "Average TTFT",
            format!("{g}{:.4}s", mean(&QaRequest::ttft_s)),
        ),
    ];
    for (label, value) in metrics {
        let _ = writeln!(out, "  {y}{label}: {value}{r}\n");
    }
    let _ = writeln!(
        out,
        "Time range: {} - {} ({total:.2}s)",
        start_unix + from_s,
        start_unix + to_s
    );
    out.push_str("===============================================================\n\n\n");
    out
}

/// Upstream's `summary.csv`: one row per answered question, user by user (in the order
/// users joined), each user's questions in order; `question_id` counts a user's answered
/// questions from 1. Times in seconds; launch and finish on the Unix clock.
pub fn summary_csv(run: &QaRun) -> String {
    let mut rows: Vec<&QaRequest> = run.requests.iter().filter(|r| r.ok()).collect();
    rows.sort_by_key(|r| (r.user_id, r.record.sent_ns));
    let start = run.start_unix_ns as f64 / 1e9;
    let mut out = String::from(
        "prompt_tokens,generation_tokens,ttft,generation_time,user_id,question_id,launch_time,finish_time\n",
    );
    let mut user = None;
    let mut question_id = 0;
    for r in rows {
        if user != Some(r.user_id) {
            user = Some(r.user_id);
            question_id = 0;
        }
        question_id += 1;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.prompt_tokens(),
            r.generation_tokens(),
            r.ttft_s(),
            r.generation_s(),
            r.user_id,
            question_id,
            start + r.record.sent_ns as f64 / 1e9,
            start + r.record.end_ns as f64 / 1e9,
        );
    }
    out
}

/// One request in the JSON.
#[derive(Debug, Serialize)]
struct JsonRequest {
    user_id: u64,
    question_no: u32,
    sent_s: f64,
    ttft_s: Option<f64>,
    prompt_tokens: Option<u64>,
    cached_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
}

/// One engine's run in the JSON.
#[derive(Debug, Serialize)]
pub struct EngineRun {
    #[serde(flatten)]
    summary: EngineReplay,
    requests: Vec<JsonRequest>,
}

impl EngineRun {
    /// `run` on `engine` (a simulated engine's name, or "server").
    pub fn of(engine: &str, run: &QaRun) -> EngineRun {
        let records: Vec<RequestRecord> = run.requests.iter().map(|r| r.record.clone()).collect();
        EngineRun {
            summary: EngineReplay::of(engine, &records, run.duration_ns),
            requests: run
                .requests
                .iter()
                .map(|r| JsonRequest {
                    user_id: r.user_id,
                    question_no: r.question_no,
                    sent_s: r.record.sent_ns as f64 / 1e9,
                    ttft_s: r.record.ttft_ns().map(|t| t as f64 / 1e9),
                    prompt_tokens: r.record.usage.and_then(|u| u.prompt_tokens),
                    cached_tokens: r.record.usage.and_then(|u| u.cached_tokens),
                    completion_tokens: r.record.usage.and_then(|u| u.completion_tokens),
                    failure: r.record.failure.as_ref().map(|f| f.message.clone()),
                })
                .collect(),
        }
    }

    /// The summary line's figures.
    pub fn summary(&self) -> &EngineReplay {
        &self.summary
    }
}

/// `multi_round_qa.json`.
#[derive(Debug, Serialize)]
pub struct QaDocument {
    pub schema: &'static str,
    pub schema_version: u32,
    /// Where it ran: the server's URL, or the simulated deployment.
    pub description: String,
    pub num_users: u32,
    pub num_rounds: u32,
    pub qps: f64,
    pub shared_system_prompt: u32,
    pub user_history_prompt: u32,
    pub answer_len: u32,
    pub engines: Vec<EngineRun>,
    /// `--metrics-url`: each instance's own counters over the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_counters: Vec<crate::cmd::instance_counters::InstanceCounters>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_model::Usage;

    fn request(user: u64, sent_s: f64, ttft_s: f64, end_s: f64) -> QaRequest {
        let mut record = RequestRecord::new(0, 0, false);
        record.sent_ns = (sent_s * 1e9) as u64;
        record.on_content(((sent_s + ttft_s) * 1e9) as u64);
        record.end_ns = (end_s * 1e9) as u64;
        record.usage = Some(Usage {
            prompt_tokens: Some(100),
            completion_tokens: Some(10),
            cached_tokens: Some(64),
        });
        QaRequest {
            user_id: user,
            question_no: 1,
            record,
        }
    }

    fn run() -> QaRun {
        QaRun {
            requests: vec![
                request(2, 0.0, 0.5, 1.0),
                request(1, 0.5, 0.25, 2.0),
                request(2, 3.0, 0.5, 4.0),
            ],
            start_unix_ns: 1_000_000_000_000,
            duration_ns: 4_000_000_000,
            interrupted: false,
        }
    }

    #[test]
    fn the_csv_has_upstreams_columns_user_by_user() {
        let csv = summary_csv(&run());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "prompt_tokens,generation_tokens,ttft,generation_time,user_id,question_id,launch_time,finish_time"
        );
        assert_eq!(lines[1], "100,10,0.25,1.25,1,1,1000.5,1002");
        assert_eq!(lines[2], "100,10,0.5,0.5,2,1,1000,1001");
        assert_eq!(lines[3], "100,10,0.5,0.5,2,2,1003,1004");
    }

    /// The window counts the requests that finished in it: over [0, 2.5] two, of 200
    /// prompt tokens, TTFT 0.375 s on average.
    #[test]
    fn the_block_covers_requests_finished_in_the_window() {
        let block = performance_block(&run(), 0.0, 2.5, 1, 0.5, false);
        assert!(block.contains("Config QPS: 0.5000 reqs/s"), "{block}");
        assert!(block.contains("Actual QPS: 1.2000 reqs/s"), "{block}");
        assert!(block.contains("Processing speed: 0.8000 reqs/s"), "{block}");
        assert!(
            block.contains("Input tokens per second: 80.0000 tokens/s"),
            "{block}"
        );
        assert!(block.contains("Average TTFT: 0.3750s"), "{block}");
        assert!(
            block.contains("Time range: 1000 - 1002.5 (2.50s)"),
            "{block}"
        );
        assert!(!block.contains('\x1b'));
    }
}
