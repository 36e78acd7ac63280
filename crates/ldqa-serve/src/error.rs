//! Errors: the crate's [`ServeError`], and [`ApiError`], an HTTP error with an
//! OpenAI-style body (`{"error": {"message", "type", "param", "code"}}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What stops the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The engine configuration is invalid.
    #[error(transparent)]
    Sim(#[from] ldqa_sim::SimError),
    /// `--time-scale` must be a positive finite number.
    #[error("--time-scale must be a positive number, got {0}")]
    TimeScale(f64),
    /// The tokenizer file could not be loaded.
    #[error("cannot load tokenizer {path}: {reason}")]
    Tokenizer {
        /// The `--tokenizer` file.
        path: std::path::PathBuf,
        /// The tokenizers crate's error.
        reason: String,
    },
    /// The fault injection settings are invalid, or its log cannot be opened.
    #[error("{0}")]
    Faults(String),
    /// The KV event publisher could not start (`--kv-events-config`).
    #[error("KV events: {0}")]
    KvEvents(String),
    /// Serving failed (accept loop).
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// An HTTP error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status; it also picks the OpenAI error `type`.
    pub status: StatusCode,
    /// `error.message`, for people.
    pub message: String,
    /// The offending field, when there is one.
    pub param: Option<&'static str>,
}

impl ApiError {
    /// 400 `BadRequestError`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: None,
        }
    }

    /// 400 about one field.
    pub fn bad_param(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param),
            ..Self::bad_request(message)
        }
    }

    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
        }
    }

    /// The OpenAI error type name for the status (as the `openai` Python package maps them).
    pub fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "BadRequestError",
            401 => "AuthenticationError",
            404 => "NotFoundError",
            413 => "RequestEntityTooLarge",
            422 => "UnprocessableEntityError",
            429 => "RateLimitError",
            500..=599 => "InternalServerError",
            _ => "APIError",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind(),
                "param": self.param,
                "code": self.status.as_u16(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_openai_shaped() {
        let e = ApiError::bad_param("max_tokens", "must be at least 1");
        let b = e.body();
        assert_eq!(b["error"]["type"], "BadRequestError");
        assert_eq!(b["error"]["param"], "max_tokens");
        assert_eq!(b["error"]["code"], 400);
    }
}
