//! What one event of an OpenAI-compatible stream (`/v1/chat/completions` or
//! `/v1/completions` with `"stream": true`) says.
//!
//! [`parse_event`] (or [`parse_data`] on the `data` alone) turns an event into a
//! [`StreamData`]: the `[DONE]` sentinel, a [`Chunk`], or a [`ServerError`]. Strings borrow
//! from the event when they contain no JSON escapes; nothing else is allocated (the
//! `choices` array is walked, not collected, and unknown fields are skipped).
//!
//! Which fields count as content follows upstream LMCache `benchmarks/long_doc_qa/long_doc_qa.py`
//! (`extract_normal_content` / `extract_reasoning_content`): chat `choices[0].delta.content`
//! when non-empty, else the first non-empty of `reasoning_content`, `reasoning`, `tool_calls`,
//! `tool_call`, `tool_responses`; completions `choices[0].text`. A chunk whose `choices` is
//! empty (the final usage chunk) never carries content.
//!
//! Error shapes recognised (see `tests/data/README.md` for where each comes from):
//! `{"error": {"message", "type", "code"}}` (OpenAI, vLLM ≥ 0.11, SGLang, llama.cpp),
//! `{"error": {"object": "error", ...}}` (older vLLM and SGLang),
//! `{"object": "error", "message", ...}` (vLLM's plain `ErrorResponse`),
//! `{"error": {"message", "http_status_code"}}` (TGI Messages API),
//! `{"error": "text", "error_type": "..."}` (TGI generate stream), and any event whose type
//! is `error`, whatever its data.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use ldqa_model::Usage;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::decoder::Event;
use crate::SseError;

/// What one event's data says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamData<'a> {
    /// `data: [DONE]`: the server says the stream is complete.
    Done,
    /// A completion chunk.
    Chunk(Chunk<'a>),
    /// The server reported an error inside the stream.
    Error(ServerError<'a>),
}

/// The parts of a `chat.completion.chunk` / `text_completion` chunk a benchmark needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// `choices` had at least one element (upstream skips chunks without).
    pub has_choice: bool,
    /// `choices[0].delta.content` (chat) or `choices[0].text` (completions), possibly empty.
    pub content: Option<Cow<'a, str>>,
    /// The first non-empty of `delta.reasoning_content` and `delta.reasoning`.
    pub reasoning: Option<Cow<'a, str>>,
    /// Elements of `delta.tool_calls`, plus those of `tool_call` and `tool_responses`
    /// (an object or non-empty string counts as one).
    pub tool_calls: u32,
    /// `choices[0].finish_reason`, when not null.
    pub finish_reason: Option<Cow<'a, str>>,
    /// `usage`, when present and not null (the final usage chunk, or every chunk with
    /// vLLM's `continuous_usage_stats`). llama.cpp's `timings.cache_n` fills
    /// `cached_tokens` when `usage.prompt_tokens_details` does not.
    pub usage: Option<Usage>,
}

impl Chunk<'_> {
    /// The chunk carries content for time-to-first-token: non-empty text, reasoning, or a
    /// tool call (upstream `has_content`).
    pub fn has_content(&self) -> bool {
        self.has_choice
            && (non_empty(&self.content) || non_empty(&self.reasoning) || self.tool_calls > 0)
    }

    /// The text to write to a response file: the content if non-empty, else the reasoning,
    /// else `""` (tool-call deltas have no text).
    pub fn text(&self) -> &str {
        [&self.content, &self.reasoning]
            .into_iter()
            .flatten()
            .map(|text| text.as_ref())
            .find(|text| !text.is_empty())
            .unwrap_or("")
    }
}

fn non_empty(text: &Option<Cow<'_, str>>) -> bool {
    text.as_deref().is_some_and(|t| !t.is_empty())
}

/// An error the server reported inside the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError<'a> {
    /// The server's message (the raw event data when it was not a JSON error object).
    pub message: Cow<'a, str>,
    /// `type` or `error_type`, e.g. `BadRequestError`, `server_error`, `generation`.
    pub error_type: Option<Cow<'a, str>>,
    /// A numeric `code` or `http_status_code` (an HTTP status in every server seen).
    pub code: Option<i64>,
}

