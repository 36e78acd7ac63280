//! What `ldqa run` does while a round runs: a progress bar, the crash-safe record log,
//! and the responses file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ldqa_loadgen::RoundObserver;
use ldqa_model::{RequestRecord, RequestSpec, RoundKind};
use ldqa_report::RecordLog;

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
    progress: Option<Progress>,
    log: Option<Mutex<RecordLog>>,
    responses: Option<Mutex<ResponseSink>>,
    /// The first problem writing the record log, reported once at the end.
    pub log_error: Mutex<Option<String>>,
    /// Requests per round (pre-warmup, warmup, query), for the progress bar's length.
    round_lens: [usize; 3],
    /// The round whose requests are being sent: a new one resets the bar.
    current: Mutex<Option<RoundKind>>,
}

struct Progress {
    bar: ProgressBar,
    in_flight: AtomicU64,
    failed: AtomicU64,
    ttft_sum_ns: AtomicU64,
    ttft_n: AtomicU64,
}

impl RunObserver {
    pub fn new(
        show_progress: bool,
        log: Option<RecordLog>,
        responses: Option<ResponseSink>,
        round_lens: [usize; 3],
    ) -> Self {
        let progress = show_progress.then(|| Progress {
            bar: ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()),
            in_flight: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ttft_sum_ns: AtomicU64::new(0),
            ttft_n: AtomicU64::new(0),
        });
        Self {
            progress,
            log: log.map(Mutex::new),
            responses: responses.map(Mutex::new),
            log_error: Mutex::new(None),
            round_lens,
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
        if let Some(p) = &self.progress {
            p.bar.reset();
            p.bar.set_length(len as u64);
            p.bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                )
                .expect("invariant: valid template")
                .progress_chars("=> "),
            );
            p.bar.set_prefix(kind.title());
            for counter in [&p.in_flight, &p.failed, &p.ttft_sum_ns, &p.ttft_n] {
                counter.store(0, Ordering::Relaxed);
            }
            p.bar.set_message("");
        }
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
        if let Some(p) = &self.progress {
            p.bar.finish_and_clear();
        }
        if let Some(sink) = &self.responses {
            sink.lock().expect("invariant: lock not poisoned").flush();
        }
    }

    fn update_message(p: &Progress) {
        let n = p.ttft_n.load(Ordering::Relaxed);
        let mean = if n > 0 {
            p.ttft_sum_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e9
        } else {
            f64::NAN
        };
        let mean = if mean.is_nan() {
            "-".to_owned()
        } else {
            format!("{mean:.3}s")
        };
        p.bar.set_message(format!(
            "in flight {} · failed {} · mean TTFT {mean}",
            p.in_flight.load(Ordering::Relaxed),
            p.failed.load(Ordering::Relaxed),
        ));
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
        if let Some(p) = &self.progress {
            p.in_flight.fetch_add(1, Ordering::Relaxed);
            Self::update_message(p);
        }
    }

    fn on_finished(&self, kind: RoundKind, record: &RequestRecord, text: Option<&str>) {
        if let Some(p) = &self.progress {
            p.in_flight.fetch_sub(1, Ordering::Relaxed);
            match (record.is_success(), record.ttft_ns()) {
                (true, Some(ttft)) => {
                    p.ttft_sum_ns.fetch_add(ttft, Ordering::Relaxed);
                    p.ttft_n.fetch_add(1, Ordering::Relaxed);
                }
                (false, _) => {
                    p.failed.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            p.bar.inc(1);
            Self::update_message(p);
        }
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
            sink.lock()
                .expect("invariant: lock not poisoned")
                .write(&format!(
                    "\n--- Sending prompt {} ---\n\nResponse of request {}: {text}\n",
                    record.prompt_id + 1,
                    record.prompt_id
                ));
        }
    }

    fn wants_text(&self) -> bool {
        self.responses.is_some()
    }
}
