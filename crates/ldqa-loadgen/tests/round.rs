//! The client and the round runner against the scripted server on 127.0.0.1:0.
//!
//! Timing assertions are causal only (the client cannot see a token before the server
//! wrote it), so they hold on any machine, however loaded: speed is measured in the
//! benchmark, not here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ldqa_loadgen::{
    run_protocol, run_round, Cancel, Client, ClientConfig, Endpoint, NoObserver, ProtocolOptions,
};
use ldqa_model::{
    Api, Arrival, FailureKind, Plan, PlannedRound, PromptSource, RequestSpec, RoundKind,
};
use ldqa_testserver::{
    chat_stream, content_chunk, default_reply, done, reasoning_chunk, role_chunk, usage_chunk,
    Reply, ScriptedServer, Step,
};

/// Prompts are "p{prompt_id}" so the server can script per request.
struct Prompts;

impl PromptSource for Prompts {
    fn write_prompt(&self, spec: &RequestSpec, buf: &mut String) {
        buf.clear();
        buf.push_str(&format!("p{}", spec.prompt_id));
    }
}

fn specs(n: usize) -> Vec<RequestSpec> {
    (0..n)
        .map(|i| RequestSpec {
            prompt_id: i,
            document_id: i % 3,
            is_miss: i % 2 == 1,
            miss_prefix: None,
            prompt_tokens: 0,
        })
        .collect()
}

fn prompt_index(req: &ldqa_testserver::RequestInfo) -> Option<usize> {
    req.prompt()?.strip_prefix('p')?.parse().ok()
}

