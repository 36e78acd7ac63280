//! The HTTP routes, the API key check and the panic guard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest as _, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt as _, Stream};
use ldqa_sim::{PromptKey, SimRequest, TokenChain};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

use crate::conn::KillSwitch;
use crate::driver::{Command, StreamEvent, Ticket};
use crate::error::ApiError;
use crate::faults::{FaultKind, Injector};
use crate::inject;
use crate::metrics::Metrics;
use crate::openai::{self, GenerateRequest, ResponseMeta};
use crate::tokens::{ChatFormat, TokenCounter};

pub(crate) struct Inner {
    pub model: String,
    pub api_key: Option<String>,
    pub counter: TokenCounter,
    /// How the chat API turns messages into tokens.
    pub chat: ChatFormat,
    /// The simulated model's output token, as the counter names it.
    pub output_token: u64,
    /// Whether requests carry their token ids to the engine (for KV events).
    pub keep_tokens: bool,
    pub commands: std::sync::mpsc::Sender<Command>,
    pub metrics: Arc<Metrics>,
    pub next_ticket: AtomicU64,
    pub max_model_len_tokens: u64,
    /// Simulated seconds per wall second, advertised in `/v1/models` (`ldqa_time_scale`).
    pub time_scale: f64,
    pub kv_capacity_tokens: u64,
    pub created_s: u64,
    pub faults: Option<Injector>,
    /// What `/version` answers: the vLLM release simulated.
    pub version: String,
}

pub(crate) type AppState = Arc<Inner>;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `Authorization: Bearer KEY` (or `x-api-key`) when the server has a key. The key is
/// never logged nor echoed.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        if !constant_time_eq(given.trim().as_bytes(), key.as_bytes()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: a valid API key is required",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Turns a panic inside a handler into a 500 and one log line; the server lives on.
pub(crate) async fn catch_panic(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!("ldqa serve: internal error in {path}: {what}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                .into_response()
        }
    }
}

/// A `model` other than the served one is a 404, as vLLM answers it.
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

/// Runs `f` (a tokenizer's work) on the blocking pool, off the async workers.
pub(crate) async fn off_the_workers<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tokenizer failed"))
}

/// The tokens `prompt` becomes on this server (a tokenizer's work off the async workers);
/// a 400 when the model's chat template refuses the conversation.
pub(crate) async fn prompt_tokens(
    state: &AppState,
    prompt: &crate::tokens::PromptText,
) -> Result<Vec<u64>, ApiError> {
    let tokens = if state.counter.is_slow() {
        let (counter, chat) = (state.counter.clone(), state.chat.clone());
        let prompt = prompt.clone();
        off_the_workers(move || prompt.tokens(&counter, &chat)).await?
    } else {
        prompt.tokens(&state.counter, &state.chat)
    };
    tokens.map_err(ApiError::bad_request)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

pub(crate) async fn health() -> StatusCode {
    StatusCode::OK
}

/// `GET /version`, as vLLM answers it: `{"version": "0.10.1"}` (the release simulated).
pub(crate) async fn version(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({ "version": state.version })).into_response()
}

pub(crate) async fn models(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": state.model, "object": "model", "created": state.created_s,
            "owned_by": "ldqa", "root": state.model, "parent": null,
            "max_model_len": state.max_model_len_tokens,
            // Not OpenAI's: clients that know it (`ldqa run`) report simulated time.
            "ldqa_time_scale": state.time_scale,
        }],
    }))
    .into_response()
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.model),
    )
        .into_response()
}

pub(crate) async fn reset_prefix_cache(State(state): State<AppState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.commands.send(Command::ResetPrefixCache(tx)).is_err() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine stopped").into_response();
    }
    match rx.await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => ApiError::new(
            StatusCode::CONFLICT,
            "requests are running: the prefix cache can be reset only when the engine is idle",
        )
        .into_response(),
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine stopped").into_response(),
    }
}

pub(crate) async fn chat(State(state): State<AppState>, req: Request) -> Response {
    generation(state, req, true).await
}

pub(crate) async fn completions(State(state): State<AppState>, req: Request) -> Response {
    generation(state, req, false).await
}

