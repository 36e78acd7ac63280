//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while resolving a model or a GPU.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or lacks a field the sizing needs.
    #[error("malformed config {path}: {problem}")]
    MalformedConfig {
        /// Where the config came from (file path, catalog entry or URL).
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A safetensors header (or its index) is malformed.
    #[error("malformed safetensors header in {path}: {problem}")]
    MalformedSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The model name matches nothing: no local directory, no cache entry, no catalog entry.
    #[error("unknown model `{name}`{}{}", suggest_suffix(.suggestions), hub_suffix(.hub_note))]
    UnknownModel {
        /// The name as given.
        name: String,
        /// Close catalog names, best first.
        suggestions: Vec<String>,
        /// Why the Hub was not used (offline, gated, not found), when it was tried.
        hub_note: Option<String>,
    },
    /// The GPU name matches no catalog entry.
    #[error("unknown GPU `{name}`{}", suggest_suffix(.suggestions))]
    UnknownGpu {
        /// The name as given.
        name: String,
        /// Close catalog names, best first.
        suggestions: Vec<String>,
    },
    /// The Hugging Face Hub could not answer (offline, timeout, gated, not found).
    #[error("Hugging Face Hub: {0}")]
    Hub(String),
}

fn suggest_suffix(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

fn hub_suffix(note: &Option<String>) -> String {
    match note {
        Some(n) => format!(" (Hub: {n})"),
        None => String::new(),
    }
}
