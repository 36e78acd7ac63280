//! The one error type of this crate.

use std::path::PathBuf;

/// Why a workload could not be configured or built. Messages name the command-line flag
/// that holds the bad value (flags are upstream's `long_doc_qa.py` names).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// `--hit-miss-ratio` is not `HITS:MISSES` with two non-negative integers, not both 0.
    #[error("--hit-miss-ratio {value:?}: {reason} (expected HITS:MISSES, e.g. 3:1)")]
    InvalidHitMissRatio {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--repeat-mode` is not one of `random`, `tile`, `interleave`.
    #[error("--repeat-mode {value:?}: unknown mode (expected one of: random, tile, interleave)")]
    UnknownRepeatMode {
        /// The text given.
        value: String,
    },
    /// `--text-source` is not one of `hi`, `random`.
    #[error("--text-source {value:?}: unknown text source (expected one of: hi, random)")]
    UnknownTextSource {
        /// The text given.
        value: String,
    },
    /// `--num-documents` is 0.
    #[error("--num-documents must be at least 1")]
    ZeroDocuments,
    /// `--document-length` is 0.
    #[error("--document-length must be at least 1")]
    ZeroDocumentLength,
    /// `--repeat-count` is 0.
    #[error("--repeat-count must be at least 1")]
    ZeroRepeatCount,
    /// `--num-documents` × `--repeat-count` does not fit in memory addresses.
    #[error("--num-documents {num_documents} × --repeat-count {repeat_count} is too large")]
    PlanTooLarge {
        /// Documents asked for.
        num_documents: usize,
        /// Repeats asked for.
        repeat_count: usize,
    },
    /// Random-token documents were asked for without a tokenizer.
    #[error("--text-source random needs --tokenizer (random token ids are tokenizer-specific)")]
    RandomTextNeedsTokenizer,
    /// `--tokenizer` names neither a tokenizer.json file nor a directory holding one.
    #[error("--tokenizer {}: no such file, nor a directory containing tokenizer.json", path.display())]
    TokenizerNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A model folder's chat template could not be read, rendered or measured.
    #[error("chat template of {}: {message}", path.display())]
    ChatTemplate {
        /// The model folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tokenizer file could not be loaded.
    #[error("--tokenizer {}: cannot load tokenizer: {message}", path.display())]
    TokenizerLoad {
        /// The file read.
        path: PathBuf,
        /// The tokenizer library's message.
        message: String,
    },
    /// Encoding or decoding text failed.
    #[error("--tokenizer: {message}")]
    Tokenize {
        /// The tokenizer library's message.
        message: String,
    },
    /// The tokenizer has no ordinary (non-special) token to draw random text from.
    #[error("--tokenizer: the vocabulary has no non-special token to build random text from")]
    EmptyVocabulary,
    /// No text of the requested form encodes to exactly `--document-length` tokens.
    #[error(
        "--document-length {target_tokens}: document {document_id} cannot be made exactly \
         {target_tokens} tokens long with this tokenizer ({detail})"
    )]
    ExactLengthImpossible {
        /// The document concerned.
        document_id: usize,
        /// The length asked for.
        target_tokens: usize,
        /// Why, or the closest length reached.
        detail: String,
    },
    /// The temporary file that holds random-token documents could not be written or read.
    #[error(
        "--text-source random: the documents go to a temporary file in $TMPDIR, which \
         failed: {message} (set TMPDIR to a directory with room for about 5 bytes per token)"
    )]
    Spool {
        /// The I/O error.
        message: String,
    },
}

impl WorkloadError {
    /// The command-line flag the error is about.
    pub fn flag(&self) -> &'static str {
        match self {
            Self::InvalidHitMissRatio { .. } => "--hit-miss-ratio",
            Self::UnknownRepeatMode { .. } => "--repeat-mode",
            Self::UnknownTextSource { .. } | Self::RandomTextNeedsTokenizer => "--text-source",
            Self::ZeroDocuments => "--num-documents",
            Self::ZeroDocumentLength | Self::ExactLengthImpossible { .. } => "--document-length",
            Self::ZeroRepeatCount => "--repeat-count",
            Self::PlanTooLarge { .. } => "--num-documents",
            Self::TokenizerNotFound { .. }
            | Self::TokenizerLoad { .. }
            | Self::Tokenize { .. }
            | Self::EmptyVocabulary => "--tokenizer",
            Self::Spool { .. } => "--text-source",
            Self::ChatTemplate { .. } => "--model",
        }
    }

    pub(crate) fn spool(e: std::io::Error) -> Self {
        Self::Spool {
            message: e.to_string(),
        }
    }
}
