//! The server on a real socket, driven by the real client (`ldqa_loadgen`).

mod common;

use std::time::Duration;

use futures_util::StreamExt as _;
use ldqa_loadgen::{run_round, Cancel, NoObserver};
use ldqa_model::RoundKind;
use ldqa_workload::{RepeatMode, Workload, WorkloadConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_streams_rounds_and_metrics_parse() {
    let (base, _stop) = common::start(common::config(50.0)).await;
    let workload = Workload::build(&WorkloadConfig {
        num_documents: 3,
        document_length: 100,
        repeat_count: 2,
        repeat_mode: RepeatMode::Tile,
        ..Default::default()
    })
    .unwrap();
    let client = common::client(&base, 5);
    let warmup = run_round(
        &client,
        RoundKind::Warmup,
        &workload.warmup,
        &workload,
        2,
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    let query = run_round(
        &client,
        RoundKind::Query,
        &workload.query,
        &workload,
        2,
        &NoObserver,
        &Cancel::new(),
    )
    .await;
    for (round, cached) in [(&warmup, false), (&query, true)] {
        assert_eq!(round.requests.len(), if cached { 6 } else { 3 });
        for r in &round.requests {
            assert!(r.is_success(), "{r:?}");
            assert_eq!(r.content_events, 5);
            let usage = r.usage.unwrap();
            // "{i} hi …": 1 + 100 tokens, plus the chat template's 34.
            assert_eq!(usage.prompt_tokens, Some(135));
            assert_eq!(usage.completion_tokens, Some(5));
            let hit = usage.cached_tokens.unwrap();
            if cached {
                assert_eq!(hit, 128, "whole 16-token blocks of 135 tokens");
            } else {
                assert!(hit <= 16, "only the shared template header may hit: {hit}");
            }
        }
    }
    let m = common::metrics(&base).await;
    assert_eq!(m["vllm:generation_tokens_total"], 45.0);
    assert_eq!(m["vllm:prompt_tokens_total"], 9.0 * 135.0);
    assert_eq!(m["vllm:time_to_first_token_seconds_count"], 9.0);
    assert_eq!(m["vllm:request_success_total"], 9.0);
    assert!(m["vllm:prefix_cache_hits_total"] >= 6.0 * 128.0);
    assert!(m["vllm:prefix_cache_queries_total"] >= m["vllm:prefix_cache_hits_total"]);
    assert_eq!(m["vllm:num_requests_running"], 0.0);
    assert_eq!(m["vllm:num_requests_waiting"], 0.0);
    assert_eq!(m["vllm:kv_cache_usage_perc"], 0.0);
    assert_eq!(m["lmcache:num_hit_tokens_total"], 0.0);
    assert!(m.contains_key("lmcache:num_stored_tokens_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_frees_its_blocks() {
    let (base, _stop) = common::start(common::config(1.0)).await;
    let body = serde_json::json!({
        "model": common::MODEL,
        "messages": [{"role": "user", "content": format!("0{}", " hi".repeat(2000))}],
        "max_tokens": 100_000,
        "stream": true,
    });
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(r#""content":" hi""#) {
        seen.push_str(std::str::from_utf8(&stream.next().await.unwrap().unwrap()).unwrap());
    }
    let m = common::metrics(&base).await;
    assert!(m["vllm:kv_cache_usage_perc"] > 0.0);
    assert_eq!(m["vllm:num_requests_running"], 1.0);
    drop(stream);
    // The abort travels: connection closed → body dropped → engine task. Wait for it
    // (bounded), then check that every block came back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = common::metrics(&base).await;
        if m["ldqa:aborted_requests_total"] == 1.0 {
            assert_eq!(m["vllm:kv_cache_usage_perc"], 0.0);
            assert_eq!(m["vllm:num_requests_running"], 0.0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "abort never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
