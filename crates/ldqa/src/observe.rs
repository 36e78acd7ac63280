//! What `ldqa run` does while a round runs: a progress bar, the crash-safe record log,
//! and the responses file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use ldqa_loadgen::RoundObserver;
use ldqa_model::{RequestRecord, RequestSpec, RoundKind};
use ldqa_report::RecordLog;

use crate::progress::{Progress, ProgressMode};

/// Where generated text goes (`--output`).
pub enum ResponseSink {
    Stdout,
    File(BufWriter<File>),
}

impl ResponseSink {
    fn write(&mut self, text: &str) {
        // Response text is a convenience output: a failed write must not end the benchmark.
        let _ = match self {
            ResponseSink::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            ResponseSink::File(f) => f.write_all(text.as_bytes()),
        };
    }

    fn flush(&mut self) {
        let _ = match self {
            ResponseSink::Stdout => std::io::stdout().flush(),
            ResponseSink::File(f) => f.flush(),
        };
    }
}

/// The observer of `ldqa run`.
pub struct RunObserver {
    progress: Progress,
    log: Option<Mutex<RecordLog>>,
    responses: Option<Mutex<ResponseSink>>,
    /// The first problem writing the record log, reported once at the end.
    pub log_error: Mutex<Option<String>>,
    /// Requests per round (pre-warmup, warmup, query), for the progress bar's length.
    round_lens: [usize; 3],
    /// Simulated seconds per wall second of the server: records are logged and progress
    /// shown in its time, as the results are.
    time_scale: f64,
    /// The round whose requests are being sent: a new one resets the bar.
    current: Mutex<Option<RoundKind>>,
}

impl RunObserver {
    pub fn new(
        progress: ProgressMode,
        log: Option<RecordLog>,
        responses: Option<ResponseSink>,
        round_lens: [usize; 3],
        time_scale: f64,
    ) -> Self {
        let progress = Progress::new(progress);
        Self {
            progress,
            log: log.map(Mutex::new),
            responses: responses.map(Mutex::new),
            log_error: Mutex::new(None),
            round_lens,
            time_scale,
            current: Mutex::new(None),
        }
    }

    /// Resets the bar for a new round.
    fn start_round(&self, kind: RoundKind) {
        let len = match kind {
            RoundKind::PreWarmup => self.round_lens[0],
            RoundKind::Warmup => self.round_lens[1],
            RoundKind::Query => self.round_lens[2],
        };
        self.progress.start_round(kind, len);
        if let (Some(sink), RoundKind::Warmup | RoundKind::Query) = (&self.responses, kind) {
            let title = if kind == RoundKind::Warmup {
                "warm up"
            } else {
                "query"
            };
            sink.lock()
                .expect("invariant: lock not poisoned")
                .write(&format!("------{title} round------\n"));
        }
    }

    /// Clears the bar (before results are printed).
    pub fn finish(&self) {
        self.progress.finish();
        if let Some(sink) = &self.responses {
            sink.lock().expect("invariant: lock not poisoned").flush();
        }
    }
}

impl RoundObserver for RunObserver {
    fn on_sent(&self, kind: RoundKind, _spec: &RequestSpec) {
        {
            let mut current = self.current.lock().expect("invariant: lock not poisoned");
            if *current != Some(kind) {
                *current = Some(kind);
                self.start_round(kind);
            }
        }
        self.progress.on_sent();
    }

    fn on_finished(&self, kind: RoundKind, record: &RequestRecord, text: Option<&str>) {
        let mut scaled;
        let record = if self.time_scale == 1.0 {
            record
        } else {
            scaled = record.clone();
            scaled.scale_time(self.time_scale);
            &scaled
        };
        self.progress
            .on_finished(record.is_success(), record.ttft_ns());
        if let Some(log) = &self.log {
            if let Err(e) = log
                .lock()
                .expect("invariant: lock not poisoned")
                .append(&kind, record)
            {
                self.log_error
                    .lock()
                    .expect("invariant: lock not poisoned")
                    .get_or_insert_with(|| e.to_string());
            }
        }
        if let (Some(sink), Some(text), RoundKind::Warmup | RoundKind::Query) =
            (&self.responses, text, kind)
        {
            // Upstream's lines as long_doc_qa.py writes them today: "Sending prompt" counts
            // from 1 out of the round's prompts, "Response of request" from 0 (finding
            // 42: kept, so that outputs diff cleanly against upstream's).
            let total = if kind == RoundKind::Warmup {
                self.round_lens[1]
            } else {
                self.round_lens[2]
            };
            sink.lock()
                .expect("invariant: lock not poisoned")
                .write(&format!(
                    "\n--- Sending prompt {}/{total} ---\n\nResponse of request {}: {text}\n",
                    record.prompt_id + 1,
                    record.prompt_id
                ));
        }
    }

    fn wants_text(&self) -> bool {
        self.responses.is_some()
    }
}
