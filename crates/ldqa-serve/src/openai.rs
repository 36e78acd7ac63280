//! OpenAI request bodies in, vLLM-shaped responses and stream chunks out.
//!
//! Accepted: `/v1/chat/completions` (`messages` with string or text-part contents)
//! and `/v1/completions` (`prompt`: a string, one string in a list, or token ids);
//! `max_tokens` (or `max_completion_tokens`), `stream`, `stream_options.include_usage`,
//! `n` = 1. Other fields (`temperature`, `logit_bias`, …) are accepted and ignored: the
//! simulated model always writes `max_tokens` tokens.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::tokens::PromptText;

/// `max_tokens` when the request gives none (OpenAI's completions default).
pub const DEFAULT_MAX_TOKENS: u32 = 16;
/// The text of every generated token.
pub const TOKEN_TEXT: &str = " hi";

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(default)]
    continuous_usage_stats: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
}

#[derive(Debug, Deserialize)]
struct Body {
    model: String,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<Prompt>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    n: Option<i64>,
}

/// The messages of a chat request, flattened.
fn chat_prompt(messages: Option<Vec<Message>>) -> Result<PromptText, ApiError> {
    let messages =
        messages.ok_or_else(|| ApiError::bad_param("messages", "missing field `messages`"))?;
    if messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let mut parts = Vec::with_capacity(messages.len());
    let mut roles = Vec::with_capacity(messages.len());
    for m in messages {
        let text = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(ps)) => {
                let mut t = String::new();
                for p in ps {
                    if p.kind != "text" {
                        return Err(ApiError::bad_param(
                            "messages",
                            format!("content part type {:?} is not supported", p.kind),
                        ));
                    }
                    t.push_str(p.text.as_deref().unwrap_or_default());
                }
                t
            }
        };
        roles.push(m.role);
        parts.push(text);
    }
    Ok(PromptText {
        parts,
        roles,
        token_ids: None,
        chat: true,
        add_special_tokens: false,
        add_generation_prompt: true,
    })
}

/// The prompt of a completions request: one text, or token ids.
fn completions_prompt(prompt: Option<Prompt>) -> Result<PromptText, ApiError> {
    let (parts, ids) = match prompt {
        None => return Err(ApiError::bad_param("prompt", "missing field `prompt`")),
        Some(Prompt::Text(t)) => (vec![t], None),
        Some(Prompt::Texts(ts)) if ts.len() == 1 => (ts, None),
        Some(Prompt::Texts(_)) => {
            return Err(ApiError::bad_param(
                "prompt",
                "exactly one prompt per request is supported",
            ))
        }
        Some(Prompt::Ids(ids)) => (Vec::new(), Some(ids.into_iter().map(u64::from).collect())),
    };
    Ok(PromptText {
        parts,
        roles: Vec::new(),
        token_ids: ids,
        chat: false,
        add_special_tokens: true,
        add_generation_prompt: true,
    })
}

/// A JSON object body as `T`, or a 400 saying what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))
}

#[derive(Debug, Deserialize)]
struct TokenizeBody {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<Prompt>,
    #[serde(default)]
    add_special_tokens: Option<bool>,
    #[serde(default)]
    add_generation_prompt: Option<bool>,
    #[serde(default)]
    return_token_strs: Option<bool>,
}

/// A `/tokenize` request (vLLM's): a completions `prompt` or chat `messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeRequest {
    /// The `model` field, when given.
    pub model: Option<String>,
    /// What to tokenize, with vLLM's defaults for `add_special_tokens` (true for a prompt,
    /// false for messages) and `add_generation_prompt` (true).
    pub prompt: PromptText,
    /// `return_token_strs`: also answer each token's string.
    pub return_token_strs: bool,
}

/// Parses a `/tokenize` body.
pub fn parse_tokenize(bytes: &[u8]) -> Result<TokenizeRequest, ApiError> {
    let body: TokenizeBody = body(bytes)?;
    let mut prompt = match (body.messages, body.prompt) {
        (Some(messages), None) => chat_prompt(Some(messages))?,
        (None, Some(Prompt::Text(text))) => completions_prompt(Some(Prompt::Text(text)))?,
        (None, Some(_)) => return Err(ApiError::bad_param("prompt", "`prompt` must be a string")),
        _ => {
            return Err(ApiError::bad_request(
                "give either `prompt` (a string) or `messages`",
            ))
        }
    };
    if let Some(add) = body.add_special_tokens {
        prompt.add_special_tokens = add;
    }
    if let Some(add) = body.add_generation_prompt {
        prompt.add_generation_prompt = add;
    }
    Ok(TokenizeRequest {
        model: body.model,
        prompt,
        return_token_strs: body.return_token_strs.unwrap_or(false),
    })
}

#[derive(Debug, Deserialize)]
struct DetokenizeBody {
    #[serde(default)]
    model: Option<String>,
    tokens: Vec<u32>,
}

/// Parses a `/detokenize` body: (model, token ids).
pub fn parse_detokenize(bytes: &[u8]) -> Result<(Option<String>, Vec<u32>), ApiError> {
    let body: DetokenizeBody = body(bytes)?;
    Ok((body.model, body.tokens))
}

/// A validated generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The `model` field (the router refuses names other than the served one).
    pub model: String,
    /// The prompt, as messages (chat) or text or token ids (completions).
    pub prompt: PromptText,
    /// `stream: true`: answer with SSE.
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    /// `stream_options.continuous_usage_stats` (vLLM's): with `include_usage`, every chunk
    /// carries the usage so far.
    pub continuous_usage: bool,
    /// Tokens to generate (`max_tokens` or `max_completion_tokens`).
    pub max_tokens: u32,
}