/// Reads the body, injects this request's fault (if any), then generates.
async fn generation(state: AppState, req: Request, chat: bool) -> Response {
    let mut received = Instant::now();
    let kill = req
        .extensions()
        .get::<ConnectInfo<KillSwitch>>()
        .map(|c| c.0.clone());
    let fault = state.faults.as_ref().and_then(Injector::draw);
    let body = Bytes::from_request(req, &()).await;
    if let (Some(kind), Some(injector)) = (fault, &state.faults) {
        state.metrics.injected(kind);
        if let Some(resp) = inject::before_engine(kind, kill.as_ref(), &injector.config).await {
            return resp;
        }
        if kind == FaultKind::SlowFirstByte {
            // The engine sees the request after the delay, like a slow proxy in front.
            received = Instant::now();
        }
    }
    let fault = fault.filter(|k| k.reaches_engine() && *k != FaultKind::SlowFirstByte);
    generate(state, received, body, chat, fault)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Aborts its request when dropped before the request ended (client gone).
struct AbortOnDrop {
    ticket: Ticket,
    commands: std::sync::mpsc::Sender<Command>,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.commands.send(Command::Abort(self.ticket));
        }
    }
}

/// `received`: when the request's headers were read, before its body. The simulated
/// front-end delay starts there, so the server's real parsing and counting time is
/// part of it rather than added to it.
async fn generate(
    state: AppState,
    received: Instant,
    body: Result<Bytes, BytesRejection>,
    chat: bool,
    fault: Option<FaultKind>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let req = openai::parse(&body, chat)?;
    drop(body);
    check_model(&state, Some(&req.model))?;
    let tokens = prompt_tokens(&state, &req.prompt).await?;
    let prompt_tokens = tokens.len() as u64;
    check_lengths(&state, prompt_tokens, req.max_tokens)?;

    let ticket = state.next_ticket.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let kept = state
        .keep_tokens
        .then(|| Arc::<[u64]>::from(tokens.as_slice()));
    let request = SimRequest {
        key: PromptKey::Tokens(TokenChain::new(tokens).then_output(state.output_token)),
        prompt_tokens,
        max_output_tokens: req.max_tokens,
    };
    state
        .commands
        .send(Command::Submit {
            ticket,
            request,
            tokens: kept,
            received,
            events: tx,
        })
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine stopped"))?;
    let guard = AbortOnDrop {
        ticket,
        commands: state.commands.clone(),
        armed: true,
    };
    let meta = ResponseMeta {
        id: format!("{}-{ticket:016x}", if chat { "chatcmpl" } else { "cmpl" }),
        // The request's time, as vLLM's `int(time.time())` (the server's is in /v1/models).
        created_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: state.model.clone(),
        chat,
    };
    if req.stream {
        let stream = sse_stream(
            rx,
            guard,
            meta,
            req,
            prompt_tokens,
            state.metrics.clone(),
            fault,
        );
        Ok(Sse::new(stream).into_response())
    } else {
        let resp = whole(rx, guard, meta, prompt_tokens).await?;
        Ok(match fault {
            Some(kind) => inject::whole_response(kind, resp),
            None => resp,
        })
    }
}

fn check_lengths(state: &Inner, prompt_tokens: u64, max_tokens: u32) -> Result<(), ApiError> {
    if prompt_tokens == 0 {
        return Err(ApiError::bad_param("prompt", "The prompt cannot be empty."));
    }
    let total = prompt_tokens + u64::from(max_tokens);
    if total > state.max_model_len_tokens {
        return Err(ApiError::bad_param(
            "max_tokens",
            ldqa_sim::round::context_length_message(
                state.max_model_len_tokens,
                prompt_tokens,
                max_tokens,
            ),
        ));
    }
    if total > state.kv_capacity_tokens {
        return Err(ApiError::bad_request(ldqa_sim::round::kv_capacity_message(
            total,
            state.kv_capacity_tokens,
        )));
    }
    Ok(())
}

async fn whole(
    mut rx: mpsc::UnboundedReceiver<StreamEvent>,
    mut guard: AbortOnDrop,
    meta: ResponseMeta,
    prompt_tokens: u64,
) -> Result<Response, ApiError> {
    while let Some(ev) = rx.recv().await {
        match ev {
            StreamEvent::Token { .. } => {}
            StreamEvent::Finished {
                prefix,
                output_tokens,
            } => {
                guard.armed = false;
                let cached = prefix.gpu_hit_tokens + prefix.cpu_hit_tokens;
                let usage = openai::usage(prompt_tokens, u64::from(output_tokens), cached);
                return Ok(axum::Json(meta.full(output_tokens, usage)).into_response());
            }
            StreamEvent::Rejected | StreamEvent::Aborted => {
                guard.armed = false;
                break;
            }
        }
    }
    Err(ApiError::bad_request(
        "the engine could not run this request",
    ))
}

