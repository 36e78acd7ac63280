//! Prompt token counts and prompt identity for the prefix caches.
//!
//! Without a tokenizer, text is counted the way `ldqa_sim` counts the Long Doc QA
//! documents (`ldqa_sim::seed`): a run of letters with at most one leading space is one
//! token (Llama-3's `" hi"` is one token), a run of digits is one token per group of up
//! to three (Llama-3 splits numbers that way), any other run of symbols is one token,
//! and whitespace that does not lead a word is one token per run. So document `i`,
//! `"{i} hi hi …"` with `n` words, counts `digits(i)/3 + n` tokens, exactly as the
//! simulator counts it, and a miss prefix `"-1234567 "` counts sign + digit groups +
//! space, as `ldqa_sim::seed::miss_prefix_tokens` does.
//!
//! The chat API adds the Llama-3.1 template ([`ldqa_sim::seed::CHAT_TEMPLATE_TOKENS`]
//! for one user message, 5 more per further message: a header of 4 and `<|eot_id|>`).
//!
//! Identity: the engine's [`PromptKey`] names a prompt by a hash of its text, after a
//! prefix shared by every prompt (the chat template's header). Identical prompts share
//! every block; prompts that differ share only the template header. That is exact for
//! Long Doc QA (documents start with their id; a miss prefix makes the whole prompt
//! unique); two prompts that share a long prefix but differ later (the same document
//! with different questions) are treated as sharing nothing beyond the header.

use ldqa_sim::prompt::{fnv1a, mix};
use ldqa_sim::seed::{CHAT_TEMPLATE_SHARED_TOKENS, CHAT_TEMPLATE_TOKENS};
use ldqa_sim::PromptKey;

/// Tokens the chat template adds for each message after the first (header 4, `<|eot_id|>` 1).
pub const CHAT_TOKENS_PER_EXTRA_MESSAGE: u64 = 5;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Counts tokens of `text` without a tokenizer (see the module docs).
pub fn approx_token_count(text: &str) -> u64 {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Digit,
        Space,
        Other,
    }
    fn class(c: char) -> Class {
        if c.is_alphabetic() {
            Class::Letter
        } else if c.is_numeric() {
            Class::Digit
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let is = |i: usize, c: Class| chars.get(i).is_some_and(|&ch| class(ch) == c);
    let run_end = |mut i: usize, c: Class| {
        while is(i, c) {
            i += 1;
        }
        i
    };
    let mut tokens = 0u64;
    let mut i = 0;
    while i < chars.len() {
        match class(chars[i]) {
            Class::Letter | Class::Other => {
                i = run_end(i, class(chars[i]));
                tokens += 1;
            }
            Class::Digit => {
                let end = run_end(i, Class::Digit);
                tokens += ((end - i) as u64).div_ceil(3);
                i = end;
            }
            Class::Space => {
                if chars[i] == ' ' && is(i + 1, Class::Letter) {
                    // " hi": the space belongs to the word.
                    i = run_end(i + 1, Class::Letter);
                } else {
                    // A whitespace run, leaving a space that leads a word to that word.
                    i += 1;
                    while is(i, Class::Space) && !(chars[i] == ' ' && is(i + 1, Class::Letter)) {
                        i += 1;
                    }
                }
                tokens += 1;
            }
        }
    }
    tokens
}

/// How prompt text becomes a token count.
#[derive(Clone, Default)]
pub enum TokenCounter {
    /// The documented approximation ([`approx_token_count`]).
    #[default]
    Approx,
    /// A Hugging Face tokenizer (`tokenizer.json`); no special tokens are added.
    Tokenizer(std::sync::Arc<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenCounter::Approx => f.write_str("Approx"),
            TokenCounter::Tokenizer(_) => f.write_str("Tokenizer"),
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
        Ok(TokenCounter::Tokenizer(std::sync::Arc::new(tok)))
    }

    /// Tokens of `text` (no special tokens). A text the tokenizer fails on is counted
    /// with the approximation rather than refused.
    pub fn count(&self, text: &str) -> u64 {
        match self {
            TokenCounter::Approx => approx_token_count(text),
            TokenCounter::Tokenizer(t) => match t.encode_fast(text, false) {
                Ok(enc) => enc.len() as u64,
                Err(_) => approx_token_count(text),
            },
        }
    }

    /// Whether counting is expensive enough to move off the async workers.
    pub fn is_slow(&self) -> bool {
        matches!(self, TokenCounter::Tokenizer(_))
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
    /// Prompt tokens, chat template included.
    pub fn count(&self, counter: &TokenCounter) -> u64 {
        if let Some(n) = self.token_ids {
            return n;
        }
        let content: u64 = self.parts.iter().map(|p| counter.count(p)).sum();
        if self.chat {
            let extra = self.parts.len().saturating_sub(1) as u64;
            content + CHAT_TEMPLATE_TOKENS + extra * CHAT_TOKENS_PER_EXTRA_MESSAGE
        } else {
            content
        }
    }

    /// The engine's identity for this prompt (see the module docs).
    pub fn key(&self) -> PromptKey {
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
                CHAT_TEMPLATE_SHARED_TOKENS
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldqa_sim::seed::{miss_prefix_tokens, number_tokens};

    #[test]
    fn documents_count_like_the_simulator() {
        for (id, words) in [(0usize, 5usize), (7, 100), (1234, 3), (10_000_000, 1)] {
            let doc = format!("{id}{}", " hi".repeat(words));
            assert_eq!(
                approx_token_count(&doc),
                number_tokens(id) + words as u64,
                "{doc:.30}"
            );
        }
    }

    #[test]
    fn miss_prefixes_count_like_the_simulator() {
        for p in ["-1234567 ", "42 ", "+9 ", "10000000 "] {
            let text = format!("{p}3 hi hi");
            assert_eq!(
                approx_token_count(&text),
                miss_prefix_tokens(p) + 1 + 2,
                "{text}"
            );
        }
    }

    #[test]
    fn other_text() {
        assert_eq!(approx_token_count(""), 0);
        assert_eq!(approx_token_count("Hello, world!"), 4);
        assert_eq!(approx_token_count("a  b"), 3);
        assert_eq!(approx_token_count("line\n\nnext"), 3);
    }

    #[test]
    fn chat_adds_the_template_and_keys_differ_by_text() {
        let chat = |s: &str| PromptText {
            parts: vec![s.into()],
            roles: vec!["user".into()],
            token_ids: None,
            chat: true,
        };
        assert_eq!(chat("0 hi hi").count(&TokenCounter::Approx), 3 + 34);
        assert_eq!(chat("0 hi").key(), chat("0 hi").key());
        assert_ne!(chat("0 hi").key(), chat("1 hi").key());
        assert_eq!(chat("0 hi").key().shared_prefix_tokens, 29);
        let mut text = chat("0 hi");
        text.chat = false;
        text.roles.clear();
        assert_eq!(text.key().shared_prefix_tokens, 0);
        assert_ne!(text.key(), chat("0 hi").key());
    }
}