/// Interprets an event: an event of type `error` is always a [`StreamData::Error`]
/// (with its JSON message when the data is a JSON error, else the data itself);
/// any other type is interpreted by [`parse_data`].
pub fn parse_event<'a>(event: &Event<'a>) -> Result<StreamData<'a>, SseError> {
    if event.event != "error" {
        return parse_data(event.data);
    }
    match parse_data(event.data) {
        Ok(error @ StreamData::Error(_)) => Ok(error),
        _ => Ok(StreamData::Error(ServerError {
            message: Cow::Borrowed(event.data),
            error_type: None,
            code: None,
        })),
    }
}

/// Interprets one event's `data`. Anything that is neither `[DONE]` nor a JSON object is
/// [`SseError::MalformedJson`].
pub fn parse_data(data: &str) -> Result<StreamData<'_>, SseError> {
    if data.trim_ascii() == "[DONE]" {
        return Ok(StreamData::Done);
    }
    let raw: RawChunk<'_> = serde_json::from_str(data)?;
    if let Some(error) = raw.error {
        return Ok(StreamData::Error(error.into_server_error(raw.error_type)));
    }
    if raw.object.as_ref().is_some_and(|o| o.0 == "error") {
        return Ok(StreamData::Error(ServerError {
            message: raw.message.map_or(Cow::Borrowed(""), |m| m.0),
            error_type: raw.error_kind.map(|t| t.0),
            code: raw.code.and_then(|c| c.0),
        }));
    }
    let mut chunk = Chunk::default();
    if let Some(FirstChoice(Some(choice))) = raw.choices {
        chunk.has_choice = true;
        chunk.finish_reason = choice.finish_reason.map(|f| f.0);
        match choice.delta {
            Some(delta) => {
                chunk.content = delta.content.map(|c| c.0);
                chunk.reasoning = [delta.reasoning_content, delta.reasoning]
                    .into_iter()
                    .flatten()
                    .map(|r| r.0)
                    .find(|r| !r.is_empty());
                chunk.tool_calls = [delta.tool_calls, delta.tool_call, delta.tool_responses]
                    .into_iter()
                    .flatten()
                    .fold(0u32, |sum, count| sum.saturating_add(count.0));
            }
            None => chunk.content = choice.text.map(|t| t.0),
        }
    }
    let cache_n = raw.timings.and_then(|t| t.cache_n);
    chunk.usage = match raw.usage {
        Some(usage) => Some(Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .or(cache_n),
        }),
        None => cache_n.map(|cached| Usage {
            cached_tokens: Some(cached),
            ..Usage::default()
        }),
    };
    Ok(StreamData::Chunk(chunk))
}

// ---- wire shapes ----------------------------------------------------------------------

#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(borrow)]
    choices: Option<FirstChoice<'a>>,
    usage: Option<RawUsage>,
    timings: Option<RawTimings>,
    #[serde(borrow)]
    error: Option<RawError<'a>>,
    #[serde(borrow)]
    error_type: Option<CowStr<'a>>,
    #[serde(borrow)]
    object: Option<CowStr<'a>>,
    #[serde(borrow)]
    message: Option<CowStr<'a>>,
    #[serde(borrow, rename = "type")]
    error_kind: Option<CowStr<'a>>,
    code: Option<Code>,
}

#[derive(Deserialize)]
struct RawChoice<'a> {
    #[serde(borrow)]
    delta: Option<RawDelta<'a>>,
    #[serde(borrow)]
    text: Option<CowStr<'a>>,
    #[serde(borrow)]
    finish_reason: Option<CowStr<'a>>,
}

#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(borrow)]
    content: Option<CowStr<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<CowStr<'a>>,
    #[serde(borrow)]
    reasoning: Option<CowStr<'a>>,
    tool_calls: Option<Count>,
    tool_call: Option<Count>,
    tool_responses: Option<Count>,
}

#[derive(Deserialize)]
struct RawUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<RawPromptDetails>,
}

#[derive(Deserialize)]
struct RawPromptDetails {
    cached_tokens: Option<u64>,
}