struct SseState {
    rx: mpsc::UnboundedReceiver<StreamEvent>,
    guard: AbortOnDrop,
    meta: ResponseMeta,
    req: GenerateRequest,
    prompt_tokens: u64,
    metrics: Arc<Metrics>,
    pending: std::collections::VecDeque<String>,
    ended: bool,
    /// A fault to inject after the first token.
    fault: Option<FaultKind>,
    /// Cut the connection once `pending` is sent.
    abort: bool,
    /// The chunk of a token that is not the last one.
    token_data: Option<String>,
    /// How late the previous token of this stream left, for the jitter.
    last_lag: Option<std::time::Duration>,
}

fn sse_stream(
    rx: mpsc::UnboundedReceiver<StreamEvent>,
    guard: AbortOnDrop,
    meta: ResponseMeta,
    req: GenerateRequest,
    prompt_tokens: u64,
    metrics: Arc<Metrics>,
    fault: Option<FaultKind>,
) -> impl Stream<Item = Result<SseEvent, std::io::Error>> {
    let state = SseState {
        rx,
        guard,
        meta,
        req,
        prompt_tokens,
        metrics,
        pending: std::collections::VecDeque::new(),
        ended: false,
        fault,
        abort: false,
        token_data: None,
        last_lag: None,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.pending.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), s));
            }
            if s.abort {
                // Let hyper flush what was sent, then cut the connection: the guard,
                // dropped with the stream, aborts the request and frees its blocks.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                s.abort = false;
                s.ended = true;
                return Some((Err(inject::abort_error()), s));
            }
            if s.ended {
                return None;
            }
            match s.rx.recv().await {
                Some(StreamEvent::Token { index, due }) => {
                    let lag = Instant::now().saturating_duration_since(due);
                    s.metrics.emission_lag.observe(lag);
                    if let Some(prev) = s.last_lag.replace(lag) {
                        s.metrics.emission_jitter.observe(lag.abs_diff(prev));
                    }
                    let usage_so_far = |chunk, done: u32| {
                        ResponseMeta::with_usage(chunk, s.prompt_tokens, u64::from(done))
                            .to_string()
                    };
                    if index == 0 && s.meta.chat {
                        let role = s.meta.role_chunk();
                        let role = if s.req.continuous_usage {
                            usage_so_far(role, 0)
                        } else {
                            role.to_string()
                        };
                        s.pending.push_back(role);
                    }
                    let last = index + 1 >= s.req.max_tokens;
                    let chunk = if s.req.continuous_usage {
                        usage_so_far(s.meta.token_chunk(last), index + 1)
                    } else if last {
                        s.meta.token_chunk(true).to_string()
                    } else {
                        // Every other token's chunk is the same text: build it once.
                        let meta = &s.meta;
                        s.token_data
                            .get_or_insert_with(|| meta.token_chunk(false).to_string())
                            .clone()
                    };
                    s.pending.push_back(chunk);
                    match s.fault.take() {
                        Some(FaultKind::Disconnect) => s.abort = true,
                        Some(FaultKind::Malformed) => {
                            s.pending.push_back(inject::MALFORMED_JSON.to_owned());
                            s.ended = true;
                        }
                        Some(FaultKind::ErrorEvent) => {
                            s.pending
                                .push_back(inject::error_event().body().to_string());
                            s.pending.push_back("[DONE]".into());
                            s.ended = true;
                        }
                        _ => {}
                    }
                }
                Some(StreamEvent::Finished {
                    prefix,
                    output_tokens,
                }) => {
                    s.guard.armed = false;
                    if s.req.include_usage {
                        let cached = prefix.gpu_hit_tokens + prefix.cpu_hit_tokens;
                        let usage =
                            openai::usage(s.prompt_tokens, u64::from(output_tokens), cached);
                        s.pending.push_back(s.meta.usage_chunk(usage).to_string());
                    }
                    s.pending.push_back("[DONE]".into());
                    s.ended = true;
                }
                Some(StreamEvent::Rejected | StreamEvent::Aborted) | None => {
                    s.guard.armed = false;
                    let err = ApiError::bad_request("the engine could not run this request");
                    s.pending.push_back(err.body().to_string());
                    s.pending.push_back("[DONE]".into());
                    s.ended = true;
                }
            }
        }
    })
}
