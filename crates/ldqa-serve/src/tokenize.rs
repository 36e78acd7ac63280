//! `POST /tokenize` and `POST /detokenize`, in vLLM's shapes (its
//! `entrypoints/serve/tokenize`): the tokens a prompt becomes, counted exactly as a
//! generation request counts them, and the text of token ids. Like vLLM, outside `/v1`
//! and so not behind `--api-key`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::openai;
use crate::routes::{check_model, off_the_workers, prompt_tokens, AppState};

/// `{"count", "max_model_len", "tokens", "token_strs"}`.
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let req = openai::parse_tokenize(&body)?;
    check_model(&state, req.model.as_deref())?;
    let tokens = prompt_tokens(&state, &req.prompt).await?;
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
