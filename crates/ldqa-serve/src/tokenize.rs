//! `POST /tokenize` and `POST /detokenize`, in vLLM's shapes (its
//! `entrypoints/serve/tokenize`): the tokens a prompt becomes, counted exactly as a
//! generation request counts them, and the text of token ids. Like vLLM, outside `/v1`
//! and so not behind `--api-key`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::openai;
use crate::routes::AppState;

/// A `model` other than the served one is a 404, as for generation.
pub(crate) fn check_model(state: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        Some(m) if m != state.model => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{m}` does not exist."),
            param: Some("model"),
        }),
        _ => Ok(()),
    }
}

/// `{"count", "max_model_len", "tokens", "token_strs"}`.
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let req = openai::parse_tokenize(&body)?;
    check_model(&state, req.model.as_deref())?;
    let counter = state.counter.clone();
    let chat = state.chat.clone();
    let prompt = req.prompt;
    let tokens = tokio::task::spawn_blocking(move || prompt.tokens(&counter, &chat))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tokenizer failed"))?
        .map_err(ApiError::bad_request)?;
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
    let text = tokio::task::spawn_blocking(move || counter.decode(&ids))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tokenizer failed"))?
        .map_err(ApiError::bad_request)?;
    Ok(axum::Json(serde_json::json!({ "prompt": text })).into_response())
}
