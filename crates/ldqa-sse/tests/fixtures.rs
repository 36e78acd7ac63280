//! Every fixture under `tests/data/` (reconstructed server streams, see its README) is
//! decoded in one piece, split at every byte boundary, byte by byte and in random
//! chunkings; all must give the same events, and those events must say what the stream
//! says (content events, text, usage, `[DONE]`, errors).

use std::path::PathBuf;

use ldqa_model::Usage;
use ldqa_sse::fuzz::{decode_chunks, Transcript};
use ldqa_sse::{parse_event, SseError, StreamData, DEFAULT_MAX_EVENT_BYTES};
use proptest::prelude::*;

/// What a fixture's events say once interpreted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    events: usize,
    content_events: usize,
    done: usize,
    server_errors: usize,
    malformed: usize,
    text: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    mid_event: bool,
}

fn tally(t: &Transcript) -> Tally {
    let mut out = Tally {
        events: t.events.len(),
        mid_event: t.mid_event,
        ..Tally::default()
    };
    for event in &t.events {
        let event = event.as_ref().expect("fixtures are valid UTF-8 and small");
        match parse_event(&event.as_event()) {
            Ok(StreamData::Done) => out.done += 1,
            Ok(StreamData::Error(_)) => out.server_errors += 1,
            Ok(StreamData::Chunk(chunk)) => {
                if chunk.has_content() {
                    out.content_events += 1;
                    out.text.push_str(chunk.text());
                }
                if let Some(reason) = chunk.finish_reason {
                    out.finish_reason = Some(reason.into_owned());
                }
                out.usage = chunk.usage.or(out.usage);
            }
            Err(SseError::MalformedJson { .. }) => out.malformed += 1,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    out
}

fn usage(prompt: u64, completion: u64, cached: Option<u64>) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        cached_tokens: cached,
    })
}

struct Case {
    file: &'static str,
    expect: Tally,
}

fn case(file: &'static str, events: usize, content_events: usize, text: &str) -> Case {
    let expect = Tally {
        events,
        content_events,
        done: 1,
        text: text.to_owned(),
        ..Tally::default()
    };
    Case { file, expect }
}

impl Case {
    fn usage(mut self, usage: Option<Usage>) -> Self {
        self.expect.usage = usage;
        self
    }
    fn finish(mut self, reason: &str) -> Self {
        self.expect.finish_reason = Some(reason.to_owned());
        self
    }
    fn errors(mut self, server_errors: usize) -> Self {
        self.expect.server_errors = server_errors;
        self
    }
    fn no_done(mut self) -> Self {
        self.expect.done = 0;
        self
    }
}

