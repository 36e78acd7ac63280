//! A crash-safe JSONL log of finished requests: one `{"round": …, "record": …}` per line.
//!
//! Each line is written with a single `write_all` on an unbuffered file as the request
//! finishes, so a crash or Ctrl-C loses at most the line being written. Reading tolerates
//! a truncated last line (reported in [`RecordLogContents::truncated_tail`]); a bad line
//! anywhere else is an error.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ldqa_model::{RequestRecord, RoundKind};
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordLogEntry {
    /// The round the request belonged to.
    pub round: RoundKind,
    /// The finished request.
    pub record: RequestRecord,
}

/// An open log, appended to as requests finish.
#[derive(Debug)]
pub struct RecordLog {
    file: File,
    path: PathBuf,
    line: String,
}

impl RecordLog {
    /// Creates (or truncates) the log at `path`.
    pub fn create(path: &Path) -> Result<RecordLog, ReportError> {
        let file = File::create(path).map_err(|e| ReportError::io("create", path, e))?;
        Ok(RecordLog {
            file,
            path: path.to_path_buf(),
            line: String::new(),
        })
    }

    /// Appends one record and hands it to the OS before returning.
    pub fn append(&mut self, round: &RoundKind, record: &RequestRecord) -> Result<(), ReportError> {
        #[derive(Serialize)]
        struct Line<'a> {
            round: &'a RoundKind,
            record: &'a RequestRecord,
        }
        self.line.clear();
        self.line
            .push_str(&serde_json::to_string(&Line { round, record })?);
        self.line.push('\n');
        self.file
            .write_all(self.line.as_bytes())
            .map_err(|e| ReportError::io("append to", &self.path, e))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a log held.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordLogContents {
    /// The complete lines, in the order they were written.
    pub entries: Vec<RecordLogEntry>,
    /// The last line was incomplete (the writer was killed mid-line) and was skipped.
    pub truncated_tail: bool,
}

/// Reads a log written by [`RecordLog`].
pub fn read_record_log(path: &Path) -> Result<RecordLogContents, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io("read", path, e))?;
    let lines: Vec<&str> = text.split('\n').collect();
    let mut entries = Vec::new();
    let mut truncated_tail = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RecordLogEntry>(line) {
            Ok(e) => entries.push(e),
            // Only the final line, with no newline after it, may be cut short.
            Err(_) if i + 1 == lines.len() => truncated_tail = true,
            Err(source) => {
                return Err(ReportError::RecordLog {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                })
            }
        }
    }
    Ok(RecordLogContents {
        entries,
        truncated_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rich_round;

    #[test]
    fn appends_and_reads_back_even_when_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let round = rich_round(RoundKind::Query);
        let mut log = RecordLog::create(&path).unwrap();
        for r in &round.requests {
            log.append(&RoundKind::Query, r).unwrap();
        }
        // Visible on disk without closing the log.
        let back = read_record_log(&path).unwrap();
        assert!(!back.truncated_tail);
        let records: Vec<_> = back.entries.iter().map(|e| e.record.clone()).collect();
        assert_eq!(records, round.requests);
        assert!(back.entries.iter().all(|e| e.round == RoundKind::Query));

        // Cut the file in the middle of its last line.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        let cut = read_record_log(&path).unwrap();
        assert!(cut.truncated_tail);
        assert_eq!(cut.entries.len(), round.requests.len() - 1);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let r = &rich_round(RoundKind::Warmup).requests[0];
        let mut log = RecordLog::create(&path).unwrap();
        log.append(&RoundKind::Warmup, r).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text = format!("{{\"round\": \"warmup\"\n{text}");
        std::fs::write(&path, text).unwrap();
        let err = read_record_log(&path).unwrap_err();
        assert!(err.to_string().ends_with("line 1: not a record"), "{err}");
    }
}
