//! The HTTP side of injected faults (see [`crate::faults`] for what each kind does).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::conn::KillSwitch;
use crate::error::ApiError;
use crate::faults::{FaultConfig, FaultKind};

/// What a client receives in place of a malformed event or body: JSON cut short.
pub(crate) const MALFORMED_JSON: &str = "{\"id\":\"ldqa-injected\",\"choices\":[{\"index\":0,";

/// The error object a stream carries for `error_event`.
pub(crate) fn error_event() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "injected fault: the engine failed while generating",
    )
}

/// The body error that aborts a response mid-way (hyper then closes the connection
/// without ending the chunked body).
pub(crate) fn abort_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "injected fault: disconnect",
    )
}

/// Faults answered before the request reaches the engine, after its body was read:
/// `Some(response)` for `http500`, `http429`, `drop` and `stall`; `None` for the others
/// (after waiting the configured delay for `slow_first_byte`).
pub(crate) async fn before_engine(
    kind: FaultKind,
    kill: Option<&KillSwitch>,
    config: &FaultConfig,
) -> Option<Response> {
    match kind {
        FaultKind::Http500 => Some(
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected fault: internal server error",
            )
            .into_response(),
        ),
        FaultKind::Http429 => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "injected fault: too many requests",
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Some(resp)
        }
        FaultKind::Drop => Some(drop_connection(kill)),
        FaultKind::Stall => Some(stall(config.stall)),
        FaultKind::SlowFirstByte => {
            tokio::time::sleep(config.slow_first_byte).await;
            None
        }
        FaultKind::Disconnect | FaultKind::Malformed | FaultKind::ErrorEvent => None,
    }
}

/// Closes the connection without a response. Without a [`KillSwitch`] (a router served
/// by something other than [`crate::serve_router`]) the best left is a response whose
/// body fails at once: the client then sees headers, then a closed connection.
pub(crate) fn drop_connection(kill: Option<&KillSwitch>) -> Response {
    if let Some(k) = kill {
        k.trip();
    }
    let body = futures_util::stream::once(async { Err::<Bytes, _>(abort_error()) });
    Response::new(Body::from_stream(body))
}

/// 200 with SSE headers, then no byte for `silence`, then the connection is closed.
pub(crate) fn stall(silence: Duration) -> Response {
    let body = futures_util::stream::once(async move {
        tokio::time::sleep(silence).await;
        Err::<Bytes, _>(abort_error())
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}

/// A non-streamed answer for the faults that hit streams mid-way: `disconnect` sends
/// half of `whole` and closes, `malformed` sends truncated JSON, `error_event` a 500.
pub(crate) fn whole_response(kind: FaultKind, whole: Response) -> Response {
    match kind {
        FaultKind::Disconnect => {
            let (parts, body) = whole.into_parts();
            let body = futures_util::stream::unfold(Some(body), |body| async move {
                let body = body?;
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let half = bytes.slice(..bytes.len() / 2);
                Some((Ok::<_, std::io::Error>(half), None))
            });
            let tail = futures_util::stream::once(async {
                // Let hyper flush the half before the connection is cut.
                tokio::time::sleep(Duration::from_millis(1)).await;
                Err::<Bytes, _>(abort_error())
            });
            let mut resp = Response::from_parts(
                parts,
                Body::from_stream(futures_util::StreamExt::chain(body, tail)),
            );
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            resp
        }
        FaultKind::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            MALFORMED_JSON,
        )
            .into_response(),
        FaultKind::ErrorEvent => error_event().into_response(),
        _ => whole,
    }
}
