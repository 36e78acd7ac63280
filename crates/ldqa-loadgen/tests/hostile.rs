//! The reliability review's hostile servers (`../shared/reviews/reliability-2026-12.md`,
//! cases A1–A16), scripted with `ldqa-testserver` so they stay handled: every one ends as a
//! success or as a failure of the right kind, named clearly, and none hangs the round.
//! (Memory stayed bounded in the review's runs; that is measured there, not asserted here.)

use std::time::Duration;

use ldqa_loadgen::{run_round, Cancel, Client, ClientConfig, Endpoint, NoObserver};
use ldqa_model::{Api, FailureKind, PromptSource, RequestSpec, RoundKind};
use ldqa_testserver::{
    content_chunk, default_reply, done, role_chunk, Reply, ScriptedServer, Step,
};

/// Prompts are "p{prompt_id}": the server answers prompt `i` with case `i`.
struct Prompts;

impl PromptSource for Prompts {
    fn write_prompt(&self, spec: &RequestSpec, buf: &mut String) {
        buf.clear();
        buf.push_str(&format!("p{}", spec.prompt_id));
    }
}

/// One hostile answer and what the client must make of it.
struct Case {
    id: &'static str,
    reply: fn() -> Reply,
    /// `None`: the request succeeds.
    expect: Option<FailureKind>,
    /// A phrase the failure's message must contain.
    names: &'static str,
}

/// A chat event with `content`.
fn event(content: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"choices": [{"index": 0, "delta": {"content": content}}]})
    )
}

/// A whole HTTP/1.1 response with `head` lines and `body` as written, nothing checked.
fn wire(head: &str, body: &[u8]) -> Reply {
    let mut bytes =
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{head}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    Reply::Wire(bytes)
}