/// llama.cpp's per-request `timings`; `cache_n` is the prompt tokens reused from its cache.
#[derive(Deserialize)]
struct RawTimings {
    cache_n: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawError<'a> {
    Text(#[serde(borrow)] CowStr<'a>),
    Object(#[serde(borrow)] RawErrorObject<'a>),
}

#[derive(Deserialize)]
struct RawErrorObject<'a> {
    #[serde(borrow)]
    message: Option<CowStr<'a>>,
    #[serde(borrow, rename = "type")]
    error_kind: Option<CowStr<'a>>,
    code: Option<Code>,
    http_status_code: Option<Code>,
}

impl<'a> RawError<'a> {
    fn into_server_error(self, sibling_type: Option<CowStr<'a>>) -> ServerError<'a> {
        match self {
            RawError::Text(message) => ServerError {
                message: message.0,
                error_type: sibling_type.map(|t| t.0),
                code: None,
            },
            RawError::Object(obj) => ServerError {
                message: obj.message.map_or(Cow::Borrowed(""), |m| m.0),
                error_type: obj.error_kind.or(sibling_type).map(|t| t.0),
                code: obj
                    .code
                    .and_then(|c| c.0)
                    .or(obj.http_status_code.and_then(|c| c.0)),
            },
        }
    }
}

/// A string that borrows from the input unless it had to be unescaped.
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor(PhantomData))
    }
}

