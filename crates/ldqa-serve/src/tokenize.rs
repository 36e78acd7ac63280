//! `POST /tokenize` and `POST /detokenize`, in vLLM's shapes (its
//! `entrypoints/serve/tokenize`): the tokens a prompt becomes, counted exactly as a
//! generation request counts them, and the text of token ids. Like vLLM, outside `/v1`
//! and so not behind `--api-key`.
//!
//! A `/tokenize` takes the simulated front end for as long as a generation request's
//! preparation does, and answers when that is done: vLLM's one API-server process renders
//! and tokenizes it like any request, so a router that tokenizes every prompt on every
//! instance before it routes (`vllm-router`'s prefix-aware policies) loads their front
//! ends, and that is part of what it costs.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tokio::sync::oneshot;

use crate::driver::Command;
use crate::error::ApiError;
use crate::openai;
use crate::routes::{check_model, off_the_workers, prompt_tokens, AppState};

/// `{"count", "max_model_len", "tokens", "token_strs"}`.
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let req = openai::parse_tokenize(&body)?;
    check_model(&state, req.model.as_deref())?;
    let tokens = prompt_tokens(&state, &req.prompt).await?;
    through_the_front_end(&state, tokens.len() as u64, received).await?;
    let ids = state.counter.public_ids(&tokens);
    let strs = if req.return_token_strs {
        state.counter.token_strs(&ids)
    } else {
        None
    };
    Ok(axum::Json(serde_json::json!({
        "count": ids.len(),
        "max_model_len": state.max_model_len_tokens,
        "tokens": ids,
        "token_strs": strs,
    }))
    .into_response())
}

/// Waits until the simulated front end has prepared a prompt of `prompt_tokens` received
/// at `received`.
async fn through_the_front_end(
    state: &AppState,
    prompt_tokens: u64,
    received: Instant,
) -> Result<(), ApiError> {
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine stopped");
    let (reply, done) = oneshot::channel();
    state
        .commands
        .send(Command::Tokenize {
            prompt_tokens,
            received,
            reply,
        })
        .map_err(|_| stopped())?;
    let done = done.await.map_err(|_| stopped())?;
    tokio::time::sleep_until(done.into()).await;
    Ok(())
}

/// `{"prompt": text}`; a 400 without a tokenizer.
pub(crate) async fn detokenize(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let (model, ids) = openai::parse_detokenize(&body)?;
    check_model(&state, model.as_deref())?;
    let counter = state.counter.clone();
    let text = off_the_workers(move || counter.decode(&ids))
        .await?
        .map_err(ApiError::bad_request)?;
    Ok(axum::Json(serde_json::json!({ "prompt": text })).into_response())
}
