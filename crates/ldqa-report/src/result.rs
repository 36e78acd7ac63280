//! The versioned JSON result (`--save-result FILE`): everything a run measured.
//!
//! Documented in `docs/result-schema.md`; `docs/result-schema.json` is its JSON Schema and a
//! test checks produced results against it, so the two cannot drift apart silently.
//! Bump [`SCHEMA_VERSION`] on any change that an old reader would misread.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ldqa_metrics::{Gains, RoundSummary, QUANTILE_METHOD};
use ldqa_model::{RequestRecord, RoundKind, RoundRecord, ServerEvidence};
use serde::{Deserialize, Serialize};

use crate::versioned::from_versioned_json;
use crate::ReportError;

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run: configuration, environment, rounds (summaries and raw records), gains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// The program and version that wrote the result.
    pub tool: ToolInfo,
    /// When the result was assembled, seconds since the Unix epoch.
    pub created_unix_s: u64,
    /// The resolved configuration, as the command chose to record it.
    pub config: serde_json::Value,
    /// The machine and target the run measured.
    pub environment: Environment,
    /// How percentiles were computed.
    pub quantile_method: String,
    /// The rounds, in the order they ran.
    pub rounds: Vec<RoundResult>,
    /// Query over warmup, when the run had both rounds.
    pub gains: Option<Gains>,
}

/// The program that wrote the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Program name, e.g. `ldqa`.
    pub name: String,
    /// Program version, e.g. `0.1.0`.
    pub version: String,
}

impl ToolInfo {
    /// The program `name` at `version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        ToolInfo {
            name: name.into(),
            version: version.into(),
        }
    }
}

/// Where the run happened and what it measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// `std::env::consts::OS`, e.g. `linux`.
    pub os: String,
    /// `std::env::consts::ARCH`, e.g. `x86_64`.
    pub arch: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// The host name, when cheap to read (Linux: `/proc/sys/kernel/hostname`).
    pub hostname: Option<String>,
    /// The endpoint measured (`http://localhost:8000/v1`), or `None` for the simulator.
    pub target_url: Option<String>,
    /// The model name sent in requests.
    pub model: Option<String>,
}

impl Environment {
    /// Reads OS, architecture, CPU count and host name from this machine.
    pub fn detect(target_url: Option<&str>, model: Option<&str>) -> Environment {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Environment {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hostname,
            target_url: target_url.map(str::to_string),
            model: model.map(str::to_string),
        }
    }
}

/// One round: its summary, and the raw records and evidence it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// Which round.
    pub kind: RoundKind,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub started_unix_ns: u128,
    /// Round time in nanoseconds (exact; `summary.round_time_s` is the same in seconds).
    pub duration_ns: u64,
    /// The round was cut short (Ctrl-C); `records` holds what finished.
    pub interrupted: bool,
    /// Statistics derived from `records` and `evidence`.
    pub summary: RoundSummary,
    /// One record per request, in `prompt_id` order.
    pub records: Vec<RequestRecord>,
    /// Deltas of the server's counters over the round, when they were read.
    pub evidence: Option<ServerEvidence>,
}

impl RoundResult {
    /// Summarizes `round` and keeps its records.
    pub fn from_record(round: &RoundRecord) -> RoundResult {
        RoundResult {
            kind: round.kind,
            started_unix_ns: round.started_unix_ns,
            duration_ns: round.duration_ns,
            interrupted: round.interrupted,
            summary: RoundSummary::from_round(round),
            records: round.requests.clone(),
            evidence: round.evidence.clone(),
        }
    }

    /// The round as it was measured (to re-render reports from a saved result).
    pub fn to_record(&self) -> RoundRecord {
        RoundRecord {
            kind: self.kind,
            started_unix_ns: self.started_unix_ns,
            duration_ns: self.duration_ns,
            interrupted: self.interrupted,
            requests: self.records.clone(),
            evidence: self.evidence.clone(),
        }
    }
}

impl RunResult {
    /// Assembles a result: summarizes each round, and computes the gains when there is
    /// a warmup and a query round. `created_unix_s` is now.
    pub fn new(
        tool: ToolInfo,
        config: serde_json::Value,
        environment: Environment,
        rounds: &[RoundRecord],
    ) -> Self {
        let rounds: Vec<RoundResult> = rounds.iter().map(RoundResult::from_record).collect();
        let find = |k| rounds.iter().find(|r| r.kind == k).map(|r| &r.summary);
        let gains = match (find(RoundKind::Warmup), find(RoundKind::Query)) {
            (Some(w), Some(q)) => Some(Gains::between(w, q)),
            _ => None,
        };
        RunResult {
            schema_version: SCHEMA_VERSION,
            tool,
            created_unix_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            config,
            environment,
            quantile_method: QUANTILE_METHOD.to_string(),
            rounds,
            gains,
        }
    }

    /// The first round of `kind`.
    pub fn round(&self, kind: RoundKind) -> Option<&RoundResult> {
        self.rounds.iter().find(|r| r.kind == kind)
    }

    /// Pretty-printed JSON.
    pub fn to_json_string(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses a result, checking `schema_version` first so that a newer or foreign file
    /// fails with a clear message rather than a missing-field error.
    pub fn from_json_str(text: &str) -> Result<RunResult, ReportError> {
        from_versioned_json(text, "schema_version", SCHEMA_VERSION)
    }
}

/// Writes `result` to `path` as pretty JSON (with a final newline).
pub fn write_json(path: &Path, result: &RunResult) -> Result<(), ReportError> {
    let mut text = result.to_json_string()?;
    text.push('\n');
    crate::write_atomically(path, text.as_bytes()).map_err(|e| ReportError::io("write", path, e))
}

/// Reads a result written by [`write_json`]; rejects other schema versions.
pub fn read_json(path: &Path) -> Result<RunResult, ReportError> {
    let text = crate::versioned::read_result_text(path)?;
    RunResult::from_json_str(&text)
}

#[cfg(test)]
mod tests;
