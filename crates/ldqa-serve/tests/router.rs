//! The router without a socket: every error case, the success shapes, metrics.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt as _;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn error_of(status: StatusCode, body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: {body}: {e}"));
    assert_eq!(v["error"]["code"], status.as_u16(), "{body}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    v
}

fn fast() -> Router {
    ldqa_serve::router(common::config(1000.0)).unwrap()
}

#[tokio::test]
async fn bad_bodies_are_400_with_openai_errors() {
    let app = fast();
    for body in [
        "{not json",
        "[]",
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"sim-llama-8b"}"#,
        r#"{"model":"sim-llama-8b","messages":"x"}"#,
        r#"{"model":"sim-llama-8b","messages":[{"role":"user","content":"0 hi"}],"max_tokens":0}"#,
        r#"{"model":"sim-llama-8b","messages":[{"role":"user","content":"0 hi"}],"max_tokens":-1}"#,
        r#"{"model":"sim-llama-8b","messages":[{"role":"user","content":"0 hi"}],"max_tokens":"4"}"#,
    ] {
        let (status, text) = call(&app, post("/v1/chat/completions", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {text}");
        error_of(status, &text);
    }
    let (status, text) = call(
        &app,
        post("/v1/completions", r#"{"model":"sim-llama-8b","prompt":""}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
}

#[tokio::test]
async fn unknown_model_is_404() {
    let (status, text) = call(
        &fast(),
        post("/v1/completions", r#"{"model":"gpt-4","prompt":"0 hi"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v = error_of(status, &text);
    assert_eq!(v["error"]["type"], "NotFoundError");
    assert!(text.contains("gpt-4"));
}

#[tokio::test]
async fn prompt_over_the_model_length_is_400() {
    let mut config = common::config(1000.0);
    config.engine.max_model_len_tokens = 100;
    let app = ldqa_serve::router(config).unwrap();
    let prompt = format!("0{}", " hi".repeat(95));
    let body = serde_json::json!({"model": common::MODEL, "prompt": prompt, "max_tokens": 5});
    let (status, text) = call(&app, post("/v1/completions", body.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("maximum context length is 100 tokens"),
        "{text}"
    );
    assert!(
        text.contains("101 tokens (96 in the messages, 5 in the completion)"),
        "{text}"
    );
    // One token less fits.
    let body = serde_json::json!({"model": common::MODEL, "prompt": prompt, "max_tokens": 4});
    let (status, text) = call(&app, post("/v1/completions", body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let mut config = common::config(1000.0);
    config.max_body_bytes = 1024;
    let app = ldqa_serve::router(config).unwrap();
    let body = serde_json::json!({"model": common::MODEL, "prompt": "x".repeat(2000)});
    let (status, text) = call(&app, post("/v1/completions", body.to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    error_of(status, &text);
    assert_eq!(ldqa_serve::DEFAULT_MAX_BODY_BYTES, 32 << 20);
}

#[tokio::test]
async fn unknown_path_is_404() {
    let (status, text) = call(&fast(), get("/v2/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    error_of(status, &text);
}

#[tokio::test]
async fn api_key_is_required_when_set() {
    let mut config = common::config(1000.0);
    config.api_key = Some("s3cret".into());
    let app = ldqa_serve::router(config).unwrap();
    let (status, text) = call(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    error_of(status, &text);
    assert!(!text.contains("s3cret"));
    let wrong = Request::get("/v1/models")
        .header("authorization", "Bearer s3cres")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
    let right = Request::get("/v1/models")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (status, text) = call(&app, right).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // Health and metrics stay open, as in vLLM.
    assert_eq!(call(&app, get("/health")).await.0, StatusCode::OK);
    assert_eq!(call(&app, get("/metrics")).await.0, StatusCode::OK);
    assert!(ldqa_serve::constant_time_eq(b"abc", b"abc"));
    assert!(!ldqa_serve::constant_time_eq(b"abc", b"abd"));
    assert!(!ldqa_serve::constant_time_eq(b"abc", b"ab"));
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_lives() {
    let app = ldqa_serve::catch_panics(
        Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    panic!("boom");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route("/ok", axum::routing::get(|| async { "ok" })),
    );
    let (status, text) = call(&app, get("/boom")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    error_of(status, &text);
    assert_eq!(call(&app, get("/ok")).await, (StatusCode::OK, "ok".into()));
}

#[tokio::test]
async fn models_and_whole_responses() {
    let app = fast();
    let (status, text) = call(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["id"], common::MODEL);

    let body = r#"{"model":"sim-llama-8b","messages":[{"role":"user","content":"3 hi hi hi"}],"max_tokens":4}"#;
    let (status, text) = call(&app, post("/v1/chat/completions", body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], " hi hi hi hi");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 4 + 34);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    // The same prompt again hits the GPU prefix cache (whole blocks).
    let (_, text) = call(&app, post("/v1/chat/completions", body)).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 32);
}

#[tokio::test]
async fn streaming_chunks_are_shaped_like_vllm() {
    let app = fast();
    let body = r#"{"model":"sim-llama-8b","prompt":"1 hi hi","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}"#;
    let (status, text) = call(&app, post("/v1/completions", body)).await;
    assert_eq!(status, StatusCode::OK);
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 5, "{text}");
    assert_eq!(data[4], "[DONE]");
    let first: Value = serde_json::from_str(data[0]).unwrap();
    assert_eq!(first["object"], "text_completion");
    assert_eq!(first["choices"][0]["text"], " hi");
    let last: Value = serde_json::from_str(data[2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    let usage: Value = serde_json::from_str(data[3]).unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage["usage"]["prompt_tokens"], 3);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn reset_prefix_cache_empties_the_cache() {
    let app = fast();
    let body = r#"{"model":"sim-llama-8b","prompt":"5 hi hi hi hi hi hi hi hi hi hi hi hi hi hi hi hi hi hi","max_tokens":1}"#;
    call(&app, post("/v1/completions", body)).await;
    let (status, _) = call(&app, post("/reset_prefix_cache", "")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, text) = call(&app, post("/v1/completions", body)).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cached_tokens"], 0,
        "{text}"
    );
}

/// Issue 16: `stream_options.continuous_usage_stats` (vLLM's) puts the usage so far on every
/// chunk, the role chunk included; `/version` answers as vLLM does.
#[tokio::test]
async fn continuous_usage_and_version_as_vllm_has_them() {
    let app = fast();
    let body = r#"{"model":"sim-llama-8b","messages":[{"role":"user","content":"1 hi hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}"#;
    let (status, text) = call(&app, post("/v1/chat/completions", body)).await;
    assert_eq!(status, StatusCode::OK);
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    // Role, three tokens, the final usage.
    assert_eq!(chunks.len(), 5, "{text}");
    let completion: Vec<u64> = chunks
        .iter()
        .map(|c| c["usage"]["completion_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(completion, [0, 1, 2, 3, 3], "{text}");
    assert!(chunks
        .iter()
        .all(|c| c["usage"]["prompt_tokens"] == chunks[0]["usage"]["prompt_tokens"]));

    // Without it, only the last chunk has usage.
    let plain = body.replace(r#","continuous_usage_stats":true"#, "");
    let (_, text) = call(&app, post("/v1/chat/completions", plain)).await;
    assert_eq!(text.matches("\"usage\"").count(), 1, "{text}");

    let (status, text) = call(&app, get("/version")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["version"],
        "0.10.1"
    );
}
