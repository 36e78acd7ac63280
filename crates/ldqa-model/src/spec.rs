//! What to send, independent of how it is sent.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Which OpenAI-compatible endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `/v1/chat/completions` with one user message (upstream's default).
    Chat,
    /// `/v1/completions` with a raw prompt (`--completions`).
    Completions,
}

/// One request of a round, as planned by the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// Position in the round (upstream's `prompt_id`).
    pub prompt_id: usize,
    /// Document the prompt was built from.
    pub document_id: usize,
    /// Whether a unique prefix was prepended to force a cache miss.
    pub is_miss: bool,
    /// The prompt text. Shared: the same document appears many times in a query round.
    pub prompt: Arc<str>,
    /// Prefix prepended to force a miss (`"{n} "`), sent before `prompt`; empty for hits.
    pub miss_prefix: Option<Arc<str>>,
    /// Exact prompt length in tokens, when a tokenizer built the document.
    pub prompt_tokens: Option<u64>,
}

impl RequestSpec {
    /// The full prompt text as sent (miss prefix, then the document).
    pub fn full_prompt(&self) -> String {
        match &self.miss_prefix {
            Some(p) => format!("{p}{}", self.prompt),
            None => self.prompt.to_string(),
        }
    }
}