/// Only the first element of `choices`; the rest are skipped without being built.
struct FirstChoice<'a>(Option<RawChoice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for SeqVisitor<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<RawChoice<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        deserializer.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// How many tool-call entries a field holds, with Python truthiness (upstream tests the
/// field with `getattr(delta, key)`): array length, 1 for a non-empty object or string.
struct Count(u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tool calls")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0u32;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n = n.saturating_add(1);
                }
                Ok(Count(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                let mut any = false;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(Count(u32::from(any)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                Ok(Count(u32::from(!v.is_empty())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Count, E> {
                Ok(Count(u32::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u32::from(v != 0)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(u32::from(v != 0)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                Ok(Count(u32::from(v != 0.0)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// A numeric error code, given as a number or a string of digits; other strings
/// (`"rate_limit_exceeded"`) give `None`.
struct Code(Option<i64>);

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        impl<'de> Visitor<'de> for CodeVisitor {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error code")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                Ok(Code(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                Ok(Code(i64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Code, E> {
                Ok(Code(None))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                Ok(Code(v.parse().ok()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Code, E> {
                Ok(Code(None))
            }
        }
        deserializer.deserialize_any(CodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &str) -> Chunk<'_> {
        match parse_data(data).unwrap() {
            StreamData::Chunk(chunk) => chunk,
            other => panic!("expected a chunk, got {other:?}"),
        }
    }

    fn error(data: &str) -> ServerError<'_> {
        match parse_data(data).unwrap() {
            StreamData::Error(error) => error,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn done_sentinel() {
        assert_eq!(parse_data("[DONE]").unwrap(), StreamData::Done);
        assert_eq!(parse_data(" [DONE] ").unwrap(), StreamData::Done);
    }

    #[test]
    fn role_only_delta_is_not_content() {
        let c = chunk(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        );
        assert!(c.has_choice && !c.has_content());
        assert_eq!(c.content.as_deref(), Some(""));
    }

    #[test]
    fn chat_content_borrows_unless_escaped() {
        let c = chunk(r#"{"choices":[{"delta":{"content":"Hello"}}]}"#);
        assert!(c.has_content());
        assert!(matches!(c.content, Some(Cow::Borrowed("Hello"))));
        let c = chunk(r#"{"choices":[{"delta":{"content":"a\nb"}}]}"#);
        assert_eq!(c.text(), "a\nb");
        assert!(matches!(c.content, Some(Cow::Owned(_))));
    }

    #[test]
    fn reasoning_fields_count_as_content() {
        let c = chunk(r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}]}"#);
        assert!(c.has_content());
        assert_eq!(c.text(), "think");
        // gpt-oss style, and newer vLLM that sends both (reasoning_content empty first).
        let c = chunk(r#"{"choices":[{"delta":{"reasoning_content":"","reasoning":"r"}}]}"#);
        assert_eq!((c.reasoning.as_deref(), c.text()), (Some("r"), "r"));
        // Content wins over reasoning for the text.
        let c = chunk(r#"{"choices":[{"delta":{"content":"c","reasoning":"r"}}]}"#);
        assert_eq!(c.text(), "c");
    }

    #[test]
    fn tool_calls_count_as_content_without_text() {
        let c = chunk(
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}},{"index":1}]}}]}"#,
        );
        assert_eq!((c.tool_calls, c.has_content(), c.text()), (2, true, ""));
        let c = chunk(
            r#"{"choices":[{"delta":{"tool_calls":[],"tool_call":{},"tool_responses":null}}]}"#,
        );
        assert_eq!((c.tool_calls, c.has_content()), (0, false));
        let c = chunk(r#"{"choices":[{"delta":{"tool_call":{"name":"f"}}}]}"#);
        assert_eq!(c.tool_calls, 1);
    }

    #[test]
    fn completions_text_and_finish_reason() {
        let c = chunk(
            r#"{"object":"text_completion","choices":[{"index":0,"text":" hi","logprobs":null,"finish_reason":"length","stop_reason":null}]}"#,
        );
        assert_eq!(
            (c.text(), c.finish_reason.as_deref(), c.has_content()),
            (" hi", Some("length"), true)
        );
    }

    #[test]
    fn final_usage_chunk_with_empty_choices() {
        let c = chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":10001,"total_tokens":10101,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":9984}}}"#,
        );
        assert!(!c.has_choice && !c.has_content());
        let usage = Usage {
            prompt_tokens: Some(10001),
            completion_tokens: Some(100),
            cached_tokens: Some(9984),
        };
        assert_eq!(c.usage, Some(usage));
        let c = chunk(r#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#);
        assert_eq!(c.usage, None);
    }

    #[test]
    fn llama_cpp_timings_fill_cached_tokens() {
        let c = chunk(
            r#"{"choices":[],"usage":{"completion_tokens":5,"prompt_tokens":40,"total_tokens":45},"timings":{"cache_n":32,"prompt_n":8}}"#,
        );
        assert_eq!(c.usage.unwrap().cached_tokens, Some(32));
    }

    #[test]
    fn only_first_choice_is_read() {
        let c = chunk(
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}},{"x":[1,{"y":2}]}]}"#,
        );
        assert_eq!(c.text(), "a");
    }

    #[test]
    fn error_shapes() {
        let e = error(
            r#"{"error":{"message":"boom","type":"BadRequestError","param":null,"code":400}}"#,
        );
        assert_eq!(
            (e.message.as_ref(), e.error_type.as_deref(), e.code),
            ("boom", Some("BadRequestError"), Some(400))
        );
        let e = error(
            r#"{"error":{"object":"error","message":"old","type":"BadRequestError","param":null,"code":400}}"#,
        );
        assert_eq!((e.message.as_ref(), e.code), ("old", Some(400)));
        let e = error(
            r#"{"object":"error","message":"flat","type":"InternalServerError","param":null,"code":500}"#,
        );
        assert_eq!(
            (e.message.as_ref(), e.error_type.as_deref(), e.code),
            ("flat", Some("InternalServerError"), Some(500))
        );
        let e = error(r#"{"error":{"message":"Input validation error","http_status_code":422}}"#);
        assert_eq!(
            (e.message.as_ref(), e.code),
            ("Input validation error", Some(422))
        );
        let e = error(r#"{"error":"Request failed during generation","error_type":"generation"}"#);
        assert_eq!(
            (e.message.as_ref(), e.error_type.as_deref()),
            ("Request failed during generation", Some("generation"))
        );
        let e = error(
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.code, None);
    }

    #[test]
    fn error_event_type() {
        let ev = Event {
            event: "error",
            data: "upstream went away",
            id: None,
        };
        let StreamData::Error(e) = parse_event(&ev).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(e.message, "upstream went away");
        let ev = Event {
            event: "error",
            data: r#"{"error":{"message":"m","code":503}}"#,
            id: None,
        };
        let StreamData::Error(e) = parse_event(&ev).unwrap() else {
            panic!("not an error")
        };
        assert_eq!((e.message.as_ref(), e.code), ("m", Some(503)));
        let ev = Event {
            event: "message",
            data: "[DONE]",
            id: None,
        };
        assert_eq!(parse_event(&ev).unwrap(), StreamData::Done);
    }

    #[test]
    fn malformed_json_is_a_typed_error() {
        for bad in [
            "",
            "{",
            "not json",
            "[1,2]",
            "\"text\"",
            r#"{"choices":{}}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
        ] {
            assert!(
                matches!(parse_data(bad), Err(SseError::MalformedJson { .. })),
                "{bad:?}"
            );
        }
    }
}
