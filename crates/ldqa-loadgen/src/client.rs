//! One request, start to end, classified.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::{Body, Incoming};
use ldqa_model::{Api, Failure, FailureKind, RequestRecord, RequestSpec};
use serde::Serialize;
use tokio::time::Instant;

use crate::clock::ns_since;
use crate::direct::{Conn, ExtraHeader, SendError, Target};
use crate::error::{error_chain, snippet};
use crate::stream::StreamState;
use crate::{Endpoint, LoadgenError};

/// How requests are made. Built once per run.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where requests go, with the API key.
    pub endpoint: Endpoint,
    /// The `model` field of every request.
    pub model: String,
    /// Chat or text completions.
    pub api: Api,
    /// `max_tokens` of every request (`--output-len`).
    pub output_len: u32,
    /// Token id biased against with `logit_bias: -100`, so outputs run to `max_tokens`.
    pub eos_token_id: Option<u32>,
    /// Whole-request limit; `None` waits forever (upstream's behaviour).
    pub request_timeout: Option<Duration>,
    /// Longest silence of a response stream, once its head has arrived, before the
    /// request fails as timed out; `None` waits forever.
    pub stall_timeout: Option<Duration>,
}

impl ClientConfig {
    /// No EOS bias, no request timeout, and 4 idle connections kept per host.
    pub fn new(endpoint: Endpoint, model: String, api: Api, output_len: u32) -> Self {
        Self {
            endpoint,
            model,
            api,
            output_len,
            eos_token_id: None,
            request_timeout: None,
            stall_timeout: None,
        }
    }
}

/// What a server's `/v1/models` says.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerModels {
    /// The model ids, in the server's order.
    pub ids: Vec<String>,
    /// Simulated seconds per wall second, when the server is an `ldqa serve` that says so.
    pub time_scale: Option<f64>,
}

/// The HTTP client. Cheap to share by reference between the round's workers.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    generate_url: String,
    /// Set when generation requests can go over worker-owned connections ([`crate::direct`]).
    direct: Option<Target>,
    /// Direct connections between rounds: a round's slots take them and give them back,
    /// so the query round reuses the warmup round's connections, as a pool would.
    idle: Arc<Mutex<Vec<Conn>>>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The body upstream sends: temperature 0, `max_tokens`, streaming with usage.
#[derive(Serialize)]
struct GenerateBody<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<[Message<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    stream: bool,
    max_tokens: u32,
    temperature: f32,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    logit_bias: Option<std::collections::BTreeMap<String, i32>>,
}

/// A chat body carrying a whole conversation, as upstream multi-round QA sends it:
/// temperature 0, streaming with usage, its own `max_tokens`, nothing else.
#[derive(Serialize)]
struct ConversationBody<'a> {
    messages: Vec<Message<'a>>,
    model: &'a str,
    temperature: f32,
    stream: bool,
    max_tokens: u32,
    stream_options: StreamOptions,
}

/// A `/v1/completions` body whose prompt is token ids (a trace's replay: exact lengths,
/// no tokenizer), with its own `max_tokens`.
#[derive(Serialize)]
struct TokenBody<'a> {
    model: &'a str,
    prompt: &'a [u32],
    stream: bool,
    max_tokens: u32,
    temperature: f32,
    stream_options: StreamOptions,
}

