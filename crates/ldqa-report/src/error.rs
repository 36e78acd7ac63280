//! The one error type of this crate.

use std::path::PathBuf;

/// What went wrong while writing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed")]
    Write(#[from] std::io::Error),
    #[error("CSV output failed")]
    Csv(#[from] csv::Error),
    #[error("invalid result JSON")]
    Json(#[from] serde_json::Error),
    #[error("result file has {key} {found}; this ldqa reads {key} {supported}")]
    UnsupportedSchema {
        key: &'static str,
        found: u64,
        supported: u32,
    },
    #[error("result file has no {key}: is it an ldqa result?")]
    MissingSchemaVersion { key: &'static str },
    #[error("record log {path}, line {line}: not a record")]
    RecordLog {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot draw the plot {path}: {message}")]
    Plot { path: PathBuf, message: String },
}

impl ReportError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ReportError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
