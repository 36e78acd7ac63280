//! A prompt's tokens: what the engine counts and what its prefix caches hash.
//!
//! Every prompt becomes a sequence of tokens, and the engine's [`PromptKey`] chains them,
//! so prompts that share a prefix (a system prompt, a conversation's earlier turns, a
//! shared document with different questions) share exactly its full blocks, as in vLLM.
//!
//! - **With a tokenizer** (`--tokenizer`, or a model folder): the tokenizer's ids. A chat
//!   request through a model folder's own chat template ([`ChatFormat::Rendered`]) is
//!   rendered whole and tokenized without added special tokens, as vLLM does; a
//!   completions prompt gets the tokenizer's special tokens (Llama-3's BOS).
//! - **Without one**: the pieces of [`ldqa_workload::approx::approx_tokens`], the same
//!   rule the workload plans `prompt_tokens` with, each named by a hash of its text.
//! - **A chat template known only by its counts** ([`ChatFormat::Counted`]; Llama-3.1's by
//!   default): stand-in tokens in the template's places. The header (the template's
//!   shared prefix) is the same in every prompt; each message after the first is preceded
//!   by [`PromptTemplate::LLAMA3_TOKENS_PER_EXTRA_MESSAGE`] tokens named by its role; the
//!   generation prompt is the rest of the template's tokens, named as the header of an
//!   assistant message. So, as with Llama-3's real template, a conversation's next turn
//!   (the previous prompt, the assistant's answer, a new user message) starts with every
//!   token of the previous turn's prompt.
//! - **Token ids** (a completions prompt given as ids): the ids.

use std::sync::Arc;

use ldqa_model::PromptTemplate;
use ldqa_sim::prompt::{fnv1a, FNV_OFFSET};
use ldqa_workload::approx::approx_tokens;
use ldqa_workload::chat_template::ChatTemplate;

/// How prompt text becomes tokens.
#[derive(Clone, Default)]
pub enum TokenCounter {
    /// The documented approximation ([`approx_tokens`]).
    #[default]
    Approx,
    /// A Hugging Face tokenizer (`tokenizer.json`).
    Tokenizer(Arc<tokenizers::Tokenizer>),
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
        Ok(TokenCounter::Tokenizer(Arc::new(tok)))
    }

    /// The tokens of `text`; `specials`: with the special tokens the tokenizer adds (BOS).
    /// A text the tokenizer fails on is split with the approximation rather than refused.
    pub fn tokens(&self, text: &str, specials: bool, out: &mut Vec<u64>) {
        if let TokenCounter::Tokenizer(t) = self {
            if let Ok(enc) = t.encode_fast(text, specials) {
                out.extend(enc.get_ids().iter().map(|&id| u64::from(id)));
                return;
            }
        }
        out.extend(approx_tokens(text).map(|piece| fnv1a(piece.as_bytes(), FNV_OFFSET)));
    }

    /// `tokens` as `/tokenize` answers them: the tokenizer's ids, or without one the
    /// approximation's stand-ins cut to 31 bits (a valid integer everywhere; not a
    /// vocabulary, so `/detokenize` cannot take them back).
    pub fn public_ids(&self, tokens: &[u64]) -> Vec<u64> {
        match self {
            TokenCounter::Tokenizer(_) => tokens.to_vec(),
            TokenCounter::Approx => tokens.iter().map(|t| t & 0x7fff_ffff).collect(),
        }
    }

    /// Each token's string (`/tokenize`'s `token_strs`); `None` without a tokenizer.
    pub fn token_strs(&self, tokens: &[u64]) -> Option<Vec<String>> {
        let TokenCounter::Tokenizer(t) = self else {
            return None;
        };
        let text = |id: u64| {
            u32::try_from(id)
                .ok()
                .and_then(|id| t.id_to_token(id))
                .unwrap_or_default()
        };
        Some(tokens.iter().map(|&id| text(id)).collect())
    }

    /// The text of `ids`, special tokens kept (`/detokenize`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        match self {
            TokenCounter::Tokenizer(t) => t.decode(ids, false).map_err(|e| e.to_string()),
            TokenCounter::Approx => Err(
                "ldqa serve has no tokenizer to detokenize with: start it with --tokenizer \
                 FILE or --model DIR"
                    .into(),
            ),
        }
    }

    /// The token the simulated model writes ([`crate::openai::TOKEN_TEXT`]), as this
    /// counter names it: a request's output continues its chain with it, so a
    /// conversation's next turn, which repeats the answer, hits the answer's blocks.
    pub fn output_token(&self) -> u64 {
        let mut out = Vec::new();
        self.tokens(crate::openai::TOKEN_TEXT, false, &mut out);
        out.first().copied().unwrap_or_default()
    }

    /// Whether tokenizing is expensive enough to move off the async workers.
    pub fn is_slow(&self) -> bool {
        matches!(self, TokenCounter::Tokenizer(_))
    }
}

/// How the chat API turns messages into tokens.
#[derive(Debug, Clone)]
pub enum ChatFormat {
    /// A model folder's own template, rendered whole and tokenized.
    Rendered(Arc<ChatTemplate>),
    /// A template known by its token counts (module docs).
    Counted(PromptTemplate),
}

impl Default for ChatFormat {
    fn default() -> Self {
        ChatFormat::Counted(PromptTemplate::LLAMA3_CHAT)
    }
}