fn cases() -> Vec<Case> {
    let vllm_text = "The answer is:\ncaf\u{e9} \u{2014} done.";
    vec![
        case("vllm_chat.sse", 9, 6, vllm_text)
            .usage(usage(10001, 6, Some(9984)))
            .finish("length"),
        case("vllm_chat_crlf.sse", 9, 6, vllm_text)
            .usage(usage(10001, 6, Some(9984)))
            .finish("length"),
        case("vllm_chat_cr.sse", 9, 6, vllm_text)
            .usage(usage(10001, 6, Some(9984)))
            .finish("length"),
        case("vllm_completions.sse", 6, 4, " hi hi hi hi")
            .usage(usage(1002, 4, None))
            .finish("length"),
        case(
            "vllm_reasoning_content.sse",
            9,
            6,
            "Okay, the user asks\n\nParis.",
        )
        .usage(usage(20, 6, None))
        .finish("stop"),
        case("gptoss_reasoning.sse", 8, 4, "We need to answer.4")
            .usage(usage(75, 5, None))
            .finish("stop"),
        case("vllm_tool_calls.sse", 7, 3, "")
            .usage(usage(180, 12, None))
            .finish("tool_calls"),
        case("vllm_error.sse", 4, 1, "Part").errors(1),
        case("sglang_chat.sse", 9, 5, "Long documents are cached.")
            .usage(usage(10002, 5, Some(10000)))
            .finish("stop"),
        case("sglang_error.sse", 2, 0, "").errors(1),
        case("llamacpp_chat.sse", 11, 7, "Hello! How can I help?")
            .usage(usage(1040, 7, Some(1024)))
            .finish("stop"),
        // A legacy `error:` line is a field the standard ignores: no event at all.
        case("llamacpp_legacy_error.sse", 0, 0, "").no_done(),
        case("tgi_chat.sse", 5, 2, "OK!")
            .usage(usage(39, 3, None))
            .finish("stop"),
        case("tgi_error.sse", 4, 1, "Hi").errors(2),
        case("openai_chat.sse", 7, 3, "Hi there!")
            .usage(usage(1186, 3, Some(1024)))
            .finish("stop"),
        case("keepalive_comments.sse", 5, 2, "multi-line")
            .usage(usage(12, 2, None))
            .finish("stop"),
        case("keepalive_comments_crlf.sse", 5, 2, "multi-line")
            .usage(usage(12, 2, None))
            .finish("stop"),
        Case {
            file: "malformed.sse",
            expect: Tally {
                events: 4,
                content_events: 2,
                done: 1,
                malformed: 1,
                text: "ok still ok".into(),
                finish_reason: Some("stop".into()),
                ..Tally::default()
            },
        },
        Case {
            file: "truncated.sse",
            expect: Tally {
                events: 1,
                content_events: 1,
                text: "Hel".into(),
                mid_event: true,
                ..Tally::default()
            },
        },
        case("error_event_type.sse", 3, 1, "a").errors(2).no_done(),
    ]
}

fn read(file: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", file]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn whole(bytes: &[u8]) -> Transcript {
    decode_chunks(DEFAULT_MAX_EVENT_BYTES, [bytes])
}

#[test]
fn every_fixture_is_listed() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data"]
        .iter()
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sse"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = cases().iter().map(|c| c.file.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn fixtures_say_what_they_should() {
    for case in cases() {
        assert_eq!(
            tally(&whole(&read(case.file))),
            case.expect,
            "{}",
            case.file
        );
    }
}

#[test]
fn fixtures_decode_the_same_split_at_every_byte() {
    for case in cases() {
        let bytes = read(case.file);
        let expected = whole(&bytes);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                decode_chunks(DEFAULT_MAX_EVENT_BYTES, [a, b]),
                expected,
                "{} cut at {cut}",
                case.file
            );
        }
        let byte_by_byte = decode_chunks(DEFAULT_MAX_EVENT_BYTES, bytes.chunks(1));
        assert_eq!(byte_by_byte, expected, "{} byte by byte", case.file);
    }
}

#[test]
fn keepalive_fixture_keeps_ids_and_retry() {
    let t = whole(&read("keepalive_comments.sse"));
    let ids: Vec<Option<&str>> = t
        .events
        .iter()
        .map(|e| e.as_ref().unwrap().id.as_deref())
        .collect();
    assert_eq!(ids, [Some("1"), Some("2"), Some("3"), Some("3"), Some("3")]);
    assert_eq!(t.retry_ms, Some(3000));
}

#[test]
fn truncated_fixture_offers_the_partial_event() {
    let t = whole(&read("truncated.sse"));
    let partial = t.unterminated.unwrap().unwrap();
    assert!(partial.data.ends_with("\"fin"));
}

/// Splits `bytes` at the given cut points (taken modulo its length).
fn split_at_cuts<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out
}

proptest! {
    #[test]
    fn fixtures_decode_the_same_in_random_chunks(
        index in 0usize..64,
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let all = cases();
        let case = &all[index % all.len()];
        let bytes = read(case.file);
        let chunks = split_at_cuts(&bytes, &cuts);
        prop_assert_eq!(decode_chunks(DEFAULT_MAX_EVENT_BYTES, chunks), whole(&bytes));
    }
}
