//! The one error type of this crate.

use std::path::PathBuf;

/// What went wrong while writing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("cannot {action} {path}")]
    Io {
        /// What was attempted: `read`, `write`, `create` or `append to`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing to a caller's writer (a terminal, an open file) failed.
    #[error("write failed")]
    Write(#[from] std::io::Error),
    /// The CSV writer failed.
    #[error("CSV output failed")]
    Csv(#[from] csv::Error),
    /// A result file is not valid JSON, or not the shape its version promises.
    #[error("invalid result JSON")]
    Json(#[from] serde_json::Error),
    /// A result file of another schema version.
    #[error("result file has {key} {found}; this ldqa reads {key} {supported}")]
    UnsupportedSchema {
        /// The version key checked: `schema_version` or `ab_schema_version`.
        key: &'static str,
        /// The version in the file, as written there.
        found: String,
        /// The one version this crate reads.
        supported: u32,
    },
    /// A JSON file without the version key: probably not an ldqa result.
    #[error("result file has no {key}: is it an ldqa result?")]
    MissingSchemaVersion {
        /// The version key looked for.
        key: &'static str,
    },
    /// A complete line of a record log that is not a record.
    #[error("record log {path}, line {line}: not a record")]
    RecordLog {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde_json said about it.
        #[source]
        source: serde_json::Error,
    },
    /// plotters could not draw or save a timeline.
    #[error("cannot draw the plot {path}: {message}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// plotters' description of the failure.
        message: String,
    },
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