impl Client {
    /// Builds the HTTP client: HTTP/1.1, `TCP_NODELAY`, no retries, no idle expiry surprises.
    pub fn new(config: ClientConfig) -> Result<Self, LoadgenError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            // Keep every idle connection for the whole run (no cap: a round never holds more
            // than its in-flight count): reconnecting mid-round adds to TTFT.
            .pool_idle_timeout(None)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| LoadgenError::Client(e.to_string()))?;
        let path = match config.api {
            Api::Chat => "chat/completions",
            Api::Completions => "completions",
        };
        let generate_url = config.endpoint.url(path);
        let direct = Target::for_url(&generate_url, config.endpoint.api_key());
        Ok(Self {
            http,
            config,
            generate_url,
            direct,
            idle: Arc::default(),
        })
    }

    /// Whether generation requests go over connections that the round's workers own and
    /// drive (plain `http://` without a proxy), rather than through reqwest's pool.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// A sender for one in-flight slot of a round; its connection goes back to the
    /// client when it is dropped.
    pub fn slot(&self) -> Slot<'_> {
        Slot {
            client: self,
            conn: None,
            unread_body: None,
            busy: false,
            extra_header: None,
        }
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // A panic elsewhere cannot leave a Vec of connections inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.config.endpoint.api_key() {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// `GET {base}/models`: the served model ids, in the server's order.
    ///
    /// Also the reachability check done before any work.
    pub async fn list_models(&self) -> Result<Vec<String>, LoadgenError> {
        Ok(self.server_models().await?.ids)
    }

    /// What `/v1/models` says: the model ids, and the time scale an `ldqa serve` advertises.
    pub async fn server_models(&self) -> Result<ServerModels, LoadgenError> {
        let url = self.config.endpoint.url("models");
        let body = self.get_text(&url).await?;
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| LoadgenError::BadBody {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let models = json["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ids = models
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        let time_scale = models
            .iter()
            .find_map(|m| m["ldqa_time_scale"].as_f64())
            .filter(|f| f.is_finite() && *f > 0.0);
        Ok(ServerModels { ids, time_scale })
    }

    /// `GET url` as text (also for `/metrics`), with the API key, within `--request-timeout`
    /// when one is set, else 10 s, and at most [`CONTROL_BODY_LIMIT`] bytes (an endless
    /// `/metrics` once took the client to 4.9 GB before the deadline; reliability A22).
    pub async fn get_text(&self, url: &str) -> Result<String, LoadgenError> {
        let unreachable = |e: reqwest::Error| LoadgenError::Unreachable {
            url: url.to_owned(),
            reason: error_chain(&e),
        };
        let resp = self
            .authorized(self.http.get(url))
            .timeout(self.config.request_timeout.unwrap_or(CONTROL_TIMEOUT))
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > CONTROL_BODY_LIMIT {
                return Err(LoadgenError::BodyTooLarge {
                    url: url.to_owned(),
                    limit_bytes: CONTROL_BODY_LIMIT,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if !status.is_success() {
            return Err(LoadgenError::BadStatus {
                url: url.to_owned(),
                status: status.as_u16(),
                body: snippet(&body),
            });
        }
        Ok(body)
    }

    /// Empties the server's prefix cache: `POST /reset_prefix_cache` at the server root
    /// (vLLM's, and `ldqa serve`'s). A server still finishing requests refuses (vLLM
    /// answers `success: false`, `ldqa serve` 409): asked again every 200 ms for up to 60 s.
    pub async fn reset_prefix_cache(&self) -> Result<(), LoadgenError> {
        let url = format!("{}/reset_prefix_cache", self.config.endpoint.origin());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let resp = self
                .authorized(self.http.post(&url))
                .timeout(CONTROL_TIMEOUT)
                .send()
                .await
                .map_err(|e| LoadgenError::Unreachable {
                    url: url.clone(),
                    reason: error_chain(&e),
                })?;
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let refused =
                status.as_u16() == 409 || body.replace(' ', "").contains("\"success\":false");
            if status.is_success() && !refused {
                return Ok(());
            }
            if !refused || tokio::time::Instant::now() >= deadline {
                return Err(LoadgenError::BadStatus {
                    url,
                    status: status.as_u16(),
                    body: snippet(&body),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Serializes the request body for `prompt` (done before the request's clock starts).
    pub fn body(&self, prompt: &str) -> Vec<u8> {
        let logit_bias = self
            .config
            .eos_token_id
            .map(|id| [(id.to_string(), -100)].into_iter().collect());
        let (messages, prompt) = match self.config.api {
            Api::Chat => (
                Some([Message {
                    role: "user",
                    content: prompt,
                }]),
                None,
            ),
            Api::Completions => (None, Some(prompt)),
        };
        let body = GenerateBody {
            model: &self.config.model,
            messages,
            prompt,
            stream: true,
            max_tokens: self.config.output_len,
            temperature: 0.0,
            stream_options: StreamOptions {
                include_usage: true,
            },
            logit_bias,
        };
        serde_json::to_vec(&body).expect("invariant: request body serializes")
    }

    /// Serializes a `/v1/chat/completions` body carrying `messages` (role, content), generating
    /// at most `max_tokens` (the client must use [`Api::Chat`]).
    pub fn conversation_body(&self, messages: &[(&'static str, &str)], max_tokens: u32) -> Vec<u8> {
        let body = ConversationBody {
            messages: messages
                .iter()
                .map(|&(role, content)| Message { role, content })
                .collect(),
            model: &self.config.model,
            temperature: 0.0,
            stream: true,
            max_tokens,
            stream_options: StreamOptions {
                include_usage: true,
            },
        };
        serde_json::to_vec(&body).expect("invariant: request body serializes")
    }

    /// Serializes a `/v1/completions` body whose prompt is `token_ids`, generating at most
    /// `max_tokens` (the client must use [`Api::Completions`]).
    pub fn token_body(&self, token_ids: &[u32], max_tokens: u32) -> Vec<u8> {
        let body = TokenBody {
            model: &self.config.model,
            prompt: token_ids,
            stream: true,
            max_tokens,
            temperature: 0.0,
            stream_options: StreamOptions {
                include_usage: true,
            },
        };
        serde_json::to_vec(&body).expect("invariant: request body serializes")
    }

    /// One request through reqwest (`https://`, or a proxy in the environment).
    async fn exchange_pooled(
        &self,
        body: Vec<u8>,
        extra: Option<&ExtraHeader>,
        round_start: Instant,
        record: &mut RequestRecord,
        text: Option<&mut String>,
    ) -> Result<(), Failure> {
        let mut req = self
            .authorized(self.http.post(&self.generate_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body);
        if let Some((name, value)) = extra {
            req = req.header(name.clone(), value.clone());
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                FailureKind::Timeout
            } else {
                FailureKind::Connect
            };
            Failure::new(kind, error_chain(&e))
        })?;
        let status = resp.status().as_u16();
        let unusual = unusual_headers(resp.headers());
        let mut chunks = resp.bytes_stream().map(|r| r.map_err(|e| error_chain(&e)));
        let outcome =
            read_response(status, &mut chunks, &self.config, round_start, record, text).await;
        explained(outcome, status, unusual)
    }
}

/// One in-flight slot of a round: sends requests one after another, each on the slot's
/// own connection when the target allows it ([`Client::is_direct`]), so the request is
/// written in the same poll that stamps it sent.
pub struct Slot<'c> {
    client: &'c Client,
    conn: Option<Conn>,
    /// A body whose stream finished (`[DONE]`) before the body itself ended.
    unread_body: Option<Incoming>,
    /// A request is under way: if the slot is dropped now (Ctrl-C), its connection is
    /// in an unknown state and is not given back.
    busy: bool,
    /// Sent with every request of this slot.
    extra_header: Option<ExtraHeader>,
}

impl Slot<'_> {
    /// Adds header `name: value` to every request this slot sends (upstream multi-round
    /// QA's `x-user-id`); an error names what is not a valid header.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), LoadgenError> {
        let bad =
            |what: &str| LoadgenError::Client(format!("invalid header {what}: {name}: {value}"));
        let name =
            hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("name"))?;
        let value = hyper::header::HeaderValue::from_str(value).map_err(|_| bad("value"))?;
        self.extra_header = Some((name, value));
        Ok(())
    }

    /// Sends one prepared request and reads its stream to the end.
    ///
    /// `round_start` is the round's zero; `queued_ns` is when the request was queued.
    /// When `text` is given, the generated text is appended to it.
    /// Never fails: a failure is recorded in the returned record.
    pub async fn send(
        &mut self,
        spec: &RequestSpec,
        body: Vec<u8>,
        round_start: Instant,
        queued_ns: u64,
        text: Option<&mut String>,
    ) -> RequestRecord {
        let mut record = RequestRecord::new(spec.prompt_id, spec.document_id, spec.is_miss);
        record.queued_ns = queued_ns;
        let sent = Instant::now();
        record.sent_ns = ns_since(round_start, sent);
        self.busy = true;
        let client = self.client;
        let exchange = async {
            match &client.direct {
                Some(target) => {
                    self.exchange_direct(target, body, round_start, &mut record, text)
                        .await
                }
                None => {
                    client
                        .exchange_pooled(
                            body,
                            self.extra_header.as_ref(),
                            round_start,
                            &mut record,
                            text,
                        )
                        .await
                }
            }
        };
        let outcome = match client.config.request_timeout {
            Some(limit) => match tokio::time::timeout(limit, exchange).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // Cut off mid-exchange: the connection's state is unknown.
                    self.conn = None;
                    Err(Failure::new(
                        FailureKind::Timeout,
                        format!(
                            "no complete response within --request-timeout {:.3}s",
                            limit.as_secs_f64()
                        ),
                    ))
                }
            },
            None => exchange.await,
        };
        record.end_ns = ns_since(round_start, Instant::now());
        record.failure = outcome.err();
        // Off the clock: read the body's end so the connection can carry the next request.
        if let (Some(mut body), Some(conn)) = (self.unread_body.take(), self.conn.as_mut()) {
            if !conn.drain(&mut body).await {
                self.conn = None;
            }
        }
        self.busy = false;
        record
    }

    async fn exchange_direct(
        &mut self,
        target: &Target,
        body: Vec<u8>,
        round_start: Instant,
        record: &mut RequestRecord,
        text: Option<&mut String>,
    ) -> Result<(), Failure> {
        // Shared, not copied: needed again only if a stale connection refuses it unsent.
        let body = Bytes::from(body);
        let extra = self.extra_header.clone();
        let mut response = self
            .conn(target)
            .await?
            .send(target, body.clone(), extra.as_ref())
            .await;
        if matches!(response, Err(SendError::Unsent)) {
            // The server had closed the idle connection: it never saw the request.
            self.conn = None;
            response = self
                .conn(target)
                .await?
                .send(target, body, extra.as_ref())
                .await;
        }
        let resp = match response {
            Ok(resp) => resp,
            Err(e) => {
                self.conn = None;
                return Err(Failure::new(
                    FailureKind::Connect,
                    match e {
                        SendError::Unsent => {
                            "the connection closed before the request was sent".into()
                        }
                        SendError::Failed(msg) => msg,
                    },
                ));
            }
        };
        let config = &self.client.config;
        let conn = self
            .conn
            .as_mut()
            .expect("invariant: the response came over it");
        let status = resp.status().as_u16();
        let unusual = unusual_headers(resp.headers());
        let mut body = resp.into_body();
        let outcome = {
            let mut chunks = conn.chunks(&mut body);
            read_response(status, &mut chunks, config, round_start, record, text).await
        };
        let outcome = explained(outcome, status, unusual);
        if !body.is_end_stream() {
            self.unread_body = Some(body);
        }
        outcome
    }
}

impl Slot<'_> {
    /// The slot's connection, ready for a request: its own, else one the client holds
    /// idle, else a new one.
    async fn conn(&mut self, target: &Target) -> Result<&mut Conn, Failure> {
        if self.conn.is_none() {
            self.conn = self.client.idle_conns().pop();
        }
        if !self.conn.as_mut().is_some_and(Conn::is_reusable) {
            let fresh = Conn::open(target, CONNECT_TIMEOUT)
                .await
                .map_err(|msg| Failure::new(FailureKind::Connect, msg))?;
            self.conn = Some(fresh);
        }
        Ok(self.conn.as_mut().expect("invariant: set above"))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.busy {
            return; // dropped mid-request (cancelled): the connection's state is unknown
        }
        if let Some(mut conn) = self.conn.take() {
            // No cap needed: a slot takes an idle connection before opening one, so the
            // idle list never holds more than the most slots a round had at once.
            if conn.is_reusable() {
                self.client.idle_conns().push(conn);
            }
        }
    }
}

/// Limit of a control-plane request (`/v1/models`, `/metrics`) without `--request-timeout`.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a control-plane answer may weigh: vLLM's `/metrics` is about 60 KB with one
/// model, a few MB with many LoRA adapters or engines.
pub const CONTROL_BODY_LIMIT: usize = 16 << 20;

/// Connection setup limit, for both transports.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream that failed says what was odd about its response, if anything was
/// (reliability review A11, A12: an HTML page or a gzipped body read as a broken stream,
/// and the reason never named).
fn explained(
    outcome: Result<(), Failure>,
    status: u16,
    unusual: Option<String>,
) -> Result<(), Failure> {
    outcome.map_err(|mut f| {
        if let (Some(note), true) = (unusual, (200..300).contains(&status)) {
            f.message = format!("{}; {note}", f.message);
        }
        f
    })
}

/// What would keep a successful response from being an SSE stream: a `Content-Type` other
/// than `text/event-stream`, or a `Content-Encoding` nobody asked for.
fn unusual_headers(headers: &hyper::HeaderMap) -> Option<String> {
    let value = |name| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut notes = Vec::new();
    if let Some(t) = value(hyper::header::CONTENT_TYPE) {
        if !t.to_ascii_lowercase().starts_with("text/event-stream") {
            notes.push(format!(
                "the response's Content-Type is {t}, not text/event-stream"
            ));
        }
    }
    if let Some(e) = value(hyper::header::CONTENT_ENCODING) {
        if !e.eq_ignore_ascii_case("identity") {
            notes.push(format!(
                "the response is compressed (Content-Encoding {e}), which was not asked for"
            ));
        }
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Reads a response: an error body for a failed status, else the SSE stream, timed.
/// `config` says how to read the events (its API) and the longest silence allowed between
/// chunks (`stall_timeout`).
async fn read_response(
    status: u16,
    chunks: &mut (impl Stream<Item = Result<Bytes, String>> + Unpin),
    config: &ClientConfig,
    round_start: Instant,
    record: &mut RequestRecord,
    text: Option<&mut String>,
) -> Result<(), Failure> {
    record.first_byte_ns = Some(ns_since(round_start, Instant::now()));
    if !(200..300).contains(&status) {
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = chunks.next().await {
            body.extend_from_slice(&chunk);
        }
        let mut failure = Failure::new(
            FailureKind::HttpStatus,
            format!(
                "HTTP {status}: {}",
                snippet(&String::from_utf8_lossy(&body))
            ),
        );
        failure.http_status = Some(status);
        return Err(failure);
    }
    let mut state = StreamState::new(config.api, text);
    let stall = config.stall_timeout;
    // One timer for the whole stream, pushed back at each chunk (not one per chunk).
    let mut watchdog = std::pin::pin!(tokio::time::sleep(stall.unwrap_or(Duration::MAX / 4)));
    loop {
        let chunk = tokio::select! {
            biased;
            chunk = chunks.next() => chunk,
            () = &mut watchdog, if stall.is_some() => {
                let limit = stall.unwrap_or_default().as_secs_f64();
                state.fail(Failure::new(
                    FailureKind::Timeout,
                    format!("the stream sent nothing for {limit:.0} s (--stall-timeout; 0 waits forever)"),
                ));
                break;
            }
        };
        let Some(chunk) = chunk else {
            break;
        };
        let now = Instant::now();
        if let Some(limit) = stall {
            watchdog.as_mut().reset(now + limit);
        }
        let now_ns = ns_since(round_start, now);
        match chunk {
            Ok(bytes) => state.feed(&bytes, now_ns),
            Err(e) => state.fail(Failure::new(FailureKind::TruncatedStream, e)),
        }
        if state.is_finished() {
            break;
        }
    }
    state.finish(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reliability review A12: a compressed body nobody asked for is named.
    #[test]
    fn unusual_headers_are_named() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            hyper::header::CONTENT_TYPE,
            "text/event-stream; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(unusual_headers(&h), None);
        h.insert(hyper::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(
            unusual_headers(&h).as_deref(),
            Some("the response is compressed (Content-Encoding gzip), which was not asked for")
        );
        let failed = explained(
            Err(Failure::new(FailureKind::TruncatedStream, "stream ended")),
            200,
            unusual_headers(&h),
        );
        assert!(failed
            .unwrap_err()
            .message
            .starts_with("stream ended; the response is compressed"));
    }
}
