//! What to send, independent of how it is sent.
//!
//! A round is a list of [`RequestSpec`]s plus a [`PromptSource`] that renders each
//! prompt on demand. Prompts are not stored: 1,000 documents of 100k tokens would
//! take hundreds of megabytes, so memory grows with the requests in flight instead.

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// Position in the round (upstream's `prompt_id`).
    pub prompt_id: usize,
    /// Document the prompt is built from.
    pub document_id: usize,
    /// Whether a unique prefix is prepended to force a cache miss.
    pub is_miss: bool,
    /// The text prepended to force a miss (upstream: `"{random int} "`); `None` for hits.
    pub miss_prefix: Option<String>,
    /// Prompt length in tokens, miss prefix included, chat template not: exact when a
    /// tokenizer built the workload, else the documented approximation
    /// (`ldqa_workload::approx`).
    pub prompt_tokens: u64,
}

/// Renders prompts on demand.
pub trait PromptSource: Send + Sync {
    /// Writes the whole prompt of `spec` (miss prefix, then document) into `buf`,
    /// replacing what it held. Must be cheap: it runs just before each request is sent.
    fn write_prompt(&self, spec: &RequestSpec, buf: &mut String);
}