/// A server that answers every generation request (prompt `p{i}`) with `reply(i)` and
/// everything else the default way.
async fn serving(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> ScriptedServer {
    ScriptedServer::start(move |req| match prompt_index(req) {
        Some(i) => reply(i),
        None => default_reply(req),
    })
    .await
    .unwrap()
}

fn client(server: &ScriptedServer, api: Api) -> Client {
    let endpoint = Endpoint::new(&server.base_url(), Some("sk-test".into())).unwrap();
    let mut config = ClientConfig::new(endpoint, "scripted-model".into(), api, 8);
    config.request_timeout = Some(Duration::from_secs(20));
    Client::new(config).unwrap()
}

/// `n` requests (`p0`…) with at most `inflight` in flight, no observer, never cancelled.
async fn round(c: &Client, kind: RoundKind, n: usize, inflight: usize) -> ldqa_model::RoundRecord {
    run_round(
        c,
        kind,
        &specs(n),
        &Prompts,
        inflight,
        &NoObserver,
        &Cancel::new(),
    )
    .await
}

#[tokio::test]
async fn concurrency_never_exceeds_the_cap_and_every_request_is_recorded_once() {
    let server =
        serving(move |_| Reply::Stream(chat_stream(Duration::from_millis(15), &["a", "b"], 10)))
            .await;
    let c = client(&server, Api::Chat);
    let round = round(&c, RoundKind::Query, 12, 3).await;
    assert_eq!(round.requests.len(), 12);
    assert!(
        round.requests.iter().all(|r| r.is_success()),
        "{:?}",
        round.requests
    );
    let ids: Vec<usize> = round.requests.iter().map(|r| r.prompt_id).collect();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
    assert!(
        server.max_in_flight() <= 3,
        "server saw {} at once",
        server.max_in_flight()
    );
    assert_eq!(
        server.max_in_flight(),
        3,
        "the cap should be reached with 12 requests"
    );
    // Sent in order: each request is sent no earlier than the one before it.
    for pair in round.requests.windows(2) {
        assert!(pair[0].sent_ns <= pair[1].sent_ns);
    }
}

#[tokio::test]
async fn ttft_is_measured_from_send_to_the_servers_first_token() {
    let delay = Duration::from_millis(60);
    let server = serving(move |_| Reply::Stream(chat_stream(delay, &["x", "y", "z"], 42))).await;
    let c = client(&server, Api::Chat);
    let start = tokio::time::Instant::now();
    let round = round(&c, RoundKind::Warmup, 4, 2).await;
    let served = server.served();
    let gens: Vec<_> = served
        .iter()
        .filter(|s| s.request.path == "/v1/chat/completions")
        .collect();
    for r in &round.requests {
        let s = gens
            .iter()
            .find(|s| prompt_index(&s.request) == Some(r.prompt_id))
            .unwrap();
        let server_first = s.first_token_at.unwrap().duration_since(start).as_nanos() as u64;
        let server_received = s.received_at.duration_since(start).as_nanos() as u64;
        let first = r.first_token_ns.unwrap();
        assert!(
            r.sent_ns <= server_received,
            "sent after the server received it"
        );
        assert!(
            first >= server_first,
            "client saw the token before the server wrote it"
        );
        assert!(r.ttft_ns().unwrap() >= delay.as_nanos() as u64);
        assert!(r.end_ns >= r.last_token_ns.unwrap());
        assert_eq!(r.content_events, 3);
        assert_eq!(r.usage.unwrap().prompt_tokens, Some(42));
        assert_eq!(r.usage.unwrap().completion_tokens, Some(3));
    }
}

#[tokio::test]
async fn failures_are_classified_and_the_round_goes_on() {
    let server = ScriptedServer::start(|req| {
        let Some(i) = prompt_index(req) else {
            return default_reply(req);
        };
        let ok = || chat_stream(Duration::ZERO, &["ok"], 5);
        match i {
            0 => Reply::Json(
                500,
                serde_json::json!({"object": "error", "message": "boom"}),
            ),
            1 => Reply::DropConnection,
            2 => Reply::Stream(vec![role_chunk(), content_chunk("a"), Step::Cut]),
            3 => Reply::Stream(vec![role_chunk(), Step::Data("{not json".into()), done()]),
            4 => Reply::Stream(vec![
                role_chunk(),
                Step::Data(
                    r#"{"object":"error","message":"KV cache exhausted","code":500}"#.into(),
                ),
            ]),
            5 => Reply::Stream(vec![role_chunk(), usage_chunk(5, 0, None), done()]),
            6 => Reply::Stream(vec![role_chunk(), content_chunk("a")]), // clean end, no [DONE]
            7 => Reply::Json(429, serde_json::json!({"error": {"message": "slow down"}})),
            _ => Reply::Stream(ok()),
        }
    })
    .await
    .unwrap();
    let c = client(&server, Api::Chat);
    let round = round(&c, RoundKind::Query, 10, 2).await;
    let kinds: Vec<Option<FailureKind>> = round
        .requests
        .iter()
        .map(|r| r.failure.as_ref().map(|f| f.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            Some(FailureKind::HttpStatus),
            Some(FailureKind::Connect),
            Some(FailureKind::TruncatedStream),
            Some(FailureKind::MalformedEvent),
            Some(FailureKind::ErrorEvent),
            Some(FailureKind::NoContent),
            Some(FailureKind::TruncatedStream),
            Some(FailureKind::HttpStatus),
            None,
            None,
        ]
    );
    let r0 = &round.requests[0];
    assert_eq!(r0.failure.as_ref().unwrap().http_status, Some(500));
    assert!(r0.failure.as_ref().unwrap().message.contains("boom"));
    assert_eq!(
        round.requests[7].failure.as_ref().unwrap().http_status,
        Some(429)
    );
    assert!(round.requests[4]
        .failure
        .as_ref()
        .unwrap()
        .message
        .contains("KV cache exhausted"));
    // The truncated stream still kept what it measured before the cut.
    assert!(round.requests[2].first_token_ns.is_some());
}

#[tokio::test]
async fn a_stalled_stream_times_out() {
    let server = serving(move |_| Reply::Stream(vec![role_chunk(), Step::Stall])).await;
    let endpoint = Endpoint::new(&server.base_url(), None).unwrap();
    let mut config = ClientConfig::new(endpoint, "m".into(), Api::Chat, 4);
    config.request_timeout = Some(Duration::from_millis(150));
    let c = Client::new(config).unwrap();
    let round = round(&c, RoundKind::Query, 2, 2).await;
    for r in &round.requests {
        assert_eq!(r.failure.as_ref().unwrap().kind, FailureKind::Timeout);
        assert!(r.latency_ns() >= 150_000_000);
    }
}

#[tokio::test]
async fn reasoning_deltas_count_as_the_first_token() {
    let server = serving(move |_| {
        Reply::Stream(vec![
            role_chunk(),
            reasoning_chunk("thinking"),
            Step::Sleep(Duration::from_millis(40)),
            content_chunk("answer"),
            usage_chunk(3, 2, Some(2)),
            done(),
        ])
    })
    .await;
    let c = client(&server, Api::Chat);
    let round = round(&c, RoundKind::Query, 1, 1).await;
    let r = &round.requests[0];
    assert!(r.is_success());
    assert_eq!(r.content_events, 2);
    // The first token is the reasoning delta, 40 ms before the answer.
    assert!(r.last_token_ns.unwrap() - r.first_token_ns.unwrap() >= 40_000_000);
    assert_eq!(r.usage.unwrap().cached_tokens, Some(2));
}

#[tokio::test]
async fn requests_carry_upstreams_parameters_and_the_key() {
    let server = ScriptedServer::start(|req| match req.path.as_str() {
        "/v1/completions" => Reply::Stream(ldqa_testserver::completion_stream(
            Duration::ZERO,
            &["a", "b"],
            7,
        )),
        _ => default_reply(req),
    })
    .await
    .unwrap();
    let endpoint = Endpoint::new(&server.base_url(), Some("sk-test".into())).unwrap();
    let mut config = ClientConfig::new(endpoint, "scripted-model".into(), Api::Completions, 100);
    config.eos_token_id = Some(128009);
    let c = Client::new(config).unwrap();
    assert_eq!(
        c.list_models().await.unwrap(),
        vec!["scripted-model".to_owned()]
    );
    let round = round(&c, RoundKind::Query, 1, 1).await;
    assert!(round.requests[0].is_success(), "{:?}", round.requests[0]);
    let served = server.served();
    let gen = served
        .iter()
        .find(|s| s.request.path == "/v1/completions")
        .unwrap();
    let body = &gen.request.body;
    assert_eq!(body["prompt"], "p0");
    assert_eq!(body["model"], "scripted-model");
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["logit_bias"]["128009"], -100);
    assert_eq!(gen.request.header("authorization"), Some("Bearer sk-test"));
}