/// Parses and checks a body for the chat (`chat` = true) or completions endpoint.
pub fn parse(bytes: &[u8], chat: bool) -> Result<GenerateRequest, ApiError> {
    let body: Body = body(bytes)?;
    if body.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_param("n", "only n = 1 is supported"));
    }
    let max = body.max_completion_tokens.or(body.max_tokens);
    let max_tokens = match max {
        None => DEFAULT_MAX_TOKENS,
        Some(m) if m < 1 => {
            return Err(ApiError::bad_param(
                "max_tokens",
                format!("max_tokens must be at least 1, got {m}."),
            ))
        }
        Some(m) => u32::try_from(m).map_err(|_| {
            ApiError::bad_param("max_tokens", format!("max_tokens {m} is too large"))
        })?,
    };
    let prompt = if chat {
        chat_prompt(body.messages)?
    } else {
        completions_prompt(body.prompt)?
    };
    Ok(GenerateRequest {
        model: body.model,
        prompt,
        stream: body.stream.unwrap_or(false),
        include_usage: body
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        continuous_usage: body.stream_options.as_ref().is_some_and(|o| {
            o.include_usage == Some(true) && o.continuous_usage_stats == Some(true)
        }),
        max_tokens,
    })
}

/// Identity and shape of one response.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    /// The response id, e.g. `cmpl-…` or `chatcmpl-…`.
    pub id: String,
    /// `created`, seconds since the Unix epoch.
    pub created_s: u64,
    /// The model name echoed in every chunk.
    pub model: String,
    /// Chat completion chunks (`delta`) rather than text completion ones (`text`).
    pub chat: bool,
}

/// The usage object, with `prompt_tokens_details.cached_tokens`.
pub fn usage(prompt_tokens: u64, completion_tokens: u64, cached_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    })
}

impl ResponseMeta {
    fn object(&self, stream: bool) -> &'static str {
        match (self.chat, stream) {
            (true, true) => "chat.completion.chunk",
            (true, false) => "chat.completion",
            (false, _) => "text_completion",
        }
    }

    /// The first chat chunk: the assistant role, empty content (as vLLM sends it).
    pub fn role_chunk(&self) -> Value {
        json!({
            "id": self.id, "object": self.object(true), "created": self.created_s,
            "model": self.model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                         "logprobs": null, "finish_reason": null}],
        })
    }

    /// One token; the last one carries `finish_reason: "length"`.
    pub fn token_chunk(&self, last: bool) -> Value {
        let finish = if last { json!("length") } else { Value::Null };
        let choice = if self.chat {
            json!({"index": 0, "delta": {"content": TOKEN_TEXT}, "logprobs": null,
                   "finish_reason": finish, "stop_reason": null})
        } else {
            json!({"index": 0, "text": TOKEN_TEXT, "logprobs": null,
                   "finish_reason": finish, "stop_reason": null})
        };
        json!({
            "id": self.id, "object": self.object(true), "created": self.created_s,
            "model": self.model, "choices": [choice],
        })
    }

    /// `chunk` with the usage so far (`continuous_usage_stats`), as vLLM adds it.
    pub fn with_usage(mut chunk: Value, prompt_tokens: u64, completion_tokens: u64) -> Value {
        chunk["usage"] = json!({
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
        });
        chunk
    }

    /// The final usage chunk (`include_usage`): empty choices.
    pub fn usage_chunk(&self, usage: Value) -> Value {
        json!({
            "id": self.id, "object": self.object(true), "created": self.created_s,
            "model": self.model, "choices": [], "usage": usage,
        })
    }

    /// A whole, non-streamed response.
    pub fn full(&self, output_tokens: u32, usage: Value) -> Value {
        let text = TOKEN_TEXT.repeat(output_tokens as usize);
        let choice = if self.chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text},
                   "logprobs": null, "finish_reason": "length", "stop_reason": null})
        } else {
            json!({"index": 0, "text": text, "logprobs": null,
                   "finish_reason": "length", "stop_reason": null})
        };
        json!({
            "id": self.id, "object": self.object(false), "created": self.created_s,
            "model": self.model, "choices": [choice], "usage": usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_body_parses() {
        let r = parse(
            br#"{"model":"m","messages":[{"role":"user","content":"0 hi"}],"stream":true,
                "max_tokens":5,"temperature":0,"stream_options":{"include_usage":true},
                "logit_bias":{"128009":-100}}"#,
            true,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, 5);
        assert_eq!(r.prompt.parts, vec!["0 hi".to_string()]);
    }

    #[test]
    fn completions_prompt_forms() {
        let r = parse(br#"{"model":"m","prompt":["a b"]}"#, false).unwrap();
        assert_eq!(r.max_tokens, DEFAULT_MAX_TOKENS);
        let r = parse(br#"{"model":"m","prompt":[1,2,3]}"#, false).unwrap();
        assert_eq!(r.prompt.token_ids, Some(vec![1, 2, 3]));
        assert!(parse(br#"{"model":"m","prompt":["a","b"]}"#, false).is_err());
    }

    #[test]
    fn bad_bodies_are_400() {
        for (body, chat) in [
            (&b"{not json"[..], true),
            (br#"[1]"#, true),
            (br#"{"messages":[]}"#, true),
            (br#"{"model":"m"}"#, true),
            (br#"{"model":"m","messages":"hi"}"#, true),
            (
                br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                true,
            ),
            (br#"{"model":"m","prompt":"x","max_tokens":-3}"#, false),
            (br#"{"model":"m","prompt":"x","max_tokens":"5"}"#, false),
            (br#"{"model":"m"}"#, false),
        ] {
            let e = parse(body, chat).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{}", String::from_utf8_lossy(body));
        }
    }
}
