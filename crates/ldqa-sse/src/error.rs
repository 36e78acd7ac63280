//! The crate's one error type.

/// What went wrong with one event. Each value stands for a single event: decoding and
/// interpretation go on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line of the event was not valid UTF-8.
    #[error("event is not valid UTF-8")]
    InvalidUtf8,
    /// A line, or the event's joined `data`, was longer than the decoder's limit.
    #[error("event line or data longer than {limit_bytes} bytes")]
    TooLarge {
        /// The decoder's limit, in bytes.
        limit_bytes: usize,
    },
    /// The event's `data` was not the JSON chunk expected from an OpenAI-compatible stream.
    #[error("malformed JSON in event data: {message}")]
    MalformedJson {
        /// serde_json's description, with line and column.
        message: String,
    },
}

impl From<serde_json::Error> for SseError {
    fn from(err: serde_json::Error) -> Self {
        SseError::MalformedJson {
            message: err.to_string(),
        }
    }
}
