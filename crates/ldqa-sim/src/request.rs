//! Requests going into the engine and events coming out.

use ldqa_model::PrefixSource;
use serde::{Deserialize, Serialize};

use crate::{PromptKey, SimTime};

/// A request as the engine sees it: token counts and token identity, no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    /// Identity of the prompt's tokens (for the prefix caches).
    pub key: PromptKey,
    /// Prompt length in tokens (chat template included).
    pub prompt_tokens: u64,
    /// Tokens to generate (`max_tokens`; the simulated model never stops early).
    pub max_output_tokens: u32,
}

/// The engine's handle for a submitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReqId(pub u64);

/// Something that happened to a request at a point in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (the end of the engine step that produced it).
    pub at: SimTime,
    /// Which request.
    pub req: ReqId,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// Output token number `index` (0 is the first token) was produced.
    Token {
        /// 0 for the first token.
        index: u32,
    },
    /// The request finished: all its tokens were produced. Always follows its last `Token`.
    Finished {
        /// Where its prompt's KV came from (at its first scheduling).
        prefix: PrefixSource,
        /// Tokens generated.
        output_tokens: u32,
        /// Start of the step that first scheduled it (the end of its queue time).
        scheduled_at: SimTime,
    },
    /// The request was aborted by the caller; its blocks were freed.
    Aborted,
    /// The request can never run (empty prompt, no output, longer than `max_model_len`,
    /// or larger than the GPU KV cache).
    Rejected,
}

impl EventKind {
    /// True for the events that end a request (exactly one per request).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::Finished { .. } | EventKind::Aborted | EventKind::Rejected
        )
    }
}
