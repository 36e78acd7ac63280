//! Exporters: terminal text, CSV, versioned JSON, a crash-safe JSONL record log, PNG/SVG plots.
//!
//! Layout:
//! - [`upstream`]: LMCache's exact lines: the result block, gain lines, gate messages and the
//!   `--json-output` line.
//! - [`human`]: the richer plain-text summary (optional colour).
//! - [`csv_out`]: `warmup_round.csv` / `query_round.csv` with upstream's columns first.
//! - [`result`]: the versioned [`RunResult`] (`--save-result`), documented in
//!   `docs/result-schema.md` with a JSON Schema in `docs/result-schema.json`.
//! - [`record_log`]: one JSON record per line, written as requests finish.
//! - [`plot`]: per-request timelines (PNG or SVG), fonts embedded.
//! - [`html`], [`markdown`]: whole reports (self-contained HTML with inline [`svg`] plots).
//! - [`compare`]: two results side by side, and the A/B result of `ldqa ab`.
//! - [`pyfmt`]: Python's float formatting, so that upstream's lines match byte for byte.
//!
//! ```
//! use ldqa_metrics::RoundSummary;
//! use ldqa_model::{RequestRecord, RoundKind, RoundRecord};
//! let mut r = RequestRecord::new(0, 0, true);
//! r.first_token_ns = Some(751_000_000);
//! r.end_ns = 1_000_000_000;
//! let round = |kind| RoundRecord {
//!     kind, started_unix_ns: 0, duration_ns: 1_000_000_000, interrupted: false,
//!     requests: vec![r.clone()], evidence: None,
//! };
//! let w = RoundSummary::from_round(&round(RoundKind::Warmup));
//! let q = RoundSummary::from_round(&round(RoundKind::Query));
//! let block = ldqa_report::upstream_block(&w, &q, false);
//! assert!(block.contains("Warmup round mean TTFT: 0.751s\n"));
//! ```

#![warn(missing_docs)]

pub mod atomic;
pub mod compare;
pub mod csv_out;
mod error;
mod facts;
pub mod html;
pub mod human;
pub mod markdown;
pub mod plot;
pub mod pyfmt;
pub mod record_log;
pub mod result;
pub mod svg;
pub mod sweep;
mod timeline;
pub mod trace_stats;
pub mod upstream;
mod versioned;

#[cfg(test)]
mod testutil;

pub use atomic::write_atomically;
pub use compare::{
    read_any, AbResult, AnyResult, Comparison, ComparisonRow, EngineOutcome, AB_SCHEMA_VERSION,
};
pub use csv_out::{write_round_csv, write_round_csv_path, CSV_COLUMNS};
pub use error::ReportError;
pub use html::{ab_html, run_html, run_title};
pub use human::human_summary;
pub use markdown::{ab_markdown, compare_markdown, run_markdown};
pub use plot::{plot_round_timeline, PLOT_SIZE_PX};
pub use record_log::{read_record_log, RecordLog, RecordLogContents, RecordLogEntry};
pub use result::{
    read_json, write_json, Environment, RoundResult, RunResult, ToolInfo, SCHEMA_VERSION,
};
pub use upstream::{gain_lines, gate_message, gate_messages, json_line, upstream_block};
