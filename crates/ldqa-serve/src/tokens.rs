//! Prompt token counts and prompt identity for the prefix caches.
//!
//! Without a tokenizer, text is counted with [`ldqa_workload::approx::approx_token_count`],
//! the same rule the workload uses to plan `prompt_tokens`, so a served run and
//! `ldqa predict` see the same counts. The chat API adds the server's chat template (by
//! default Llama-3.1's, [`PromptTemplate::LLAMA3_CHAT`]; with `--model DIR` that model's
//! own), and [`PromptTemplate::LLAMA3_TOKENS_PER_EXTRA_MESSAGE`] per further message.
//!
//! Identity: the engine's [`PromptKey`] names a prompt by a hash of its text, after a
//! prefix shared by every prompt (the chat template's header). Identical prompts share
//! every block; prompts that differ share only the template header. That is exact for
//! Long Doc QA (documents start with their id; a miss prefix makes the whole prompt
//! unique); two prompts that share a long prefix but differ later (the same document
//! with different questions) are treated as sharing nothing beyond the header.

use ldqa_model::PromptTemplate;
use ldqa_sim::prompt::{fnv1a, mix, FNV_OFFSET};
use ldqa_sim::PromptKey;
use ldqa_workload::approx::approx_token_count;

/// How prompt text becomes a token count.
#[derive(Clone, Default)]
pub enum TokenCounter {
    /// The documented approximation ([`approx_token_count`]).
    #[default]
    Approx,
    /// A Hugging Face tokenizer (`tokenizer.json`). Message and prompt texts are counted
    /// without special tokens; a completions prompt then gets the ones the tokenizer adds
    /// (`added`: Llama-3's `<|begin_of_text|>`), as vLLM counts it.
    Tokenizer {
        /// The tokenizer.
        tokenizer: std::sync::Arc<tokenizers::Tokenizer>,
        /// Special tokens it adds around a text (`encode("", true)`).
        added: u64,
    },
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenCounter::Approx => f.write_str("Approx"),
            TokenCounter::Tokenizer { .. } => f.write_str("Tokenizer"),
        }
    }
}

impl TokenCounter {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, crate::ServeError> {
        let tok =
            tokenizers::Tokenizer::from_file(path).map_err(|e| crate::ServeError::Tokenizer {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let added = tok.encode("", true).map_or(0, |e| e.len() as u64);
        Ok(TokenCounter::Tokenizer {
            tokenizer: std::sync::Arc::new(tok),
            added,
        })
    }

    /// Tokens of `text` (no special tokens). A text the tokenizer fails on is counted
    /// with the approximation rather than refused.
    pub fn count(&self, text: &str) -> u64 {
        match self {
            TokenCounter::Approx => approx_token_count(text),
            TokenCounter::Tokenizer { tokenizer: t, .. } => match t.encode_fast(text, false) {
                Ok(enc) => enc.len() as u64,
                Err(_) => approx_token_count(text),
            },
        }
    }

    /// Whether counting is expensive enough to move off the async workers.
    pub fn is_slow(&self) -> bool {
        matches!(self, TokenCounter::Tokenizer { .. })
    }

    /// Special tokens a completions prompt gets (BOS): the tokenizer's, or none with the
    /// approximation (whose counts are those of `ldqa predict` without a tokenizer).
    pub fn added_to_completions(&self) -> u64 {
        match self {
            TokenCounter::Approx => 0,
            TokenCounter::Tokenizer { added, .. } => *added,
        }
    }
}

/// A prompt, flattened: its texts in order, and whether the chat template applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptText {
    /// Message contents (chat) or the one prompt (completions).
    pub parts: Vec<String>,
    /// Roles of the chat messages (empty for completions).
    pub roles: Vec<String>,
    /// Prompt given as token ids (completions only): its length is the count.
    pub token_ids: Option<u64>,
    pub chat: bool,
}

impl PromptText {
    /// Prompt tokens, the chat `template` included.
    pub fn count(&self, counter: &TokenCounter, template: &PromptTemplate) -> u64 {
        if let Some(n) = self.token_ids {
            return n;
        }
        let content: u64 = self.parts.iter().map(|p| counter.count(p)).sum();
        if self.chat {
            let extra = self.parts.len().saturating_sub(1) as u64;
            content
                + template.added_tokens
                + extra * PromptTemplate::LLAMA3_TOKENS_PER_EXTRA_MESSAGE
        } else {
            content + counter.added_to_completions()
        }
    }

    /// The engine's identity for this prompt (see the module docs).
    pub fn key(&self, template: &PromptTemplate) -> PromptKey {
        let mut h = fnv1a(if self.chat { b"chat" } else { b"text" }, FNV_OFFSET);
        for (i, part) in self.parts.iter().enumerate() {
            if let Some(role) = self.roles.get(i) {
                h = fnv1a(role.as_bytes(), h);
            }
            h = fnv1a(&[0xff], h);
            h = fnv1a(part.as_bytes(), h);
            h = fnv1a(&[0xfe], h);
        }
        if let Some(n) = self.token_ids {
            h = fnv1a(&n.to_le_bytes(), h);
        }
        PromptKey {
            content: mix(h),
            shared_prefix_tokens: if self.chat {
                template.shared_prefix_tokens
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L3: PromptTemplate = PromptTemplate::LLAMA3_CHAT;

    #[test]
    fn chat_adds_the_template_and_keys_differ_by_text() {
        let chat = |s: &str| PromptText {
            parts: vec![s.into()],
            roles: vec!["user".into()],
            token_ids: None,
            chat: true,
        };
        assert_eq!(chat("0 hi hi").count(&TokenCounter::Approx, &L3), 3 + 34);
        assert_eq!(chat("0 hi").key(&L3), chat("0 hi").key(&L3));
        assert_ne!(chat("0 hi").key(&L3), chat("1 hi").key(&L3));
        assert_eq!(chat("0 hi").key(&L3).shared_prefix_tokens, 29);
        let mut text = chat("0 hi");
        text.chat = false;
        text.roles.clear();
        assert_eq!(text.key(&L3).shared_prefix_tokens, 0);
        assert_ne!(text.key(&L3), chat("0 hi").key(&L3));
    }
}
