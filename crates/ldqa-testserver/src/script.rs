//! What the scripted server answers ([`Reply`], given a [`RequestInfo`]), and helpers to
//! write OpenAI-shaped streams.

use std::time::Duration;

use serde_json::{json, Value};

/// A request as the behaviour sees it: the script's input, parsed by the server.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Arrival order over the server's life, from 0.
    pub index: usize,
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl RequestInfo {
    /// A header's value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The prompt: `messages[0].content` for chat, `prompt` for completions.
    pub fn prompt(&self) -> Option<&str> {
        self.body["messages"][0]["content"]
            .as_str()
            .or_else(|| self.body["prompt"].as_str())
    }
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with a JSON body.
    Json(u16, Value),
    /// A complete response with a text body and content type.
    Text(u16, String, &'static str),
    /// `200 text/event-stream`, chunked, played step by step.
    Stream(Vec<Step>),
    /// Close the connection before writing anything.
    DropConnection,
    /// These bytes as they are (status line, headers, body: broken framing, HTTP/1.0, a
    /// compressed body), then the connection closes.
    Wire(Vec<u8>),
}

/// One step of a streamed reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait (tokio time: exact under a paused clock).
    Sleep(Duration),
    /// Write `data: {payload}\n\n` as one chunk.
    Data(String),
    /// Write `data: {payload}\n\n` and record it as the first-token moment if none yet.
    Token(String),
    /// Write raw bytes as one chunk (comments, CRLF streams, partial events, `event:` lines).
    Raw(Vec<u8>),
    /// Close the connection without finishing the chunked body.
    Cut,
    /// Keep the connection open and write nothing more, until the client goes away.
    Stall,
}

/// `data: [DONE]`.
pub fn done() -> Step {
    Step::Data("[DONE]".to_owned())
}

/// A chat chunk carrying only the assistant role (vLLM and OpenAI send one first).
pub fn role_chunk() -> Step {
    Step::Data(
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "scripted-model",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
        .to_string(),
    )
}

/// A chat chunk with `delta.content`.
pub fn content_chunk(text: &str) -> Step {
    Step::Token(
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "scripted-model",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        .to_string(),
    )
}

/// A chat chunk with `delta.reasoning_content` (reasoning models behind vLLM's parser).
pub fn reasoning_chunk(text: &str) -> Step {
    Step::Token(
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "scripted-model",
               "choices": [{"index": 0, "delta": {"reasoning_content": text}, "finish_reason": null}]})
        .to_string(),
    )
}

/// The final usage chunk with empty `choices` (`stream_options.include_usage`).
pub fn usage_chunk(prompt_tokens: u64, completion_tokens: u64, cached_tokens: Option<u64>) -> Step {
    let mut usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens});
    if let Some(c) = cached_tokens {
        usage["prompt_tokens_details"] = json!({"cached_tokens": c});
    }
    Step::Data(
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "scripted-model",
               "choices": [], "usage": usage})
        .to_string(),
    )
}

/// A whole chat stream: role chunk, `first_token_delay`, one content chunk per piece,
/// usage, `[DONE]`.
pub fn chat_stream(first_token_delay: Duration, pieces: &[&str], prompt_tokens: u64) -> Vec<Step> {
    let mut steps = vec![role_chunk(), Step::Sleep(first_token_delay)];
    steps.extend(pieces.iter().map(|p| content_chunk(p)));
    steps.push(usage_chunk(prompt_tokens, pieces.len() as u64, None));
    steps.push(done());
    steps
}

/// A whole `/v1/completions` stream with `choices[0].text` pieces, usage, `[DONE]`.
pub fn completion_stream(
    first_token_delay: Duration,
    pieces: &[&str],
    prompt_tokens: u64,
) -> Vec<Step> {
    let mut steps = vec![Step::Sleep(first_token_delay)];
    for p in pieces {
        steps.push(Step::Token(
            json!({"id": "cmpl-test", "object": "text_completion", "model": "scripted-model",
                   "choices": [{"index": 0, "text": p, "finish_reason": null}]})
            .to_string(),
        ));
    }
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": pieces.len(),
                       "total_tokens": prompt_tokens + pieces.len() as u64});
    steps.push(Step::Data(
        json!({"id": "cmpl-test", "object": "text_completion", "model": "scripted-model",
               "choices": [], "usage": usage})
        .to_string(),
    ));
    steps.push(done());
    steps
}

/// Answers the non-generation routes the way vLLM does: `/v1/models`, `/health`,
/// `/metrics` (empty counters); anything else is 404.
pub fn default_reply(req: &RequestInfo) -> Reply {
    match req.path.as_str() {
        "/v1/models" => Reply::Json(
            200,
            json!({"object": "list", "data": [{"id": "scripted-model", "object": "model", "owned_by": "ldqa"}]}),
        ),
        "/health" => Reply::Text(200, String::new(), "text/plain"),
        "/metrics" => Reply::Text(200, String::new(), "text/plain; version=0.0.4"),
        _ => Reply::Json(
            404,
            json!({"object": "error", "message": "Not Found", "code": 404}),
        ),
    }
}
