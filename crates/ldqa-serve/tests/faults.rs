//! Injected faults on a real socket, read by the real client: each kind is classified
//! as the failure it stands for, is counted in `/metrics`, and leaves the engine with no
//! request and no block held.

mod common;

use std::time::Duration;

use ldqa_loadgen::{run_round, Cancel, NoObserver};
use ldqa_model::{FailureKind, RoundKind};
use ldqa_serve::faults::{FaultConfig, FaultKind};
use ldqa_workload::{RepeatMode, Workload, WorkloadConfig};

/// What `ldqa run` must record for each kind (`None`: the request succeeds).
fn expected(kind: FaultKind) -> Option<FailureKind> {
    match kind {
        FaultKind::Http500 | FaultKind::Http429 => Some(FailureKind::HttpStatus),
        FaultKind::Drop => Some(FailureKind::Connect),
        FaultKind::Disconnect => Some(FailureKind::TruncatedStream),
        FaultKind::Stall => Some(FailureKind::Timeout),
        FaultKind::Malformed => Some(FailureKind::MalformedEvent),
        FaultKind::ErrorEvent => Some(FailureKind::ErrorEvent),
        FaultKind::SlowFirstByte => None,
    }
}

/// Waits (bounded) until the engine holds no request and no block.
async fn engine_idle(base: &str) -> ldqa_loadgen::prometheus::Snapshot {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = common::metrics(base).await;
        if m["vllm:num_requests_running"] == 0.0
            && m["vllm:num_requests_waiting"] == 0.0
            && m["vllm:kv_cache_usage_perc"] == 0.0
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "engine still busy: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn every_request_gets(kind: FaultKind) {
    let mut config = common::config(50.0);
    let mut faults = FaultConfig::new(1.0, vec![kind]);
    faults.stall = Duration::from_secs(3);
    faults.slow_first_byte = Duration::from_millis(50);
    config.faults = Some(faults);
    let (base, _stop) = common::start(config).await;
    let workload = Workload::build(&WorkloadConfig {
        num_documents: 3,
        document_length: 100,
        repeat_count: 1,
        repeat_mode: RepeatMode::Tile,
        ..Default::default()
    })
    .unwrap();
    let mut client = common::client(&base, 5);
    let mut cc = client.config().clone();
    cc.request_timeout = Some(Duration::from_secs(1));
    client = ldqa_loadgen::Client::new(cc).unwrap();
    let round = run_round(
        &client,
        RoundKind::Warmup,
        &workload.warmup,
        &workload,
        3,
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    assert_eq!(round.requests.len(), 3);
    for r in &round.requests {
        assert_eq!(
            r.failure.as_ref().map(|f| f.kind),
            expected(kind),
            "{kind}: {r:?}"
        );
        if kind == FaultKind::SlowFirstByte {
            assert_eq!(r.content_events, 5, "{r:?}");
        }
    }
    let m = engine_idle(&base).await;
    assert_eq!(m["ldqa:injected_faults_total"], 3.0, "{kind}");
    let finished = m["vllm:request_success_total"];
    let aborted = m["ldqa:aborted_requests_total"];
    if kind.reaches_engine() {
        assert_eq!(
            finished + aborted,
            3.0,
            "{kind}: every request ends once: {finished} finished, {aborted} aborted"
        );
    } else {
        assert_eq!(
            (finished, aborted, m["vllm:prompt_tokens_total"]),
            (0.0, 0.0, 0.0),
            "{kind} never reaches the engine"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_http_status_failures() {
    every_request_gets(FaultKind::Http500).await;
    every_request_gets(FaultKind::Http429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_a_connect_failure() {
    every_request_gets(FaultKind::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_mid_stream_is_a_truncated_stream_and_frees_blocks() {
    every_request_gets(FaultKind::Disconnect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_a_client_timeout() {
    every_request_gets(FaultKind::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_error_events_are_classified() {
    every_request_gets(FaultKind::Malformed).await;
    every_request_gets(FaultKind::ErrorEvent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_byte_still_succeeds() {
    every_request_gets(FaultKind::SlowFirstByte).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_sends_no_byte() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut config = common::config(50.0);
    config.faults = Some(FaultConfig::new(1.0, vec![FaultKind::Drop]));
    let (base, _stop) = common::start(config).await;
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"model":"sim-llama-8b","prompt":"0 hi hi","max_tokens":2}"#;
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    // EOF or a reset, either way with nothing read.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the server neither answered nor closed");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}
