//! What `ldqa run` does while a round runs: a progress bar, the crash-safe record log,
//! and the responses file.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use ldqa_loadgen::RoundObserver;
use ldqa_model::{RequestRecord, RequestSpec, RoundKind};
use ldqa_report::RecordLog;

use crate::progress::{Progress, ProgressMode};

/// Where generated text goes (`--output`), and the first write that failed.
///
/// A failed write does not stop the benchmark (the measurements stay good), but it is not
/// swallowed either: the run ends with an error that names it (reliability review C8: a
/// full disk gave an empty file and exit 0). Each response is written through as it
/// arrives, so a killed run keeps what was answered (C11).
pub struct ResponseSink {
    target: SinkTarget,
    error: Option<std::io::Error>,
}

enum SinkTarget {
    Stdout,
    File(File),
}

impl ResponseSink {
    /// Responses to stdout (`--output -`).
    pub fn stdout() -> Self {
        ResponseSink {
            target: SinkTarget::Stdout,
            error: None,
        }
    }

    /// Responses to `file`.
    pub fn file(file: File) -> Self {
        ResponseSink {
            target: SinkTarget::File(file),
            error: None,
        }
    }

    fn write(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        let result = match &mut self.target {
            SinkTarget::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            SinkTarget::File(f) => f.write_all(text.as_bytes()),
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    fn flush(&mut self) {
        let result = match &mut self.target {
            SinkTarget::Stdout => std::io::stdout().flush(),
            SinkTarget::File(f) => f.sync_data(),
        };
        if let (Err(e), None) = (result, &self.error) {
            self.error = Some(e);
        }
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

    /// Clears the bar (before results are printed); the first failed write of the
    /// responses, if one failed.
    pub fn finish(&self) -> Option<std::io::Error> {
        self.progress.finish();
        let sink = self.responses.as_ref()?;
        let mut sink = sink.lock().expect("invariant: lock not poisoned");
        sink.flush();
        sink.error.take()
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