#[tokio::test]
async fn cancellation_stops_sending_and_marks_in_flight_requests() {
    let server = serving(move |_| Reply::Stream(vec![role_chunk(), Step::Stall])).await;
    let c = client(&server, Api::Chat);
    let cancel = Cancel::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        })
    };
    let round = run_round(
        &c,
        RoundKind::Query,
        &specs(10),
        &Prompts,
        2,
        &NoObserver,
        &cancel,
    )
    .await;
    canceller.await.unwrap();
    assert!(round.interrupted);
    assert_eq!(round.requests.len(), 2, "only the two in flight were sent");
    assert!(round
        .requests
        .iter()
        .all(|r| r.failure.as_ref().unwrap().kind == FailureKind::Cancelled));
}

#[tokio::test]
async fn unreachable_server_is_an_error_that_names_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}/v1"), None).unwrap();
    let c = Client::new(ClientConfig::new(endpoint, "m".into(), Api::Chat, 4)).unwrap();
    let err = c.list_models().await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}/v1/models")),
        "{err}"
    );
    assert!(err.contains("Is the server running"), "{err}");
}

#[tokio::test]
async fn protocol_reads_metrics_around_each_round() {
    let generated = Arc::new(AtomicUsize::new(0));
    let g = Arc::clone(&generated);
    let server = ScriptedServer::start(move |req| match (req.path.as_str(), prompt_index(req)) {
        (_, Some(_)) => {
            g.fetch_add(1, Ordering::SeqCst);
            Reply::Stream(chat_stream(Duration::ZERO, &["a"], 5))
        }
        ("/metrics", _) => {
            let n = g.load(Ordering::SeqCst);
            Reply::Text(
                200,
                format!("vllm:prefix_cache_queries_total{{engine=\"0\"}} {}\nvllm:prefix_cache_hits_total 0\n", n * 100),
                "text/plain",
            )
        }
        _ => default_reply(req),
    })
    .await
    .unwrap();
    let c = client(&server, Api::Chat);
    let planned = |kind, n, pause_before_ns| PlannedRound {
        kind,
        requests: specs(n),
        arrival: Arrival::ClosedLoop { max_inflight: 2 },
        pause_before_ns,
        send_at_ns: Vec::new(),
    };
    let plan = Plan {
        rounds: vec![
            planned(RoundKind::PreWarmup, 2, 0),
            planned(RoundKind::Warmup, 3, 0),
            planned(RoundKind::Query, 5, 10_000_000),
        ],
    };
    let options = ProtocolOptions::metrics_at(Some(format!("http://{}/metrics", server.addr())));
    let clients = std::slice::from_ref(&c);
    let outcome = run_protocol(
        clients,
        &plan,
        &Prompts,
        &options,
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    assert!(!outcome.interrupted());
    assert!(outcome.metrics_warning.is_none());
    assert!(outcome
        .round(RoundKind::PreWarmup)
        .unwrap()
        .evidence
        .is_none());
    let w = outcome
        .round(RoundKind::Warmup)
        .unwrap()
        .evidence
        .clone()
        .unwrap();
    let q = outcome
        .round(RoundKind::Query)
        .unwrap()
        .evidence
        .clone()
        .unwrap();
    assert_eq!(w.deltas["vllm:prefix_cache_queries_total"], 300.0);
    assert_eq!(q.deltas["vllm:prefix_cache_queries_total"], 500.0);
    assert_eq!(generated.load(Ordering::SeqCst), 10);
}

/// A round's slots hand their connections back to the client, so the query round reuses
/// the warmup round's, as a pool would: a reconnect inside the query round would add to
/// its TTFT.
#[tokio::test]
async fn connections_carry_over_from_one_round_to_the_next() {
    let server = serving(|_| Reply::Stream(chat_stream(Duration::ZERO, &["a", "b"], 3))).await;
    let c = client(&server, Api::Chat);
    assert!(c.is_direct(), "plain http:// without a proxy goes direct");
    for kind in [RoundKind::Warmup, RoundKind::Query] {
        let r = round(&c, kind, 12, 4).await;
        assert!(r.requests.iter().all(|r| r.failure.is_none()), "{r:?}");
    }
    assert_eq!(server.connections(), 4);
}

/// Servers close keep-alive connections that sit idle (uvicorn after 5 s, so during
/// `--sleep-time-after-warmup`): the next request opens a new one, and nothing fails.
#[tokio::test(start_paused = true)]
async fn connections_the_server_closed_while_idle_are_replaced() {
    let server = serving(|_| Reply::Stream(chat_stream(Duration::ZERO, &["a", "b"], 3))).await;
    server.set_idle_timeout(Duration::from_secs(5));
    let c = client(&server, Api::Chat);
    let warmup = round(&c, RoundKind::Warmup, 8, 4).await;
    assert!(warmup.requests.iter().all(|r| r.failure.is_none()));
    assert_eq!(server.connections(), 4);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let query = round(&c, RoundKind::Query, 8, 4).await;
    assert!(
        query.requests.iter().all(|r| r.failure.is_none()),
        "{query:?}"
    );
    assert_eq!(server.connections(), 8);
}

/// Reliability review A22: a `/metrics` that never ends is read up to a limit, then given
/// up with an error that says so (it once took the client to 4.9 GB before the deadline).
#[tokio::test]
async fn an_endless_metrics_body_is_cut_at_a_limit() {
    let megabyte = vec![b'#'; 1 << 20];
    let server = ScriptedServer::start(move |req| match req.path.as_str() {
        "/metrics" => {
            // More than the limit, then a stall: only a size cap ends this read early.
            let mut steps: Vec<Step> = (0..ldqa_loadgen::client::CONTROL_BODY_LIMIT / (1 << 20)
                + 2)
                .map(|_| Step::Raw(megabyte.clone()))
                .collect();
            steps.push(Step::Stall);
            Reply::Stream(steps)
        }
        _ => default_reply(req),
    })
    .await
    .unwrap();
    let c = client(&server, Api::Chat);
    let started = std::time::Instant::now();
    let err = c
        .get_text(&format!("http://{}/metrics", server.addr()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sent more than 16777216 bytes"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "ended by the cap, not the deadline"
    );
}

/// Reliability review A11: an HTML page answered with 200 fails as a stream, and the
/// failure names the content type (it only said "stream ended before [DONE]").
#[tokio::test]
async fn a_page_that_is_not_a_stream_is_named_by_its_content_type() {
    let server =
        serving(|_| Reply::Text(200, "<html><body>Welcome</body></html>".into(), "text/html"))
            .await;
    let c = client(&server, Api::Chat);
    let round = round(&c, RoundKind::Query, 1, 1).await;
    let failure = round.requests[0].failure.as_ref().expect("it failed");
    assert!(
        failure
            .message
            .contains("the response's Content-Type is text/html, not text/event-stream"),
        "{failure:?}"
    );
}