/// A prompt as the request gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptText {
    /// Message contents (chat) or the one prompt (completions).
    pub parts: Vec<String>,
    /// Roles of the chat messages (empty for completions).
    pub roles: Vec<String>,
    /// Prompt given as token ids (completions only).
    pub token_ids: Option<Vec<u64>>,
    pub chat: bool,
    /// Add the tokenizer's special tokens (BOS) around the text: vLLM's
    /// `add_special_tokens`, true for completions, false for chat (the template writes them).
    pub add_special_tokens: bool,
    /// End a chat prompt with the assistant's header (vLLM's `add_generation_prompt`).
    pub add_generation_prompt: bool,
}

/// Names a stand-in token of a template known only by its counts.
fn stand_in(place: &str, index: u64) -> u64 {
    fnv1a(&index.to_le_bytes(), fnv1a(place.as_bytes(), !FNV_OFFSET))
}

impl PromptText {
    /// The prompt's tokens, the chat template's included. Errors when the model's own
    /// template refuses the conversation (as vLLM answers 400).
    pub fn tokens(&self, counter: &TokenCounter, chat: &ChatFormat) -> Result<Vec<u64>, String> {
        if let Some(ids) = &self.token_ids {
            return Ok(ids.clone());
        }
        let mut out = Vec::new();
        if !self.chat {
            for part in &self.parts {
                counter.tokens(part, self.add_special_tokens, &mut out);
            }
            return Ok(out);
        }
        match chat {
            ChatFormat::Rendered(template) => {
                let messages: Vec<(&str, &str)> = self
                    .roles
                    .iter()
                    .zip(&self.parts)
                    .map(|(r, p)| (r.as_str(), p.as_str()))
                    .collect();
                let text = template
                    .render(&messages, self.add_generation_prompt)
                    .map_err(|e| format!("the chat template failed: {e:#}"))?;
                counter.tokens(&text, self.add_special_tokens, &mut out);
            }
            ChatFormat::Counted(template) => self.counted_chat(counter, template, &mut out),
        }
        Ok(out)
    }

    fn counted_chat(&self, counter: &TokenCounter, template: &PromptTemplate, out: &mut Vec<u64>) {
        let header = u64::from(template.shared_prefix_tokens);
        out.extend((0..header).map(|j| stand_in("header", j)));
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                let role = self.roles.get(i).map_or("user", String::as_str);
                let per = PromptTemplate::LLAMA3_TOKENS_PER_EXTRA_MESSAGE;
                out.extend((0..per).map(|j| stand_in(role, j)));
            }
            counter.tokens(part, false, out);
        }
        if self.add_generation_prompt {
            let generation = template.added_tokens.saturating_sub(header);
            out.extend((0..generation).map(|j| stand_in("assistant", j)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L3: ChatFormat = ChatFormat::Counted(PromptTemplate::LLAMA3_CHAT);

    fn chat(messages: &[(&str, &str)]) -> PromptText {
        PromptText {
            parts: messages.iter().map(|m| m.1.to_string()).collect(),
            roles: messages.iter().map(|m| m.0.to_string()).collect(),
            token_ids: None,
            chat: true,
            add_special_tokens: false,
            add_generation_prompt: true,
        }
    }

    fn common_prefix(a: &[u64], b: &[u64]) -> usize {
        a.iter().zip(b).take_while(|(x, y)| x == y).count()
    }

    #[test]
    fn chat_adds_the_template_and_shares_only_the_header_between_documents() {
        let a = chat(&[("user", "0 hi hi")])
            .tokens(&TokenCounter::Approx, &L3)
            .unwrap();
        let b = chat(&[("user", "1 hi hi")])
            .tokens(&TokenCounter::Approx, &L3)
            .unwrap();
        assert_eq!(a.len(), 3 + 34);
        assert_eq!(common_prefix(&a, &b), 29);
        let mut text = chat(&[("user", "0 hi hi")]);
        text.chat = false;
        text.add_special_tokens = true;
        text.roles.clear();
        assert_eq!(text.tokens(&TokenCounter::Approx, &L3).unwrap().len(), 3);
    }

    #[test]
    fn the_same_system_prompt_is_a_shared_prefix() {
        let system = "You are a helpful assistant. ".repeat(20);
        let q1 = chat(&[("system", &system), ("user", "What is 2 + 2?")]);
        let q2 = chat(&[("system", &system), ("user", "Name a colour.")]);
        let (a, b) = (
            q1.tokens(&TokenCounter::Approx, &L3).unwrap(),
            q2.tokens(&TokenCounter::Approx, &L3).unwrap(),
        );
        let system_tokens = approx_tokens(&system).count();
        assert_eq!(common_prefix(&a, &b), 29 + system_tokens + 5);
    }

    #[test]
    fn a_conversations_next_turn_starts_with_the_previous_prompt() {
        let turn1 = chat(&[("user", "Tell me about caches.")]);
        let turn2 = chat(&[
            ("user", "Tell me about caches."),
            ("assistant", "They keep things."),
            ("user", "Which things?"),
        ]);
        let (a, b) = (
            turn1.tokens(&TokenCounter::Approx, &L3).unwrap(),
            turn2.tokens(&TokenCounter::Approx, &L3).unwrap(),
        );
        assert_eq!(common_prefix(&a, &b), a.len());
        // The answer (4), the next user header (5), the question (3), a generation prompt (5).
        assert_eq!(b.len(), a.len() + 4 + 5 + 3 + 5);
    }

    #[test]
    fn token_ids_are_the_tokens() {
        let ids = PromptText {
            parts: vec![],
            roles: vec![],
            token_ids: Some(vec![5, 6, 7]),
            chat: false,
            add_special_tokens: true,
            add_generation_prompt: true,
        };
        assert_eq!(ids.tokens(&TokenCounter::Approx, &L3).unwrap(), [5, 6, 7]);
    }
}