const CASES: &[Case] = &[
    Case {
        id: "A1 an event with 10 MB of content",
        reply: || {
            Reply::Stream(vec![
                role_chunk(),
                content_chunk(&"x".repeat(10 << 20)),
                done(),
            ])
        },
        expect: None,
        names: "",
    },
    Case {
        id: "A2 a 10 MB data line without a newline, then close",
        reply: || {
            let mut line = b"data: ".to_vec();
            line.resize(10 << 20, b'x');
            Reply::Stream(vec![role_chunk(), Step::Raw(line), Step::Cut])
        },
        expect: Some(FailureKind::TruncatedStream),
        names: "",
    },
    Case {
        id: "A4 tokens without end",
        reply: || {
            let mut steps = vec![role_chunk()];
            for _ in 0..20_000 {
                steps.push(content_chunk("a"));
                steps.push(Step::Sleep(Duration::from_millis(1)));
            }
            Reply::Stream(steps)
        },
        expect: Some(FailureKind::Timeout),
        names: "--request-timeout",
    },
    Case {
        id: "A5 invalid UTF-8 in an event",
        reply: || {
            Reply::Stream(vec![
                role_chunk(),
                Step::Raw(
                    b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n".to_vec(),
                ),
                done(),
            ])
        },
        expect: Some(FailureKind::MalformedEvent),
        names: "UTF-8",
    },
    Case {
        id: "A6 an array where an event belongs",
        reply: || Reply::Stream(vec![role_chunk(), Step::Data("[1,2,3]".into()), done()]),
        expect: Some(FailureKind::MalformedEvent),
        names: "",
    },
    Case {
        id: "A6 a string where an event belongs",
        reply: || Reply::Stream(vec![role_chunk(), Step::Data("\"str\"".into()), done()]),
        expect: Some(FailureKind::MalformedEvent),
        names: "",
    },
    Case {
        id: "A6 choices that are not a list",
        reply: || {
            Reply::Stream(vec![
                role_chunk(),
                Step::Data(r#"{"choices":"x"}"#.into()),
                done(),
            ])
        },
        expect: Some(FailureKind::MalformedEvent),
        names: "",
    },
    Case {
        id: "A7 data: without a space (valid SSE)",
        reply: || {
            let body = r#"data:{"choices":[{"index":0,"delta":{"content":"a"}}]}"#.to_string()
                + "\n\ndata:[DONE]\n\n";
            Reply::Stream(vec![role_chunk(), Step::Raw(body.into_bytes())])
        },
        expect: None,
        names: "",
    },
    Case {
        id: "A8 a chunk-size line that is not hexadecimal",
        reply: || wire("transfer-encoding: chunked\r\n", b"zz\r\ndata: x\r\n"),
        expect: Some(FailureKind::TruncatedStream),
        names: "",
    },
    Case {
        id: "A9 Content-Length larger than the body, then close",
        reply: || {
            let body = event("a");
            wire(
                &format!("content-length: {}\r\n", body.len() + 100),
                body.as_bytes(),
            )
        },
        expect: Some(FailureKind::TruncatedStream),
        names: "",
    },
    Case {
        id: "A10 Content-Length smaller than the body",
        reply: || {
            let body = event("a") + "data: [DONE]\n\n";
            wire("content-length: 10\r\n", body.as_bytes())
        },
        expect: Some(FailureKind::TruncatedStream),
        names: "",
    },
    Case {
        id: "A12 a gzip body nobody asked for",
        reply: || {
            // The gzip magic and garbage: the client must not try to read it as events.
            wire(
                "content-encoding: gzip\r\ncontent-length: 12\r\n",
                b"\x1f\x8b\x08\x00garbage!",
            )
        },
        expect: Some(FailureKind::TruncatedStream),
        names: "Content-Encoding gzip",
    },
    Case {
        id: "A13 an HTTP/1.0 response whose body ends at close",
        reply: || {
            let body = event("a") + "data: [DONE]\n\n";
            let mut bytes = b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n".to_vec();
            bytes.extend_from_slice(body.as_bytes());
            Reply::Wire(bytes)
        },
        expect: None,
        names: "",
    },
    Case {
        id: "A14 a stream that ends without [DONE]",
        reply: || Reply::Stream(vec![role_chunk(), content_chunk("a")]),
        expect: Some(FailureKind::TruncatedStream),
        names: "[DONE]",
    },
    Case {
        id: "A15 the connection closed after the first token",
        reply: || Reply::Stream(vec![role_chunk(), content_chunk("a"), Step::Cut]),
        expect: Some(FailureKind::TruncatedStream),
        names: "",
    },
    Case {
        id: "A16 429 with Retry-After (no retry, as upstream)",
        reply: || {
            Reply::Wire(
                b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 31\r\n\r\n{\"error\":{\"message\":\"slow down\"}}"
                    .to_vec(),
            )
        },
        expect: Some(FailureKind::HttpStatus),
        names: "429",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_answer_ends_as_a_success_or_a_named_failure() {
    let server = ScriptedServer::start(|req| {
        let case = req
            .prompt()
            .and_then(|p| p.strip_prefix('p'))
            .and_then(|i| i.parse::<usize>().ok());
        match case {
            Some(i) => (CASES[i].reply)(),
            None => default_reply(req),
        }
    })
    .await
    .unwrap();
    let endpoint = Endpoint::new(&server.base_url(), None).unwrap();
    let mut config = ClientConfig::new(endpoint, "scripted-model".into(), Api::Chat, 4);
    config.request_timeout = Some(Duration::from_secs(2));
    let client = Client::new(config).unwrap();
    let specs: Vec<RequestSpec> = (0..CASES.len())
        .map(|i| RequestSpec {
            prompt_id: i,
            document_id: i,
            is_miss: false,
            miss_prefix: None,
            prompt_tokens: 0,
        })
        .collect();
    let round = run_round(
        &client,
        RoundKind::Query,
        &specs,
        &Prompts,
        4,
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    let mut wrong = Vec::new();
    for (case, record) in CASES.iter().zip(&round.requests) {
        let got = record.failure.as_ref().map(|f| f.kind);
        let message = record.failure.as_ref().map_or("", |f| f.message.as_str());
        if got != case.expect || !message.contains(case.names) {
            wrong.push(format!(
                "{}: expected {:?} naming {:?}, got {got:?}: {message}",
                case.id, case.expect, case.names
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // No retry: each case was asked once.
    let asked = server
        .served()
        .iter()
        .filter(|s| s.request.prompt().is_some())
        .count();
    assert_eq!(asked, CASES.len());
}
